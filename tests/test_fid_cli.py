"""`python -m monet_tf fid` in real subprocesses: folders, a Kaggle-style zip, JSON, missing
weights."""

import json
import os
import re
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

# Its module fixture serves every test here: one xdist worker runs them all (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("fid_cli")


@pytest.fixture(scope="module")
def image_sets(tmp_path_factory, repo_root):
    """Generated (5 JPEGs, one in a subfolder, varied sizes), real (4), their zip, and weights."""
    root = tmp_path_factory.mktemp("fid_cli")
    rng = np.random.default_rng(0)
    for name, count in (("generated", 5), ("real", 4)):
        for i in range(count):
            folder = root / name / ("nested" if i == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 256, size=(48 + 8 * i, 64, 3), dtype=np.uint8)
            tf.io.write_file(str(folder / f"{name}_{i}.jpg"), tf.io.encode_jpeg(image))
    archive = root / "images.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted((root / "generated").rglob("*.jpg")):
            z.write(path, path.name)
        z.writestr("README.txt", "not an image")  # skipped with a warning, not an error
    keras.utils.set_random_seed(0)
    weights = root / "random_inception.weights.h5"
    keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None).save_weights(str(weights))
    return root, archive, weights


def _run(repo_root, *args, env=None, timeout=300):
    full_env = dict(os.environ, PYTHONPATH=str(repo_root), TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, "-m", "monet_tf", "fid", *args], cwd=repo_root,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def _scores_from_text(stdout):
    values = {}
    for key in ("FID", "memorization", "MiFID"):
        match = re.search(rf"^{key}\s+(\S+)", stdout, re.M)
        assert match, stdout
        values[key] = float(match.group(1))
    return values


def test_folders_as_text_and_zip_as_json_give_the_same_scores(repo_root, image_sets):
    root, archive, weights = image_sets
    text = _run(repo_root, "--generated", str(root / "generated"), "--real", str(root / "real"),
                "--inception_weights", str(weights), "--batch_size", "2")
    assert text.returncode == 0, text.stderr
    assert "image" in text.stderr  # the progress bar goes to stderr, the scores to stdout
    shown = _scores_from_text(text.stdout)
    assert re.search(r"^generated\s+5 images", text.stdout, re.M)
    assert re.search(r"^train\s+4 images", text.stdout, re.M)  # defaults to the real set

    as_json = _run(repo_root, "--generated", str(archive), "--real", str(root / "real"),
                   "--train", str(root / "real"), "--inception_weights", str(weights), "--json")
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)  # stdout is exactly one JSON object
    assert result["num_generated"] == 5 and result["num_real"] == 4 and result["num_train"] == 4
    assert "README.txt" not in as_json.stdout and "skipped 1 members" in as_json.stderr
    for key, name in (("fid", "FID"), ("memorization", "memorization"), ("mifid", "MiFID")):
        assert np.isfinite(result[key])
        assert result[key] == pytest.approx(shown[name], rel=1e-4, abs=1e-12), key
    expected_mifid = result["fid"] / (result["memorization"] if result["memorization"] < 0.1 else 1.0)
    assert result["mifid"] == pytest.approx(expected_mifid, rel=1e-9)


def test_missing_imagenet_weights_stop_fast_with_both_options(repo_root, image_sets, tmp_path):
    root, archive, _ = image_sets
    # An empty Keras home (no cached ImageNet file) and a proxy that refuses connections, so the
    # download fails at once whether or not this machine has internet.
    env = {"KERAS_HOME": str(tmp_path / "keras_home"), "HTTPS_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9"}
    result = _run(repo_root, "--generated", str(archive), "--real", str(root / "real"), env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "--inception_weights" in result.stderr
    assert "ImageNet" in result.stderr and "download" in result.stderr
    assert str(tmp_path / "keras_home") in result.stderr  # where to put the file by hand


def test_bad_inputs_are_named_before_inception_is_built(repo_root, image_sets, tmp_path):
    root, _, weights = image_sets
    missing = tmp_path / "nothing.zip"
    result = _run(repo_root, "--generated", str(missing), "--real", str(root / "real"),
                  "--inception_weights", str(weights))
    assert result.returncode == 2 and f"{missing} does not exist" in result.stderr
    not_zip = tmp_path / "fake.zip"
    not_zip.write_text("hello")
    result = _run(repo_root, "--generated", str(not_zip), "--real", str(root / "real"),
                  "--inception_weights", str(tmp_path / "absent.h5"))
    assert result.returncode == 2 and "is not a zip archive" in result.stderr
