"""`python -m monet_tf.fid`: `monet-tf fid` by its older name.

The code is monet_tf.scoring.fid now; importing from here says so.
"""

import sys

from monet_tf import cli


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(f"monet_tf.fid.{name} is now monet_tf.scoring.fid.{name}")


if __name__ == "__main__":
    cli.main(["fid", *sys.argv[1:]])
