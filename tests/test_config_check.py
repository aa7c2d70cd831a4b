"""One validation pass over the resolved config, and the one-line errors every CLI gives.

The table BAD holds a bad value for every field of monet_tf/config.py and a fragment of what its
error must say, so a field added without a rule fails here. The subprocess tests type what a new
user typed (issue 19's table) and want one line, exit 2, no traceback, before any work.
"""

import os
import pathlib
import re
import runpy
import subprocess
import sys

import ml_collections
import pytest

from monet_tf import config, config_check
from monet_tf.config import base_config
from monet_tf.config_check import ConfigError, check, check_global_batch, parse_duration

REPO = pathlib.Path(__file__).resolve().parents[1]
NOISE = re.compile(r"^[IWEF]\d{4} |All log messages before absl", re.M)

# field: (a value that cannot work, what the one line must say about it)
BAD = {
    "seed": (-1, "must be >= 0"),
    "data.data_dir": (3, "must be a string"),
    "data.monet": (None, "must be a string"),
    "data.photo": (["a"], "must be a string"),
    "data.image_size": (16, "must be >= 32"),
    "data.jitter": ("yes", "true or false"),
    "data.jitter_scale": (0.9, "must be >= 1.0"),
    "data.flip": (1, "true or false"),
    "data.shuffle_buffer": (0, "must be >= 1"),
    "data.steps_per_epoch": (-1, "must be >= 0"),
    "data.heldout_fraction": (1.0, "must be < 1.0"),
    "data.min_image_size": (0, "must be >= 1"),
    "data.skip_bad_records": ("no", "true or false"),
    "data.cache": (0, "true or false"),
    "model.kind": ("cyclgan", "did you mean cyclegan?"),
    "model.generator": ("resnet_xblocks", "resnet_<n>blocks"),
    "model.ngf": (0, "must be >= 1"),
    "model.upsample": ("bilinear", "is not one of transpose, resize, subpixel"),
    "model.instance_norm": ("batch", "is not one of group_norm, one_pass"),
    "model.reflect_padding": ("symmetric", "is not one of pad, gather"),
    "model.dropout": (1.0, "must be < 1.0"),
    "model.critic": ("stylegan", "is not one of patchgan"),
    "model.ndf": (0, "must be >= 1"),
    "model.critic_layers": (0, "must be >= 1"),
    "model.critic_noise": (-0.1, "must be >= 0.0"),
    "model.spectral_norm": ("on", "true or false"),
    "model.norm_epsilon": (0.0, "must be > 0.0"),
    "model.latent_dim": (0, "must be >= 1"),
    "model.dcgan_width": (0, "must be >= 1"),
    "loss.gan": ("wgan", "is not one of lsgan, bce, hinge"),
    "loss.cycle_weight": (-1.0, "must be >= 0.0"),
    "loss.identity_weight": (-0.5, "must be >= 0.0"),
    "loss.pool_size": (-1, "must be >= 0"),
    "loss.diffaugment": ("colour", "'colour' is not one of color, translation, cutout"),
    "loss.gan_weight": (-1.0, "must be >= 0.0"),
    "loss.nce_weight": (-1.0, "must be >= 0.0"),
    "loss.nce_identity": ("maybe", "must be auto, true or false"),
    "loss.nce_flip_equivariance": ("sometimes", "must be auto, true or false"),
    "loss.nce_layers": ("encoder", "not a ResNet encoder layer"),
    "loss.nce_patches": (0, "must be >= 1"),
    "loss.nce_units": (0, "must be >= 1"),
    "loss.nce_temperature": (0.0, "must be > 0.0"),
    "optim.lr": (-1.0, "must be > 0.0"),
    "optim.beta_1": (1.0, "must be < 1.0"),
    "optim.beta_2": (1.5, "must be < 1.0"),
    "optim.epsilon": (0.0, "must be > 0.0"),
    "train.batch_size": (0, "must be >= 1 (per replica)"),
    "train.epochs": (-1, "must be >= 0"),
    "train.decay_epochs": (2.5, "must be a whole number"),
    "train.steps": (-5, "must be >= 0"),
    "train.decay_fraction": (1.5, "must be <= 1.0"),
    "train.steps_per_execution": (0, "must be >= 1"),
    "train.jit_compile": ("always", "must be auto, true or false"),
    "train.mixed_precision": ("bfloat16", "did you mean mixed_bfloat16?"),
    "train.checkpoint_every": (0, "must be >= 1"),
    "train.time_budget": ("4h30", "did you mean 4h30m?"),
    "train.keep_checkpoints": (0, "must be >= 1"),
    "train.sample_every": (-1, "must be >= 0"),
    "train.num_samples": (0, "must be >= 1"),
    "train.deterministic": ("true", "true or false"),
    "train.demo_images": (0, "must be >= 1"),
    "eval.every": (-1, "must be >= 0"),
    "eval.num_images": (1, "must be >= 2 (a covariance needs two)"),
    "eval.batch_size": (0, "must be >= 1"),
    "eval.inception_weights": (0, "must be a string"),
    "submission.path": (False, "must be a string"),
    "submission.batch_size": (0, "must be >= 1"),
    "submission.allow_any_count": ("yes", "true or false"),
    "submission.count": (0, "must be >= 1"),
    "estimate.devices": (0, "must be >= 1"),
    "estimate.accelerator": ("v5e8", "did you mean v5e-8?"),
    "estimate.flops_per_pair": (-1.0, "must be >= 0.0"),
    "estimate.peak_fraction": (0.0, "must be > 0.0"),
    "estimate.pairs_per_second": (float("nan"), "must be finite"),
    "estimate.images_per_second": (-1.0, "must be >= 0.0"),
    "estimate.photos": (0, "must be >= 1"),
    "estimate.limit": ("", "must be a duration"),
    "wandb.enabled": ("false", "true or false"),
    "wandb.project": ("  ", "must not be empty"),
    "wandb.entity": (1, "must be a string"),
    "wandb.run_name": (1.5, "must be a string"),
}


