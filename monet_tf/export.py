"""`python -m monet_tf.export`: `monet-tf export` by its older name.

The code is monet_tf.inference.export now; importing from here says so.
"""

import sys

from monet_tf import cli


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(f"monet_tf.export.{name} is now monet_tf.inference.export.{name}")


if __name__ == "__main__":
    cli.main(["export", *sys.argv[1:]])
