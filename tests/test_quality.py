"""The quality card (monet_tf.scoring.quality): each measure on cases whose answer is known from
its definition, the card's ranking on the competition's paintings and photos, and the CLI."""

import importlib.util
import io
import json
import math
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from monet_tf.scoring import quality
from monet_tf.scoring.quality_command import load

# The degradations bench/quality_ranking.py tabulates (blur, JPEG, a faint period-2 checkerboard).
_RANKING = pathlib.Path(__file__).resolve().parents[1] / "bench" / "quality_ranking.py"
_spec = importlib.util.spec_from_file_location("quality_ranking", _RANKING)
ranking = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ranking)
blurred, jpeg, checkered = ranking.blurred, ranking.jpeg, ranking.checkered


@pytest.fixture(scope="module")
def sample_paintings(sample_dir) -> np.ndarray:
    """The bundled sample's 30 Monet paintings at 64 px."""
    return load(str(sample_dir / "monet_tfrec"), "real", 64)[1]


# ---- each measure as defined ----

def test_cielab_of_reference_colours():
    """sRGB -> CIELAB (D65) of colours whose Lab values are tabulated (e.g. Bruce Lindbloom's
    calculator): white, black, the primaries, mid grey."""
    lab = quality.srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0],
                                        [0, 0, 255], [128, 128, 128]]))
    expected = [[100, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18],
                [32.30, 79.19, -107.86], [53.59, 0, 0]]
    np.testing.assert_allclose(lab, expected, atol=0.02)


def test_laplacian_pyramid_reconstructs_the_image_and_its_bands_are_band_pass(sample_paintings):
    """Burt & Adelson's pyramid: image = band_0 + up(band_1 + up(... + coarsest)); the bands
    below the coarsest hold no mean (a band-pass's DC is ~0)."""
    images = sample_paintings[:4]
    pyramid = quality.laplacian_pyramid(images, quality.levels_for(64))
    assert [p.shape[1] for p in pyramid] == [64, 32, 16]
    rebuilt = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        rebuilt = band + quality.pyr_up(rebuilt)
    np.testing.assert_allclose(rebuilt, images.astype(np.float32), atol=1e-3)
    assert abs(pyramid[0].mean()) < 0.5 and abs(pyramid[-1].mean() - images.mean()) < 2


def test_sliced_wasserstein_of_a_shift_is_its_length_times_the_mean_projection():
    """W1 between a point cloud and itself shifted by t is |t . d| along each direction d; over
    random unit directions in D dimensions that averages |t| E|d_1| = |t| Gamma(D/2) /
    (sqrt(pi) Gamma((D+1)/2))."""
    rng = np.random.default_rng(0)
    points = rng.standard_normal((2000, 147)).astype(np.float32)
    shift = np.zeros(147, np.float32)
    shift[:3] = [3.0, 4.0, 0.0]  # |t| = 5
    expected = 5.0 * math.gamma(147 / 2) / (math.sqrt(math.pi) * math.gamma(148 / 2))
    assert quality.sliced_wasserstein(points, points.copy(), rng) == 0.0
    got = quality.sliced_wasserstein(points, points + shift, rng, repeats=8)
    assert got == pytest.approx(expected, rel=0.05)


def test_palette_scores_a_uniform_colour_cast_as_its_delta_e():
    rng = np.random.default_rng(0)
    grey = np.full((8, 32, 32, 3), 128, np.uint8)
    reddish = grey.copy()
    reddish[..., 0] = 150
    a = quality.Descriptors(grey, 8 * 128, rng)
    b = quality.Descriptors(reddish, 8 * 128, rng)
    delta_e = np.linalg.norm(quality.srgb_to_lab([150, 128, 128]) - quality.srgb_to_lab([128] * 3))
    assert quality.palette_distance(a, a, rng, 10**6) == pytest.approx(0.0, abs=1e-9)
    assert quality.palette_distance(a, b, rng, 10**6) == pytest.approx(delta_e, rel=0.01)


