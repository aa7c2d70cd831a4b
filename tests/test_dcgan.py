"""DCGAN (model.kind=dcgan): noise -> paintings on both backends, its SavedModel, and
`python -m monet_tf predict --count`, which writes the asked number of valid, distinct images."""

import io
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from monet_tf.inference import predict
from monet_tf.training.callbacks import sample_grid
from monet_tf.inference.export import export_generator, export_noise_generator
from monet_tf.models.dcgan import DCGAN, build_dcgan, build_noise_generator, fixed_noise
from monet_tf.models.generators import build_generator
from tests import tiny_config

# Its module fixture serves every test here: one xdist worker runs them all (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("dcgan")

REPO = str(pathlib.Path(__file__).resolve().parents[1])
SIZE, LATENT = 32, 16


def tiny_dcgan_config():
    """tests/tiny_config.py as a DCGAN: 32 px, 16-d noise, 16 channels at 4x4."""
    cfg = tiny_config.get_config()
    cfg.model.kind = "dcgan"
    cfg.model.latent_dim = LATENT
    cfg.model.dcgan_width = 16
    cfg.loss.gan = "bce"
    cfg.loss.diffaugment = "color,translation,cutout"
    cfg.train.jit_compile = "false"
    return cfg


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", WANDB_MODE="offline")
    return env


def run_predict(*args: str) -> subprocess.CompletedProcess:
    """A fresh process, as a user runs it: the export must load with TensorFlow alone."""
    return subprocess.run([sys.executable, "-m", "monet_tf", "predict", *args], env=_env(),
                          capture_output=True, text=True, timeout=300)


def _decoded(data: bytes, size: int) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "JPEG" and image.mode == "RGB" and image.size == (size, size)
    return np.asarray(image, np.int32)


def _assert_distinct(images: list[np.ndarray]) -> None:
    for i, a in enumerate(images):
        for b in images[i + 1:]:
            assert np.abs(a - b).mean() > 1.0  # Different noise, different paintings.


def test_noise_generator_makes_paintings_of_the_image_size_in_tanh_range():
    cfg = tiny_dcgan_config()
    generator = build_noise_generator(cfg, seed=0)
    assert generator.input_shape == (None, LATENT)
    noise = np.random.default_rng(0).standard_normal((3, LATENT)).astype(np.float32)
    images = np.asarray(generator(noise, training=False))
    assert images.shape == (3, SIZE, SIZE, 3) and images.dtype == np.float32
    assert np.all(np.abs(images) <= 1.0) and images.std() > 0.01
    ups = [layer.name for layer in generator.layers
           if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert ups == ["up_1", "up_2", "to_rgb"]  # 4 -> 8 -> 16 -> 32.
    assert generator.get_layer("up_2").filters == cfg.model.ngf  # 16 -> 8 channels, the floor.
    same = build_noise_generator(cfg, seed=0)
    np.testing.assert_array_equal(np.asarray(same(noise)), np.asarray(generator(noise)))
    for bad in (48, 4):
        cfg.data.image_size = bad
        with pytest.raises(ValueError, match=f"data.image_size={bad}: .* power of two >= 8"):
            build_noise_generator(cfg)
    cfg.data.image_size = 8
    assert build_noise_generator(cfg).output_shape == (None, 8, 8, 3)


def _placeholder_batches(n_steps: int, batch: int) -> tf.data.Dataset:
    """(photo placeholder, monet) batches, as data.train_dataset(photos=False) gives them."""
    monet = np.random.default_rng(1).uniform(-1, 1, (n_steps * batch, SIZE, SIZE, 3))
    photo = np.zeros((n_steps * batch, 1, 1, 3), np.float32)
    return tf.data.Dataset.from_tensor_slices((photo, monet.astype(np.float32))).batch(
        batch, drop_remainder=True)


def test_training_batches_without_photos_keep_the_paintings_and_skip_the_photos(sample_dir):
    """data.train_dataset(photos=False): the same painting batches as with photos, beside a
    [B, 1, 1, 3] zero placeholder; and an epoch is one pass over the paintings."""
    from monet_tf import data

    cfg = tiny_dcgan_config().data
    sources = data.find_sources(str(sample_dir))
    report = data.validate(sources, heldout_fraction=cfg.heldout_fraction)
    both = data.train_dataset(sources, report, cfg, 4, seed=3).take(2)
    alone = data.train_dataset(sources, report, cfg, 4, seed=3, photos=False).take(2)
    for (photo, monet), (placeholder, same) in zip(both, alone):
        assert photo.shape == (4, SIZE, SIZE, 3) and placeholder.shape == (4, 1, 1, 3)
        assert not np.any(placeholder.numpy())
        np.testing.assert_array_equal(monet.numpy(), same.numpy())
    cfg.steps_per_epoch = 0
    assert data.steps_per_epoch(report, cfg, 4, domain="monet") == 30 // 4
    assert data.steps_per_epoch(report, cfg, 4) == (32 - report.photo.heldout_count) // 4


def test_step_trains_on_tensorflow_over_two_replicas(two_cpu_strategy):
    """Three steps under MirroredStrategy: both networks move, losses are finite, each
    optimizer counts 3, and the photos are a [B, 1, 1, 3] placeholder the step ignores."""
    cfg = tiny_dcgan_config()
    keras.config.set_dtype_policy("float32")
    with two_cpu_strategy.scope():
        model = build_dcgan(cfg, steps_per_epoch=3, global_batch_size=4)
    assert isinstance(model, DCGAN) and model.GENERATORS == ("noise_to_monet",)
    before = {n: [v.numpy().copy() for v in getattr(model, n).trainable_variables]
              for n in model.NETWORKS}
    data = two_cpu_strategy.experimental_distribute_dataset(_placeholder_batches(3, 4))
    history = model.fit(data, epochs=1, steps_per_epoch=3, verbose=0).history
    assert set(history) == set(model.METRICS)
    assert all(np.isfinite(v[0]) for v in history.values())
    for name in model.NETWORKS:
        optimizer = model.optimizer_of(name)
        assert int(optimizer.iterations.numpy()) == 3
        after = getattr(model, name).trainable_variables
        assert all(not np.allclose(a, b.numpy()) for a, b in zip(before[name], after)), name

    # The sample grid: per real painting, three from fixed noise (the same every epoch).
    monets = np.random.default_rng(3).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    grids = [sample_grid(model, None, monets, "epoch 1") for _ in range(2)]
    assert [t.get_text() for t in grids[0].texts] == [
        "epoch 1 (dcgan: noise_to_monet from fixed noise)"]
    assert [ax.get_title() for ax in grids[0].axes[:4]] == ["Monet"] + ["noise_to_monet"] * 3
    assert len(grids[0].axes) == 8
    first, again = (np.asarray(g.axes[1].images[0].get_array()) for g in grids)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - np.asarray(grids[0].axes[2].images[0].get_array())).mean() > 0.001
    for fig in grids:
        plt.close(fig)