def _with(overrides: dict) -> ml_collections.ConfigDict:
    """base_config() with dotted fields replaced, built anew so any type can be planted (as a
    config file or a config.json can hold it)."""
    tree = base_config().to_dict()
    for field, value in overrides.items():
        *parents, leaf = field.split(".")
        node = tree
        for key in parents:
            node = node[key]
        node[leaf] = value
    return ml_collections.ConfigDict(tree)


def _problem(cfg, backend=None) -> str:
    with pytest.raises(ConfigError) as caught:
        check(cfg, backend)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_every_field_has_a_rule_and_a_bad_value_here():
    fields = set(config.known_fields())
    assert set(config_check.FIELDS) == fields, "a field without a rule, or a rule without a field"
    assert set(BAD) == fields, "a field without a bad value in this table"


@pytest.mark.parametrize("field", sorted(BAD))
def test_each_bad_value_is_one_line_naming_its_flag(field):
    value, expected = BAD[field]
    message = _problem(_with({field: value}))
    assert message.startswith(f"--config.{field}="), message
    assert expected in message, message


def test_the_base_and_every_shipped_config_pass():
    check(base_config(), "tensorflow")
    for path in sorted((REPO / "configs").glob("*.py")) + [REPO / "tests" / "tiny_config.py"]:
        check(runpy.run_path(str(path))["get_config"](), "jax")


def test_an_unknown_field_names_the_nearest_known_one():
    cfg = _with({})
    with cfg.unlocked():
        cfg.train.epoch = 3  # A config file's typo: ConfigDicts accept new fields.
    assert _problem(cfg) == ("--config.train.epoch=3: there is no such field; did you mean "
                             "--config.train.epochs?")
    resolved = _with({})  # What a run adds to its config.json is known.
    with resolved.unlocked():
        resolved.runtime = {"backend": "jax"}
        resolved.train.replicas = 2
    check(resolved)


@pytest.mark.parametrize("overrides,backend,expected", [
    ({"model.kind": "cut", "model.generator": "unet_256"}, None,
     "--config.model.generator=unet_256: model.kind=cut reads a ResNet's encoder layers"),
    ({"model.kind": "fastcut", "model.generator": "resnet_6blocks",
      "loss.nce_layers": "down_1,block_9"}, None,
     "--config.loss.nce_layers=down_1,block_9: resnet_6blocks has no block_9"),
    ({"data.image_size": 130}, None, "--config.data.image_size=130: resnet_9blocks needs a "
     "multiple of 4"),
    ({"model.generator": "unet_256", "data.image_size": 128}, None,
     "unet_256 takes 256x256 images only"),
    ({"model.generator": "unet_256", "model.upsample": "subpixel"}, None,
     "unet_256 upsamples with transposed convolutions only"),
    ({"model.kind": "dcgan", "data.image_size": 96}, None, "must be a power of two"),
    ({"model.critic_layers": 7, "data.image_size": 256}, None,
     "--config.model.critic_layers=7: 7 stride-2 layers leave no patch of a 256 px image; use "
     "at most 6"),
    ({"train.mixed_precision": "mixed_float16"}, "jax",
     "--config.train.mixed_precision=mixed_float16: needs loss scaling"),
    ({"train.epochs": 0, "train.decay_epochs": 0}, None, "train at least one epoch"),
    ({"model.kind": "dcgan", "model.dcgan_width": 32}, None,
     "--config.model.dcgan_width=32: is below model.ngf=64"),
    ({"model.kind": "dcgan", "submission.path": "images.zip", "submission.count": 100}, None,
     "--config.submission.count=100: Kaggle takes 7000 to 10000 images"),
])
def test_combinations_that_cannot_work(overrides, backend, expected):
    assert expected in _problem(_with(overrides), backend)


