"""What monet_tf does differently on older JAX releases (Kaggle's TPU image pins jax 0.7.2).

Imports JAX only when called.
"""

from __future__ import annotations


def jax_version() -> tuple[int, int]:
    import jax

    return tuple(int(part) for part in jax.__version__.split(".")[:2])


def skip_executable_layouts() -> bool:
    """On jax < 0.8, stops JAX asking each compiled TPU program for its parameter and output
    layouts. Returns whether it did.

    jax < 0.8 asks every compiled executable for its layouts (pxla._get_layouts_from_executable)
    and its jaxlib answers through the base PjRtExecutable, which fetches the optimised HLO module
    from libtpu and deserialises it (jaxlib 0.7.2 has no PJRT C API override for it; 0.8 and
    later read the layouts through the C API). With the libtpus of that time that deserialisation
    grows without bound for a training step: past 24 GB for monet_tf's, with Kaggle's libtpu
    0.0.17 and with jax 0.7.2's own 0.0.23, or a crash in GetDefaultLayout for some programs
    (measured on compile-only devices; a TPU host goes through the same jaxlib code). JAX itself
    answers "no layouts" when the question fails (the `except` in that function), and dispatches
    with the default layouts then; this gives that answer without asking.
    """
    if jax_version() >= (0, 8):
        return False
    from jax._src.interpreters import pxla

    if getattr(pxla._get_layouts_from_executable, "_monet_tf", False):
        return True

    def no_layouts(executable, in_layouts, out_layouts, num_ordered_effects):
        return (None,) * len(in_layouts), (None,) * len(out_layouts)

    no_layouts._monet_tf = True
    pxla._get_layouts_from_executable = no_layouts
    return True