def test_azimuthal_profile_of_white_noise_follows_the_ring_lengths():
    """White noise has the same expected power at every frequency, so the power integrated over
    the ring of radius r is proportional to the frequencies on it (~2 pi r): the profile is
    10 log10 of the ring's share of the frequencies 1 <= r < S/2 (Durall et al.'s azimuthal
    integration, normalised to unit AC power)."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 64, 3)).astype(np.uint8)
    profile = quality.azimuthal_profiles(noise).mean(axis=0)  # Radii 1 ... 31.
    u, v = np.meshgrid(np.arange(-32, 32), np.arange(-32, 32))
    radius = np.rint(np.hypot(u, v))
    on_ring = np.array([(radius == r).sum() for r in range(1, 32)], np.float64)
    assert on_ring[15] == pytest.approx(2 * np.pi * 16, rel=0.15)
    np.testing.assert_allclose(profile, 10 * np.log10(on_ring / on_ring.sum()), atol=0.5)


def test_spectrum_and_fine_swd_see_blur(sample_paintings):
    reference = quality.Reference(sample_paintings, seed=0)
    clean = reference.card(sample_paintings)["measures"]
    soft = reference.card(blurred(sample_paintings))["measures"]
    assert soft["spectrum"] > 2 * max(clean["spectrum"], reference.floor["spectrum"])
    assert soft["swd_levels"][0] > 1.3 * clean["swd_levels"][0]


def test_checkerboard_sees_a_faint_period_2_pattern_and_clean_paintings_do_not_show_one(
        sample_paintings):
    clean = quality.checkerboard_db(sample_paintings)
    faint = quality.checkerboard_db(checkered(sample_paintings, amplitude=3.0))
    assert np.median(clean) < 3.0
    assert np.all(faint > clean + 6.0)


def test_ssim_is_tensorflows_on_luminance_and_one_for_identical_images(sample_paintings):
    import tensorflow as tf

    a, b = sample_paintings[:6], blurred(sample_paintings[:6])
    np.testing.assert_allclose(quality.ssim_luminance(a, a), 1.0, atol=1e-6)
    y = lambda x: tf.constant(np.asarray(x, np.float64) @ [0.299, 0.587, 0.114], tf.float32)[..., None]
    np.testing.assert_allclose(quality.ssim_luminance(a, b),
                               tf.image.ssim(y(a), y(b), max_val=255.0).numpy(), rtol=1e-5)
    assert np.all(quality.ssim_luminance(a, b) < 0.99)


def test_memorization_is_zero_for_copies_and_flagged(sample_paintings):
    reference = quality.Reference(sample_paintings[:20], seed=0)
    copies = reference.card(sample_paintings[:20])["measures"]
    others = reference.card(sample_paintings[20:])["measures"]
    assert copies["memorization"] == pytest.approx(0.0, abs=1e-6) and copies["memorized"]
    assert others["memorization"] > 0.5 * reference.floor["memorization"] and not others["memorized"]


def test_the_card_is_reproducible_and_checks_its_input(sample_paintings):
    reference = quality.Reference(sample_paintings, seed=3)
    first = reference.card(sample_paintings[::2])
    assert reference.card(sample_paintings[::2]) == first
    with pytest.raises(ValueError, match="resize"):
        reference.card(sample_paintings[:, :32, :32])
    with pytest.raises(ValueError, match="at least 4"):
        quality.Reference(sample_paintings[:3])
    with pytest.raises(ValueError, match="power-of-two"):
        quality.levels_for(96)


# ---- what the card ranks, on the competition's data ----

@pytest.fixture(scope="module")
def cards(shared_data):
    """At 128 px, against 100 of the competition's paintings: the cards of 100 other paintings,
    clean and degraded, and of 100 untranslated photos; with the floor."""
    paintings = load(str(shared_data / "monet_tfrec"), "real", 128)[1]
    photos = load(str(shared_data / "photo_tfrec"), "photos", 128, limit=100)[1][:100]
    reference = quality.Reference(paintings[:100], seed=0)
    other = paintings[100:200]
    sets = {"paintings": other, "blur": blurred(other), "jpeg 10": jpeg(other, 10),
            "checkerboard": checkered(other), "photos": photos}
    return reference.floor, {name: reference.card(images)["measures"] for name, images in sets.items()}


@pytest.mark.xdist_group("quality_cards")  # One worker computes the cards for both tests.
def test_the_card_ranks_paintings_near_the_floor_and_photos_far_from_it(cards):
    floor, card = cards
    paintings, raw = card["paintings"], card["photos"]
    assert paintings["score"] < 1.5 and not paintings["memorized"]
    assert raw["score"] > 2.5 * paintings["score"] and raw["palette"] > 2 * paintings["palette"]
    for key in ("swd", "palette", "spectrum"):
        assert raw[key] > max(paintings[key], floor[key]), key


@pytest.mark.xdist_group("quality_cards")
def test_each_degradation_is_worse_than_clean_on_the_measure_meant_to_catch_it(cards):
    _, card = cards
    clean, blur, low_quality, checker = (card[k] for k in ("paintings", "blur", "jpeg 10",
                                                           "checkerboard"))
    # Blur and JPEG at quality 10 take the high frequencies away: the spectrum and SWD's finest
    # level; the checkerboard adds power at the upsampling frequencies.
    assert blur["spectrum"] > 5 * clean["spectrum"] and low_quality["spectrum"] > 2 * clean["spectrum"]
    for degraded in (blur, low_quality, checker):
        assert degraded["swd_levels"][0] > 1.5 * clean["swd_levels"][0]
    assert checker["checkerboard"] > clean["checkerboard"] + 20.0
    assert max(blur["checkerboard"], low_quality["checkerboard"]) < clean["checkerboard"] + 1.0
    assert clean["score"] < min(blur["score"], low_quality["score"])


# ---- the command ----

def _write(folder, images, names):
    folder.mkdir()
    for image, name in zip(images, names):
        Image.fromarray(image).save(folder / f"{name}.png")


def test_cli_prints_the_card_with_floors_and_json_names_the_measures(tmp_path, sample_dir,
                                                                     sample_paintings):
    photos = load(str(sample_dir / "photo_tfrec"), "photos", 64)
    _write(tmp_path / "photos", photos[1][:8], photos[0][:8])
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as archive:
        for image, name in zip(blurred(photos[1][:8]), photos[0][:8]):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=95)
            archive.writestr(f"{name}.jpg", buffer.getvalue())
    command = [sys.executable, "-m", "monet_tf", "quality", f"--generated={tmp_path / 'images.zip'}",
               f"--real={sample_dir / 'monet_tfrec'}", f"--photos={tmp_path / 'photos'}"]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "floor" in text and "SSIM" in text and "score" in text
    card = json.loads(subprocess.run([*command, "--json"], capture_output=True, text=True,
                                     check=True).stdout)
    measures = card["measures"]
    assert set(measures) >= {"swd", "swd_levels", "palette", "spectrum", "checkerboard", "ssim",
                             "memorization", "score"}
    assert card["size"] == 64 and card["real"] == 30 and card["ssim_pairs"] == 8
    assert 0.3 < measures["ssim"] < 1.0  # Blurred photos against the photos themselves.


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, sample_dir):
    (tmp_path / "empty").mkdir()
    result = subprocess.run([sys.executable, "-m", "monet_tf", "quality",
                             f"--generated={tmp_path / 'nothing.zip'}",
                             f"--real={sample_dir / 'monet_tfrec'}"], capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing.zip" in lines[0] and "Traceback" not in result.stderr
