"""`python -m monet_tf.predict`: `monet-tf predict` by its older name.

The code is monet_tf.inference.predict now; importing from here says so.
"""

import sys

from monet_tf import cli


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(f"monet_tf.predict.{name} is now monet_tf.inference.predict.{name}")


if __name__ == "__main__":
    cli.main(["predict", *sys.argv[1:]])