def test_combinations_that_can_work_pass():
    check(_with({"train.mixed_precision": "mixed_float16"}), "tensorflow")
    check(_with({"train.epochs": 0, "train.decay_epochs": 0, "train.steps": 100}))
    check(_with({"model.kind": "dcgan", "submission.path": "x.zip", "submission.count": 100,
                 "submission.allow_any_count": True}))
    check(_with({"model.kind": "cut", "model.generator": "resnet_12blocks",
                 "loss.nce_layers": "block_12"}))


@pytest.mark.parametrize("text,seconds", [
    ("4h30m", 16200), ("90m", 5400), ("600s", 600), ("600", 600), ("1.5h", 5400),
    ("1h0m30s", 3630), (" 2H ", 7200), ("", None)])
def test_durations_that_are_read(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text,expected", [
    ("4h30", "did you mean 4h30m?"), ("90m30", "did you mean 90m30s?"),
    ("4 hours", "not a duration"), ("0s", "longer than zero"), ("h", "not a duration")])
def test_durations_that_are_refused(text, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_duration(text)


def test_the_global_batch_must_fit_in_one_epoch():
    cfg = _with({"train.batch_size": 8})
    with pytest.raises(ConfigError, match=r"the global batch \(8 x 4 replicas\) is larger than "
                                          r"the 30 training photos"):
        check_global_batch(cfg, 4, 30, "photos")
    check_global_batch(cfg, 2, 30, "photos")
    check_global_batch(_with({"train.batch_size": 8, "data.steps_per_epoch": 5}), 4, 30, "photos")


def _run(*args, timeout=180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": "tensorflow"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # As a user's shell has it.
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("flags,expected", [
    (["--config.train.batch_size=0"], "error: --config.train.batch_size=0: must be >= 1"),
    (["--config.model.generator=resnet_xblocks"],
     "error: --config.model.generator=resnet_xblocks: is not one of"),
    (["--config.loss.gan=wgan"], "error: --config.loss.gan=wgan: is not one of lsgan, bce, hinge"),
    (["--config.train.epoch=3"],
     "error: --config.train.epoch: there is no such field; did you mean --config.train.epochs?"),
    (["--config=configs/nope.py"], "error: --config=configs/nope.py: no such config file"),
    (["--config.optim.lr=-1"], "error: --config.optim.lr=-1.0: must be > 0.0"),
    (["--config.train.time_budget=4h30"],
     "error: --config.train.time_budget=4h30: a number after a unit is ambiguous; did you mean "
     "4h30m?"),
    (["--config=configs/cut.py", "--config.eval.inception_weights=/nonexistent/inception.h5"],
     "error: --config.eval.every=5: MiFID needs InceptionV3 weights: --inception_weights file "
     "not found: /nonexistent/inception.h5."),
    (["--config.train.epochs=abc"], "error: --config.train.epochs=abc: invalid literal"),
])
def test_a_new_users_mistakes_get_one_line_and_exit_2(tmp_path, flags, expected):
    result = _run("run_train.py", f"--workdir={tmp_path / 'run'}", *flags)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr[-2000:]
    if "inception" in expected:
        assert lines[0].endswith("Or train without scores: --config.eval.every=0.")
    assert "Epoch" not in result.stdout and not (tmp_path / "run" / "checkpoints").exists()


def test_predict_keeps_native_log_lines_off_the_console_unless_verbosity_asks(tmp_path):
    args = ["-m", "monet_tf", "predict", f"--model={tmp_path}", f"--input={tmp_path}",
            f"--output={tmp_path / 'out'}"]
    quiet, loud = _run(*args), _run(*args, "--verbosity=0")
    assert quiet.returncode == loud.returncode == 2
    assert quiet.stderr.strip().splitlines() == [
        f"error: --model {tmp_path} is not a SavedModel (no saved_model.pb); "
        "export one with monet-tf export"], quiet.stderr
    assert NOISE.search(loud.stderr), loud.stderr  # TensorFlow's own lines, back on request.


def test_a_fatal_native_line_gets_through_the_filter():
    code = ("from monet_tf.runtime.console import quiet; import os; quiet(False, -1); "
            "os.write(2, b'I1204 13:00:00.000001 7 port.cc:153] noise\\n'); "
            "os.write(2, b'F1204 13:00:00.000002 7 fatal.cc:9] Check failed: x\\n')")
    result = _run("-c", code, timeout=60)
    assert "fatal.cc:9] Check failed: x" in result.stderr
    assert "port.cc:153] noise" not in result.stderr
