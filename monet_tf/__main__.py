"""`python -m monet_tf <command> [flags]`: the `monet-tf` command (monet_tf/cli.py)."""

from monet_tf.cli import main

main()
