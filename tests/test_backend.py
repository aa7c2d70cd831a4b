"""--backend: the choice rule, its error messages, and the models importing without TensorFlow."""

import functools
import os
import pathlib
import subprocess
import sys

import pytest

from monet_tf.runtime.backend import BackendError, choose_backend, flag_from_argv
from monet_tf.runtime.devices import Runtime
from monet_tf.runtime.tf_strategy import StrategyError

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "tiny_config.py"


def choose(flag="auto", strategy="cpu", environ=None, tf_tpu=False, jax_tpu=False, have_jax=True):
    return choose_backend(flag, strategy, environ or {}, tf_tpu=lambda: tf_tpu,
                          jax_tpu=lambda: jax_tpu, have_jax=lambda: have_jax)


def test_auto_picks_jax_only_for_a_tpu_that_only_jax_can_drive():
    assert choose(strategy="tpu", tf_tpu=False, jax_tpu=True) == "jax"  # Kaggle's TPU image
    assert choose(strategy="tpu", tf_tpu=True, jax_tpu=True) == "tensorflow"
    assert choose(strategy="tpu", tf_tpu=False, jax_tpu=False) == "tensorflow"
    for strategy in ("gpu", "cpu"):
        assert choose(strategy=strategy, jax_tpu=True) == "tensorflow"


def test_explicit_flag_beats_the_environment_which_beats_auto():
    assert choose("tensorflow", "tpu", {"KERAS_BACKEND": "jax"}, jax_tpu=True) == "tensorflow"
    assert choose("jax", "cpu", {"KERAS_BACKEND": "tensorflow"}) == "jax"
    assert choose("auto", "cpu", {"KERAS_BACKEND": "jax"}) == "jax"
    assert choose("auto", "tpu", {"KERAS_BACKEND": "tensorflow"}, jax_tpu=True) == "tensorflow"


def test_errors_name_the_flag_and_the_fix():
    with pytest.raises(BackendError, match=r"--backend='torch' is not one of auto, jax, tensorflow"):
        choose("torch")
    with pytest.raises(BackendError, match=r"KERAS_BACKEND='torch' is not supported"):
        choose("auto", environ={"KERAS_BACKEND": "torch"})
    with pytest.raises(BackendError, match=r"--backend=jax but JAX is not installed: pip install"):
        choose("jax", have_jax=False)


def test_flags_are_read_from_argv_in_both_spellings():
    argv = ["prog", "--backend=jax", "--strategy", "tpu", "--other=1"]
    assert flag_from_argv(argv, "backend", "auto") == "jax"
    assert flag_from_argv(argv, "strategy", "cpu") == "tpu"
    assert flag_from_argv(argv, "cpu_replicas", "1") == "1"


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", WANDB_MODE="offline")
    env.update(extra)
    return env


def test_run_train_refuses_an_unknown_backend_before_any_work(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "run_train.py"), f"--config={TINY}",
         f"--workdir={tmp_path / 'run'}", "--backend=torch"],
        capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --backend='torch' is not one of auto, jax, tensorflow")
    assert not (tmp_path / "run").exists()


def test_run_train_with_jax_missing_says_how_to_install_it(tmp_path):
    # A `jax` package that fails to import stands in for a machine without JAX.
    fake = tmp_path / "site" / "jax"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named jax')\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "run_train.py"), f"--config={TINY}",
         f"--workdir={tmp_path / 'run'}", "--backend=jax"],
        capture_output=True, text=True, timeout=300,
        env=_env(PYTHONPATH=f"{tmp_path / 'site'}{os.pathsep}{REPO}"))
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --backend=jax but JAX cannot be imported"), last
    assert "pip install jax" in last and "--backend=tensorflow" in last


