"""`python -m monet_tf.tpu_compile`: `monet-tf compile-tpu` by its older name.

The code is monet_tf.training.tpu_compile now; importing from here says so.
"""

import sys

from monet_tf import cli


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(f"monet_tf.tpu_compile.{name} is now monet_tf.training.tpu_compile.{name}")


if __name__ == "__main__":
    cli.main(["compile-tpu", *sys.argv[1:]])