JAX_STEP = """
import json, sys
from monet_tf.runtime.backend import select_backend
select_backend("jax", "cpu", 2)
import keras, numpy as np, tensorflow as tf
from monet_tf.models.dcgan import build_dcgan
from monet_tf.runtime.devices import make_runtime
from tests.test_dcgan import SIZE, _placeholder_batches, tiny_dcgan_config

runtime = make_runtime("cpu", cpu_replicas=2)
cfg = tiny_dcgan_config()
keras.config.set_dtype_policy("float32")
with runtime.scope():
    model = build_dcgan(cfg, steps_per_epoch=3, global_batch_size=4, jit_compile=True,
                        replicas=runtime.replicas)
before = [np.asarray(v.numpy()).copy() for v in model.trainable_variables]
rng = np.asarray(model.rng.state.numpy()).copy()
history = model.fit(_placeholder_batches(3, 4), epochs=1, steps_per_epoch=3, verbose=0).history
# The export: a TensorFlow subprocess rebuilds noise_to_monet from the run's config.
from monet_tf.models import checkpoints
from monet_tf.training import job as train
workdir = sys.argv[1]
checkpoints.save_config(cfg, workdir)
train.export_all(model, cfg, workdir + "/export", workdir)
noise = np.random.default_rng(5).standard_normal((3, cfg.model.latent_dim)).astype("float32")
np.save(workdir + "/noise.npy", noise)
np.save(workdir + "/jax.npy", np.asarray(model.noise_to_monet.predict_on_batch(noise)))
print(json.dumps({
    "devices": runtime.replicas,
    "losses": {k: float(v[0]) for k, v in history.items()},
    "iterations": [int(model.optimizer_of(n).iterations.numpy()) for n in model.NETWORKS],
    "moved": [bool(not np.allclose(a, v.numpy()))
              for a, v in zip(before, model.trainable_variables)],
    "rng_moved": bool(not np.array_equal(rng, model.rng.state.numpy())),
}))
"""


