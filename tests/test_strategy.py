"""Strategy selection and mixed-precision policy on this CPU-only machine."""

import functools
import os

import keras
import pytest
import tensorflow as tf

from monet_tf.models import precision_probe
from monet_tf.runtime.devices import from_tf_strategy
from monet_tf.runtime.precision import auto_precision
from monet_tf.runtime.tf_strategy import (StrategyError, any_replica, cpu_has_native_bfloat16,
                                          get_strategy, kind_of, strategy_kind, use_xla,
                                          xla_choice)


def test_cpu_default_and_mirrored():
    assert get_strategy("cpu") is tf.distribute.get_strategy()
    mirrored = get_strategy("cpu", cpu_replicas=2)  # conftest created two logical CPUs
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 2


def test_any_replica_reduces_each_flag_over_the_replicas(two_cpu_strategy):
    """The stops a step checks, in one all-reduce: each flag on its own."""
    assert any_replica(two_cpu_strategy, (True, False, True)) == (True, False, True)
    assert any_replica(two_cpu_strategy, (False,)) == (False,)


def test_too_many_cpu_replicas_after_initialisation():
    with pytest.raises(StrategyError, match="--cpu_replicas=3 needs 3 logical CPU devices"):
        get_strategy("cpu", cpu_replicas=3)


def test_gpu_without_gpu_names_the_flag():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(StrategyError, match="--strategy=gpu"):
        get_strategy("gpu")


def test_bad_arguments(monkeypatch):
    with pytest.raises(StrategyError, match="--strategy='tpuv4'"):
        get_strategy("tpuv4")
    with pytest.raises(StrategyError, match="--cpu_replicas=0"):
        get_strategy("cpu", cpu_replicas=0)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(StrategyError, match="TF_CONFIG"):
        get_strategy("cpu")


@pytest.mark.parametrize("timings, expected", [((2.0, 1.0), "mixed_bfloat16"),
                                               ((1.0, 2.0), "float32")])
def test_mixed_precision_policy(timings, expected, monkeypatch, tmp_path):
    """auto on a CPU host is what was measured faster there (the probe's timings, float32 then
    bfloat16), set as Keras' policy; without a probe, float32."""
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: auto follows its compute capability")
    monkeypatch.setenv(precision_probe.PRECISION_CACHE_ENV, str(tmp_path / "precision.json"))
    monkeypatch.setattr(precision_probe, "measure_step", lambda backend, shape: timings)
    runtime = from_tf_strategy(tf.distribute.get_strategy())
    probe = functools.partial(precision_probe.cpu_precision, shape=precision_probe.ProbeShape())
    try:
        assert runtime.precision("auto", probe) == expected
        assert keras.config.dtype_policy().name == expected
        assert runtime.precision("auto") == "float32"
        assert runtime.precision("mixed_bfloat16") == "mixed_bfloat16"
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        with pytest.raises(StrategyError, match="mixed_precision='fp8'"):
            runtime.precision("fp8")
    finally:
        keras.config.set_dtype_policy("float32")


def test_cpu_bfloat16_detection_matches_cpuinfo():
    flags = ""
    if os.path.exists("/proc/cpuinfo"):
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    expected = "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()
    assert cpu_has_native_bfloat16() == expected


def test_use_xla_auto_is_off_on_a_cpu_only_host_and_explicit_values_win():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: auto means XLA on here")
    strategy = tf.distribute.get_strategy()
    assert use_xla("auto", strategy) is False
    assert use_xla("true", strategy) is True and use_xla(True, strategy) is True
    assert use_xla("False", strategy) is False
    with pytest.raises(StrategyError, match="--config.train.jit_compile='yes' is not one of auto"):
        use_xla("yes", strategy)


def test_strategy_kind_per_device_count():
    """One GPU trains under the default strategy; Mirrored only over several devices."""
    assert strategy_kind("gpu", gpus=1) == "default"
    assert strategy_kind("gpu", gpus=2) == "mirrored"
    assert strategy_kind("cpu", gpus=2) == "default"
    assert strategy_kind("cpu", gpus=0, cpu_replicas=2) == "mirrored"
    assert strategy_kind("gpu", gpus=1, multi_worker=True) == "multi_worker"
    assert strategy_kind("tpu", gpus=0) == "tpu"


def test_kind_of_real_strategies(two_cpu_strategy):
    assert kind_of(tf.distribute.get_strategy()) == "default"
    assert kind_of(two_cpu_strategy) == "mirrored"


@pytest.mark.parametrize("setting,kind,device,expected", [
    ("auto", "default", "gpu", True),
    ("auto", "default", "cpu", False),
    ("true", "default", "cpu", True),
    ("false", "default", "gpu", False),
    # TPUStrategy compiles the step itself: jit_compile stays off whatever the setting.
    ("auto", "tpu", "tpu", False),
    ("true", "tpu", "tpu", False),
    # keras#21366 / keras#19005: never XLA under Mirrored or multi-worker, on any device.
    ("auto", "mirrored", "gpu", False),
    ("true", "mirrored", "gpu", False),
    ("true", "multi_worker", "gpu", False),
])
def test_xla_choice_per_strategy_and_device(setting, kind, device, expected):
    on, note = xla_choice(setting, kind, device)
    assert on is expected
    if kind == "tpu":
        assert note == "XLA by TPUStrategy"
    if kind != "default" and setting == "true" and kind != "tpu":
        assert "ignored" in note and "keras#21366" in note


@pytest.mark.parametrize("device,capability,cpu_bf16,loss_scaling,expected", [
    ("tpu", None, False, True, "mixed_bfloat16"),
    ("gpu", 9.0, False, True, "mixed_bfloat16"),  # H100
    ("gpu", 8.0, False, True, "mixed_bfloat16"),  # A100
    ("gpu", 7.5, False, True, "mixed_float16"),  # T4
    ("gpu", 7.0, False, True, "mixed_float16"),  # V100
    ("gpu", 7.5, False, False, "float32"),  # T4 on JAX: no loss scaling there
    ("gpu", 6.0, False, True, "float32"),  # P100
    ("cpu", None, True, True, "mixed_bfloat16"),
    ("cpu", None, False, True, "float32"),
])
def test_auto_precision_per_device(device, capability, cpu_bf16, loss_scaling, expected):
    assert auto_precision(device, capability, cpu_bf16, loss_scaling) == expected


def test_tpu_without_a_tpu_says_what_to_do():
    with pytest.raises(StrategyError) as err:
        get_strategy("tpu")
    message = str(err.value)
    assert "--strategy=tpu" in message and "--backend=jax" in message
    assert "tensorflow-tpu" in message
