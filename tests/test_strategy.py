"""Strategy selection and mixed-precision policy on this CPU-only machine."""

import os

import keras
import pytest
import tensorflow as tf

from monet_tf.strategy import (StrategyError, cpu_has_native_bfloat16, get_strategy,
                               set_mixed_precision, use_xla)


def test_cpu_default_and_mirrored():
    assert get_strategy("cpu") is tf.distribute.get_strategy()
    mirrored = get_strategy("cpu", cpu_replicas=2)  # conftest created two logical CPUs
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 2


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


def test_mixed_precision_policy():
    strategy = tf.distribute.get_strategy()
    try:
        native = "mixed_bfloat16" if cpu_has_native_bfloat16() else "float32"
        assert set_mixed_precision("auto", strategy) == native
        assert set_mixed_precision("mixed_bfloat16", strategy) == "mixed_bfloat16"
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        with pytest.raises(StrategyError, match="mixed_precision='fp8'"):
            set_mixed_precision("fp8", strategy)
    finally:
        keras.config.set_dtype_policy("float32")


def test_cpu_bfloat16_detection_matches_cpuinfo():
    flags = ""
    if os.path.exists("/proc/cpuinfo"):
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    expected = "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()
    assert cpu_has_native_bfloat16() == expected


def test_use_xla_auto_is_off_on_a_cpu_only_host_and_explicit_values_win():
    strategy = tf.distribute.get_strategy()
    assert not tf.config.list_physical_devices("GPU")
    assert use_xla("auto", strategy) is False
    assert use_xla("true", strategy) is True and use_xla(True, strategy) is True
    assert use_xla("False", strategy) is False
    with pytest.raises(StrategyError, match="--config.train.jit_compile='yes' is not one of auto"):
        use_xla("yes", strategy)