def test_step_trains_on_jax_over_two_devices_and_exports_for_tensorflow(tmp_path):
    """The same step on Keras' JAX backend, in its own process (Keras picks the backend once
    per process), sharded over two host devices: the noise comes from the step's RNG
    variable, which the stateless step carries and advances. The run's export (through a
    TensorFlow subprocess, from the networks' .weights.h5) paints what the JAX model paints."""
    pytest.importorskip("jax")
    env = {**_env(), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", JAX_STEP, str(tmp_path)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2
    assert set(out["losses"]) == {"monet_gen_loss", "gen_total_loss", "monet_critic_loss"}
    assert all(np.isfinite(v) for v in out["losses"].values())
    assert out["iterations"] == [3, 3]
    assert all(out["moved"]) and out["rng_moved"]
    serve = tf.saved_model.load(str(tmp_path / "export" / "noise_to_monet"))
    served = serve.signatures["serving_default"](noise=tf.constant(np.load(tmp_path / "noise.npy")))
    expected = np.round(np.clip((np.load(tmp_path / "jax.npy") + 1) * 127.5, 0, 255))
    assert np.abs(served["images"].numpy().astype(int) - expected).max() <= 1


def test_noise_generator_export_serves_noise_to_uint8_like_keras(tmp_path):
    generator = build_noise_generator(tiny_dcgan_config(), seed=3)
    path = tmp_path / "noise_to_monet"
    export_noise_generator(generator, str(path))
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (name, spec), = serve.structured_input_signature[1].items()
    assert name == "noise" and spec.dtype == tf.float32 and spec.shape.as_list() == [None, LATENT]
    noise = np.random.default_rng(0).standard_normal((4, LATENT)).astype(np.float32)
    served = serve(noise=tf.constant(noise))["images"].numpy()
    expected = np.round(np.clip((np.asarray(generator(noise)) + 1) * 127.5, 0, 255))
    assert served.dtype == np.uint8 and served.shape == (4, SIZE, SIZE, 3)
    assert np.abs(served.astype(int) - expected).max() <= 1
    assert serve(noise=tf.zeros([0, LATENT]))["images"].shape == (0, SIZE, SIZE, 3)


@pytest.mark.slow
def test_tiny_run_exports_noise_to_monet_and_predict_writes_the_asked_count(tmp_path, sample_dir):
    """A tiny DCGAN run on the sample: an epoch is one pass over the 30 paintings (3 steps of
    10; the photos would give 2), MiFID picks export/best by noise_to_monet's weights, the
    submission generates submission.count paintings; then a fresh `predict --count=13` process
    writes 13 valid, distinct JPEGs into a zip and into a folder."""
    from monet_tf.training import job as train
    from monet_tf.scoring.inception import build_inception

    weights = tmp_path / "inception.weights.h5"
    build_inception(None).save_weights(str(weights))
    cfg = tiny_dcgan_config()
    cfg.data.data_dir = str(sample_dir)
    cfg.data.steps_per_epoch = 0
    cfg.train.batch_size = 10
    cfg.train.epochs, cfg.train.decay_epochs = 1, 0
    cfg.eval.every, cfg.eval.num_images, cfg.eval.batch_size = 1, 4, 4
    cfg.eval.inception_weights = str(weights)
    cfg.submission.path = str(tmp_path / "images.zip")
    cfg.submission.allow_any_count = True
    cfg.submission.count, cfg.submission.batch_size = 5, 2
    workdir = tmp_path / "run"
    result = train.train(cfg, str(workdir), verbose=0)
    assert result.steps_done == 3 and result.epochs_done == 1
    export = workdir / "export" / "noise_to_monet"
    assert (export / "saved_model.pb").exists()
    assert not (workdir / "export" / "photo_to_monet").exists()
    assert (workdir / "export" / "best" / "noise_to_monet.weights.h5").exists()
    assert sorted(os.listdir(workdir / "demo")) == ["000_noise_to_monet.jpg",
                                                     "001_noise_to_monet.jpg"]
    assert (workdir / "samples" / "epoch_0001.png").exists()
    with zipfile.ZipFile(tmp_path / "images.zip") as archive:
        assert archive.namelist() == [f"{i:05d}.jpg" for i in range(5)]

    out_zip = tmp_path / "x.zip"
    made = run_predict(f"--model={export}", "--count=13", f"--output={out_zip}",
                       "--allow_any_count")
    assert made.returncode == 0, made.stderr[-3000:]
    assert "wrote 13 images" in made.stdout
    with zipfile.ZipFile(out_zip) as archive:
        names = archive.namelist()
        assert names == [f"{i:05d}.jpg" for i in range(13)]
        zipped = [_decoded(archive.read(n), 256) for n in names]
    _assert_distinct(zipped)

    folder = tmp_path / "generated"
    assert predict.predict(str(export), None, str(folder), count=13, image_size=SIZE,
                           batch_size=4, verbose=False) == 13
    written = [_decoded((folder / n).read_bytes(), SIZE) for n in sorted(os.listdir(folder))]
    assert len(written) == 13
    _assert_distinct(written)
    # The SavedModel's paintings of the noise seed 0 gives (the CLI's too), through the same
    # JPEG encoding: the untrained generator's grain alone moves JPEG pixels by ~5 levels.
    serve = tf.saved_model.load(str(export)).signatures["serving_default"]
    served = serve(noise=tf.constant(fixed_noise(13, LATENT, 0)))["images"]
    for name, expected in zip(sorted(os.listdir(folder)), served):
        got = tf.io.decode_jpeg((folder / name).read_bytes()).numpy().astype(int)
        expected = tf.io.decode_jpeg(tf.io.encode_jpeg(expected, quality=95)).numpy()
        assert np.abs(got - expected.astype(int)).max() <= 1, name


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A noise generator's and a translator's SavedModels."""
    root = tmp_path_factory.mktemp("exports")
    export_noise_generator(build_noise_generator(tiny_dcgan_config(), seed=0),
                           str(root / "noise_to_monet"))
    translator = build_generator("resnet_2blocks", ngf=8, seed=0)
    translator(np.zeros((1, SIZE, SIZE, 3), np.float32))
    export_generator(translator, str(root / "photo_to_monet"))
    return root


def test_predict_count_refuses_bad_flag_combinations_by_name(exports, tmp_path, sample_dir):
    noise, photo = str(exports / "noise_to_monet"), str(exports / "photo_to_monet")
    photos, out = str(sample_dir / "photo_tfrec"), str(tmp_path / "out")
    cli = run_predict(f"--model={noise}", f"--input={photos}", f"--output={out}")
    assert cli.returncode == 2
    assert f"--input: {noise} generates images from noise (float32 [N, {LATENT}] in)" in cli.stderr
    assert "give --count=N" in cli.stderr
    cli = run_predict(f"--model={photo}", "--count=3", f"--output={out}")
    assert cli.returncode == 2
    assert f"--count: {photo} translates images" in cli.stderr and "--input" in cli.stderr
    with pytest.raises(predict.PredictError, match="--input and --count exclude each other"):
        predict.predict(noise, photos, out, count=3)
    with pytest.raises(predict.PredictError, match=f"--count is missing: {noise} generates"):
        predict.predict(noise, None, out)
    with pytest.raises(predict.PredictError, match=f"--input is missing: {photo} translates"):
        predict.predict(photo, None, out)
    with pytest.raises(predict.PredictError, match="--count must be a positive number"):
        predict.predict(noise, None, out, count=0)
    with pytest.raises(predict.PredictError,
                       match="--count=13 asks for 13 images; a Kaggle images.zip needs 7,000"):
        predict.predict(noise, None, str(tmp_path / "images.zip"), count=13)
    assert not os.path.exists(out) and not list(tmp_path.glob("images.zip*"))


def _workdir(root, kind: str, generators) -> str:
    """What a run leaves for predict: config.json and export/<generator>/ folders."""
    os.makedirs(root / "export")
    (root / "config.json").write_text(json.dumps({"model": {"kind": kind}}))
    for name in generators:
        os.makedirs(root / "export" / name)
    return str(root)


def test_missing_export_of_a_one_way_or_noise_run_says_which_to_use(tmp_path):
    cut = _workdir(tmp_path / "cut", "cut", ["photo_to_monet"])
    cli = run_predict(f"--model={cut}/export/monet_to_photo", f"--input={tmp_path}",
                      f"--output={tmp_path / 'out'}")
    assert cli.returncode == 2
    assert (f"{cut}/export/monet_to_photo does not exist: this run (model.kind=cut, "
            f"{cut}/config.json) has no monet_to_photo; CUT and FastCUT translate one way, use "
            f"{cut}/export/photo_to_monet") in cli.stderr
    fastcut = _workdir(tmp_path / "fastcut", "fastcut", [])
    with pytest.raises(predict.PredictError, match="model.kind=fastcut.*translate one way"):
        predict.predict(f"{fastcut}/export/best/monet_to_photo", str(tmp_path), "out")
    dcgan = _workdir(tmp_path / "dcgan", "dcgan", ["noise_to_monet"])
    with pytest.raises(predict.PredictError) as err:
        predict.predict(f"{dcgan}/export/photo_to_monet", str(tmp_path), "out")
    assert str(err.value) == (
        f"{dcgan}/export/photo_to_monet does not exist: this run (model.kind=dcgan, "
        f"{dcgan}/config.json) has no photo_to_monet; a DCGAN generates paintings from noise "
        f"instead of translating: use --model={dcgan}/export/noise_to_monet with --count=N "
        "(no --input)")
    cyclegan = _workdir(tmp_path / "cyclegan", "cyclegan", [])
    with pytest.raises(predict.PredictError, match="monet_to_photo' is not a folder"):
        predict.predict(f"{cyclegan}/export/monet_to_photo", str(tmp_path), "out")
