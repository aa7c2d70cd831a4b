"""FID / memorization / MiFID math against independent computations and closed forms."""


import numpy as np
import pytest
import scipy.linalg

from monet_tf.scoring import metrics


def _random_gaussian(rng, n, d, shift=0.0, scale=1.0):
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mixing) * scale + shift


def _fid_by_eigenvalues(a, b):
    """Independent FID: tr √(S1 S2) = Σ √λ of the symmetric PSD matrix √S1 S2 √S1."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(lam, 0, None)))


def test_fid_matches_independent_eigenvalue_computation():
    rng = np.random.default_rng(0)
    a = _random_gaussian(rng, 400, 32)
    b = _random_gaussian(rng, 300, 32, shift=0.5, scale=1.5)
    mu1, s1 = metrics.feature_statistics(a)
    mu2, s2 = metrics.feature_statistics(b)
    expected = _fid_by_eigenvalues(a, b)
    assert expected > 1.0
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # And the textbook formula with scipy's sqrtm directly.
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-9)
    # Symmetric.
    assert metrics.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-8)


def test_feature_statistics_are_float64_mean_and_unbiased_covariance():
    x = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    mu, sigma = metrics.feature_statistics(x)
    assert mu.dtype == np.float64 and sigma.shape == (3, 3)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64).T), rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.feature_statistics(x[:1])


def test_identical_gaussians_give_zero():
    rng = np.random.default_rng(2)
    mu, sigma = metrics.feature_statistics(_random_gaussian(rng, 200, 16))
    assert abs(metrics.frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_equal_covariances_shifted_means_give_squared_mean_distance():
    rng = np.random.default_rng(3)
    _, sigma = metrics.feature_statistics(_random_gaussian(rng, 200, 16))
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    assert metrics.frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-8)


def test_singular_product_gets_offset_logged_and_stays_a_distance(capsys):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(6, 40)), rng.normal(size=(6, 40)) + 1.0  # rank 5 covariances in 40 dims
    mu1, s1 = metrics.feature_statistics(a)
    mu2, s2 = metrics.feature_statistics(b)
    value = metrics.frechet_distance(mu1, s1, mu2, s2)
    same = metrics.frechet_distance(mu1, s1, mu1, s1)
    assert "warning: FID: the covariance product is near singular" in capsys.readouterr().err
    assert value == pytest.approx(_fid_by_eigenvalues(a, b), rel=1e-4)
    assert abs(same) < 1e-6


def test_fewer_images_than_dimensions_give_the_regularised_distance(capsys):
    """The span route (N1 + N2 < D) against the textbook formula on the eps-regularised
    covariances (scipy's sqrtm of the D x D product) and against frechet_distance's route."""
    rng = np.random.default_rng(6)
    a = _random_gaussian(rng, 20, 300)
    b = _random_gaussian(rng, 15, 300, shift=0.3, scale=2.0)
    value = metrics.frechet_distance_of_features(a, b, eps=1e-6)
    assert "near singular (20 + 15 images for 300 dims)" in capsys.readouterr().err
    s1 = np.cov(a, rowvar=False) + 1e-6 * np.eye(300)
    s2 = np.cov(b, rowvar=False) + 1e-6 * np.eye(300)
    direct = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s1) + np.trace(s2)
              - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real))
    assert value == pytest.approx(direct, rel=1e-7)
    stats = (*metrics.feature_statistics(a), *metrics.feature_statistics(b))
    assert value == pytest.approx(metrics.frechet_distance(*stats), rel=1e-9)
    assert metrics.frechet_distance_of_features(a, a) == pytest.approx(0.0, abs=1e-6)
    # As many images as dimensions or more: frechet_distance of the statistics, as it was.
    c, e = _random_gaussian(rng, 300, 32), _random_gaussian(rng, 200, 32, shift=1.0)
    assert metrics.frechet_distance_of_features(c, e) == metrics.frechet_distance(
        *metrics.feature_statistics(c), *metrics.feature_statistics(e))


def test_well_conditioned_product_logs_nothing(capsys):
    rng = np.random.default_rng(5)
    mu, sigma = metrics.feature_statistics(_random_gaussian(rng, 500, 8))
    metrics.frechet_distance(mu, sigma, mu + 1, sigma)
    assert "near singular" not in capsys.readouterr().err


def test_invalid_covariance_raises_instead_of_returning_complex_garbage():
    sigma = np.diag([1.0, 1.0])
    negative = np.diag([-4.0, 1.0])  # not a covariance: the product has a negative eigenvalue
    with pytest.raises(ValueError, match="imaginary"):
        metrics.frechet_distance(np.zeros(2), sigma, np.zeros(2), negative)
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.frechet_distance(np.zeros(2), sigma, np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(np.array([np.nan, 0]), sigma, np.zeros(2), sigma)


def test_memorization_distance_matches_brute_force():
    rng = np.random.default_rng(6)
    gen, train = rng.normal(size=(7, 5)), rng.normal(size=(9, 5))
    expected = np.mean([min(1 - abs(g @ t) / (np.linalg.norm(g) * np.linalg.norm(t)) for t in train) for g in gen])
    assert metrics.memorization_distance(gen, train) == pytest.approx(expected, rel=1e-12)
    assert metrics.memorization_distance(gen, train, chunk_size=2) == pytest.approx(expected, rel=1e-12)


def test_copies_are_memorised_and_mifid_explodes():
    rng = np.random.default_rng(7)
    train = np.abs(rng.normal(size=(50, 16)))
    copies = train[:20] * rng.uniform(0.5, 2.0, size=(20, 1))  # scaled copies: same direction
    fresh = np.abs(rng.normal(size=(20, 16)))
    d_copy = metrics.memorization_distance(copies, train)
    d_fresh = metrics.memorization_distance(fresh, train)
    assert d_copy < 1e-12
    assert d_fresh > metrics.MIFID_EPS
    copied = metrics.scores(copies, train)
    assert copied["memorization"] < 1e-12
    assert copied["mifid"] > 1e6 * copied["fid"]
    assert np.isfinite(copied["mifid"])
    honest = metrics.scores(fresh, train)
    assert honest["mifid"] == honest["fid"]


def test_negated_vector_counts_as_memorised():
    train = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    assert metrics.memorization_distance(-train[:1], train) == pytest.approx(0.0, abs=1e-12)
    orthogonal = np.array([[1.0, 0.0, 0.0]])
    expected = 1 - 1 / np.sqrt(14)  # |cos| with [1,2,3] beats 0 with [0,1,0]
    assert metrics.memorization_distance(orthogonal, train) == pytest.approx(expected, rel=1e-12)


def test_zero_rows_are_dropped_from_both_sets():
    gen = np.array([[0.0, 0.0], [1.0, 0.0]])
    train = np.array([[0.0, 0.0], [1.0, 1.0]])
    # Without dropping, the zero row would contribute 1 - 0 (or NaN); only [1,0] vs [1,1] counts.
    assert metrics.memorization_distance(gen, train) == pytest.approx(1 - 1 / np.sqrt(2), rel=1e-12)
    with pytest.raises(ValueError, match="zero"):
        metrics.memorization_distance(np.zeros((3, 2)), train)


def test_mifid_threshold_and_guard():
    assert metrics.mifid(50.0, 0.05) == pytest.approx(1000.0)
    assert metrics.mifid(50.0, 0.1) == 50.0  # at eps: not memorised
    assert metrics.mifid(50.0, 0.7) == 50.0
    assert metrics.mifid(50.0, 0.2, eps=0.3) == pytest.approx(250.0)
    assert metrics.mifid(50.0, 0.0) == pytest.approx(50.0 / 1e-14)
