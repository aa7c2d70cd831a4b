"""`train.mixed_precision=auto` on a CPU: the faster of float32 and bfloat16 as measured here,
once per machine. The choice is tested with the timings injected, both ways round, so that no
test depends on this machine's speed; one test times the real probe and checks only its form.
The training run that records the probe in config.json is tests/test_train.py's wandb run."""

import functools
import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_tf.models import precision_probe
from monet_tf.models.precision_probe import (BFLOAT16_MARGIN, ProbeShape, cache_key,
                                             choose_cpu_precision, cpu_precision)
from monet_tf.runtime.devices import Runtime, from_tf_strategy

# Seconds per pair of the training step (bench/train_step.py --quick): the Intel Xeon of issue 19
# (AVX512-BF16, no AMX: float32 1.208 pairs/s, bfloat16 0.757) and the AMD EPYC Zen 4 of the
# README's first table (float32 2.46 pairs/s, bfloat16 3.35).
XEON_NO_AMX = (1 / 1.208, 1 / 0.757)
EPYC_ZEN4 = (1 / 2.46, 1 / 3.35)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "precision.json"
    monkeypatch.setenv(precision_probe.PRECISION_CACHE_ENV, str(path))
    return path


def test_bfloat16_only_when_faster_by_the_margin():
    assert choose_cpu_precision(*XEON_NO_AMX) == "float32"
    assert choose_cpu_precision(*EPYC_ZEN4) == "mixed_bfloat16"
    assert choose_cpu_precision(1.0, 1.0) == "float32"
    assert choose_cpu_precision(1.0, 1.0 - BFLOAT16_MARGIN / 2) == "float32"  # A near-tie.
    assert choose_cpu_precision(1.0, 1.0 - 2 * BFLOAT16_MARGIN) == "mixed_bfloat16"


def _cpu_runtime(backend: str) -> Runtime:
    if backend == "tensorflow":
        if tf.config.list_physical_devices("GPU"):
            pytest.skip("this machine has a GPU: TensorFlow's auto follows it")
        return from_tf_strategy(tf.distribute.get_strategy())
    pytest.importorskip("jax")
    return Runtime("jax", "cpu", ["cpu:0"], 1, device_kind="cpu")


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
@pytest.mark.parametrize("timings, expected", [(XEON_NO_AMX, "float32"),
                                               (EPYC_ZEN4, "mixed_bfloat16")],
                         ids=["bfloat16_slower", "bfloat16_faster"])
def test_auto_on_a_cpu_takes_the_faster_policy_measured_once(backend, timings, expected, cache,
                                                             monkeypatch, capsys):
    measured = []

    def measure(backend_name, shape):
        measured.append((backend_name, shape))
        return timings

    monkeypatch.setattr(precision_probe, "measure_step", measure)
    shape = ProbeShape(ngf=32, image_size=128)
    probe = functools.partial(precision_probe.cpu_precision, shape=shape)
    runtime = _cpu_runtime(backend)
    try:
        assert runtime.precision("auto", probe) == expected
        assert keras.config.dtype_policy().name == expected
        assert measured == [(backend, shape)]
        line = capsys.readouterr().out.strip()
        f32, bf16 = (1e3 * t for t in timings)
        assert line == (f"precision auto on CPU {precision_probe.cpu_model()}: float32 {f32:.1f} "
                        f"ms, bfloat16 {bf16:.1f} ms per probe step -> {expected} (measured now, "
                        f"cached in {cache})")
        record = runtime.as_config()["precision_probe"]
        assert record["choice"] == expected and record["cached"] is False
        assert record["float32_ms"] == pytest.approx(f32, abs=1e-3)
        assert record["bfloat16_ms"] == pytest.approx(bf16, abs=1e-3)

        # The next run on this machine reads the cache and measures nothing.
        monkeypatch.setattr(precision_probe, "measure_step",
                            lambda *args: pytest.fail("measured again"))
        again = _cpu_runtime(backend)
        assert again.precision("auto", probe) == expected
        assert f"-> {expected} (cached from {record['measured']} in {cache})" in (
            capsys.readouterr().out)
        assert again.as_config()["precision_probe"] == {**record, "cached": True}
        # Explicit policies are taken as they are, without a probe.
        assert _cpu_runtime(backend).precision("float32", probe) == "float32"
    finally:
        keras.config.set_dtype_policy("float32")


def test_the_cache_is_per_cpu_backend_shape_and_isa_limit(cache, monkeypatch):
    shape = ProbeShape(ngf=32, image_size=128)
    key = cache_key("tensorflow", shape)
    assert key.startswith(f"{precision_probe.cpu_model()} | {precision_probe.cpu_cores()} cores | "
                          f"tensorflow {tf.__version__} | resnet_1blocks ngf 32 at 128 px")
    others = {cache_key("tensorflow", ProbeShape(ngf=64, image_size=128)),
              cache_key("tensorflow", ProbeShape(ngf=32, image_size=64)),
              cache_key("tensorflow", ProbeShape(ngf=32, image_size=128, jit_compile=True))}
    with monkeypatch.context() as patched:
        patched.setattr(precision_probe, "cpu_model", lambda: "another CPU")
        others.add(cache_key("tensorflow", shape))
    with monkeypatch.context() as patched:
        patched.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # No AMX.
        others.add(cache_key("tensorflow", shape))
    assert len(others) == 5 and key not in others

    # Where the cache cannot be written the run goes on and says so.
    blocker = cache.parent / "a_file"
    blocker.write_text("")
    monkeypatch.setenv(precision_probe.PRECISION_CACHE_ENV, str(blocker / "precision.json"))
    result = cpu_precision("tensorflow", shape, measure=lambda b, s: EPYC_ZEN4)
    assert result.choice == "mixed_bfloat16" and not result.cached
    assert "(measured now, not cached: " in result.describe()


def test_the_probe_times_both_policies_and_leaves_the_run_as_it_was():
    """The real measurement (its speeds not checked): both timings, the global dtype policy
    restored, the global NumPy draws untouched."""
    before = np.random.get_state()[1].copy()
    keras.config.set_dtype_policy("float32")
    float32_s, bfloat16_s = precision_probe.measure_step("tensorflow", ProbeShape(8, 32),
                                                         budget_s=0.2)
    assert 0 < float32_s < 10 and 0 < bfloat16_s < 10
    assert keras.config.dtype_policy().name == "float32"
    assert np.array_equal(np.random.get_state()[1], before)
