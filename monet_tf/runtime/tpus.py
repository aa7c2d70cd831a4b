"""TPU slices by the names users know (v5e-8 is Kaggle's), with what a plan needs of them.

One table: the name libtpu's compile-only topologies take, how many JAX devices (chips; v3's
two cores per chip are two devices) the slice has, and each device's HBM and dense bfloat16
peak, from Google Cloud's TPU system-architecture pages. Imports nothing heavy, so the plan and
the CLIs can read it before any backend is chosen.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str  # v5e-8
    libtpu_name: str  # what jax.experimental.topologies.get_topology_desc takes: v5e:2x4
    devices: int  # JAX devices of the slice (one per chip; v3: one per core)
    hbm_gib: float  # per device
    bf16_tflops: float  # dense peak per device
    options: tuple = ()  # further get_topology_desc keyword arguments, as (name, value) pairs
    hbm_gbps: float = 0.0  # HBM bandwidth per device, GB/s (a roofline's memory slope)

    @property
    def hbm_bytes(self) -> int:
        return int(self.hbm_gib * 2**30)

    @property
    def peak_flops(self) -> float:
        """bfloat16 FLOP/s of the whole slice."""
        return self.bf16_tflops * 1e12 * self.devices


_ONE_HOST_ONE_CHIP = (("chips_per_host_bounds", (1, 1, 1)),)

TOPOLOGIES = {t.name: t for t in (
    Topology("v5e-1", "v5e:1x1", 1, 16, 197, _ONE_HOST_ONE_CHIP, hbm_gbps=819),
    Topology("v5e-8", "v5e:2x4", 8, 16, 197, hbm_gbps=819),
    Topology("v6e-1", "v6e:1x1", 1, 32, 918, _ONE_HOST_ONE_CHIP, hbm_gbps=1640),
    Topology("v6e-8", "v6e:2x4", 8, 32, 918, hbm_gbps=1640),
    # A v4 chip's two TensorCores are one JAX device (megacore), as on a real v4-8.
    Topology("v4-8", "v4:2x2x1", 4, 32, 275, (("chip_config_name", "megacore"),), hbm_gbps=1200),
    Topology("v5p-8", "v5p:2x2x1", 4, 95, 459, hbm_gbps=2765),
    # 4 chips of 2 cores: 32 GiB, 123 TFLOP/s, 900 GB/s a chip.
    Topology("v3-8", "v3:2x2", 8, 16, 61.5, hbm_gbps=450),
)}


class UnknownTopology(ValueError):
    """A topology name that is not in TOPOLOGIES; the message lists the known ones."""


def topology(name: str) -> Topology:
    try:
        return TOPOLOGIES[name]
    except KeyError:
        raise UnknownTopology(
            f"unknown TPU topology {name!r}; known: {', '.join(TOPOLOGIES)}") from None