def test_export_cli_refuses_jax_and_runs_on_tensorflow_whatever_the_environment(tmp_path):
    refused = subprocess.run([sys.executable, "-m", "monet_tf", "export", f"--workdir={tmp_path}",
                              "--backend=jax"], capture_output=True, text=True, timeout=300,
                             env=_env())
    assert refused.returncode == 2
    assert "--backend=jax: this command runs on tensorflow only" in refused.stderr
    # KERAS_BACKEND=jax in the environment (a JAX notebook) does not stop the export CLI.
    missing = subprocess.run([sys.executable, "-m", "monet_tf", "export", f"--workdir={tmp_path}"],
                             capture_output=True, text=True, timeout=300,
                             env=_env(KERAS_BACKEND="jax"))
    assert missing.returncode == 2
    assert f"{tmp_path / 'config.json'} not found" in missing.stderr


NO_TENSORFLOW = """
import sys
sys.modules["tensorflow"] = None  # Any `import tensorflow` now raises ImportError.
import numpy as np
import keras
from monet_tf.models import generators, critics, losses, diffaugment, image_pool
from monet_tf.models.steps import jax_step as step_jax
from monet_tf.models import build_cyclegan
from monet_tf.config import base_config
from monet_tf.runtime.precision import auto_precision  # bench/step_jax.py's rule, on JAX alone
cfg = base_config()
cfg.data.image_size, cfg.model.generator, cfg.model.ngf, cfg.model.ndf = 32, "resnet_2blocks", 4, 4
cfg.loss.pool_size, cfg.loss.diffaugment = 1, "color,translation,cutout"
cfg.train.epochs, cfg.train.decay_epochs = 1, 0
model = build_cyclegan(cfg, steps_per_epoch=1, global_batch_size=1)
x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
model.fit(x, x, batch_size=1, epochs=1, verbose=0)  # (photos, paintings)
print("backend", keras.backend.backend(), "steps", int(model.optimizer.iterations.numpy()))
print("tensorflow imported:", any(m.split(".")[0] == "tensorflow" for m, v in sys.modules.items()
                                  if v is not None))
"""


def test_models_and_the_jax_step_import_and_train_without_tensorflow():
    pytest.importorskip("jax")
    result = subprocess.run([sys.executable, "-c", NO_TENSORFLOW], capture_output=True, text=True,
                            timeout=600, env=_env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu"))
    assert result.returncode == 0, result.stderr[-4000:]
    assert "backend jax steps 1" in result.stdout
    assert "tensorflow imported: False" in result.stdout


@pytest.mark.parametrize("kind, capability, expected", [
    ("tpu", None, "mixed_bfloat16"),
    ("gpu", 9.0, "mixed_bfloat16"),  # H100
    ("gpu", 8.0, "mixed_bfloat16"),  # A100
    ("gpu", 7.5, "float32"),  # T4: no bfloat16; float16 loss scaling is TensorFlow's only
    ("cpu", None, "float32"),
])
def test_jax_auto_precision_follows_the_device(kind, capability, expected, monkeypatch,
                                               tmp_path):
    import keras

    from monet_tf.models import precision_probe

    # A CPU's choice is measured (tests/test_precision_probe.py): here float32 is the faster.
    monkeypatch.setenv(precision_probe.PRECISION_CACHE_ENV, str(tmp_path / "precision.json"))
    monkeypatch.setattr(precision_probe, "measure_step", lambda backend, shape: (1.0, 2.0))
    runtime = Runtime("jax", kind, [f"{kind}:0"], 1, device_kind=kind, compute_capability=capability)
    probe = functools.partial(precision_probe.cpu_precision, shape=precision_probe.ProbeShape())
    try:
        assert runtime.precision("auto", probe) == expected
        assert keras.config.dtype_policy().name == expected
        assert runtime.precision("float32") == "float32"
        with pytest.raises(StrategyError, match="loss scaling.*TensorFlow backend only"):
            runtime.precision("mixed_float16")
        assert runtime.use_xla("auto") is True and runtime.use_xla("false") is False
    finally:
        keras.config.set_dtype_policy("float32")
