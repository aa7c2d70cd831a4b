"""`monet-tf <command> [flags]`: every tool of monet_tf behind one command.

  monet-tf train --strategy=tpu --config=configs/kaggle_tpu.py   # also: python run_train.py
  monet-tf predict --model=runs/demo/export/photo_to_monet --input=photos/ --output=images.zip
  monet-tf fid --generated=images.zip --real=/kaggle/input/gan-getting-started/monet_tfrec
  monet-tf quality --generated=images.zip --real=/kaggle/input/gan-getting-started/monet_tfrec
  monet-tf --help                                               # every command, one line each

`python -m monet_tf <command>` is the same.

A command is a module with `define_flags()` and `main(argv)` (absl flags; `launch` parses its
own), imported only when it is asked for: after the console is made quiet and, for the commands
that take `--backend`, after Keras' backend is chosen, since Keras reads it once, when it is
first imported.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys

from monet_tf.runtime import commandline


@dataclasses.dataclass(frozen=True)
class Command:
    module: str
    summary: str
    # "auto": --backend (and --strategy) from the command line; "tensorflow" / "jax": the one
    # backend it runs on; None: it chooses in its own main (train) or needs none.
    backend: str | None = None
    absl: bool = True  # False: main(argv) reads its own arguments.


COMMANDS = {
    "train": Command("monet_tf.training.command", "train or resume a run, export it, write its "
                     "submission (python run_train.py)"),
    "predict": Command("monet_tf.inference.predict", "translate images with an exported "
                       "generator into JPEGs or Kaggle's images.zip"),
    "export": Command("monet_tf.inference.export", "export a run's generators as SavedModels "
                      "that need only TensorFlow", backend="tensorflow"),
    "fid": Command("monet_tf.scoring.fid", "FID, memorization distance and MiFID of generated "
                   "images", backend="auto"),
    "quality": Command("monet_tf.scoring.quality_command", "the quality card of generated "
                       "paintings, no pretrained network: SWD, palette, spectrum, SSIM, "
                       "memorization", backend="tensorflow"),
    "inspect": Command("monet_tf.data.inspect", "validate a data set and draw a report of it"),
    "make-tfrecords": Command("monet_tf.data.make_tfrecords", "write a folder of images as "
                              "competition-schema TFRecords"),
    "bundle": Command("monet_tf.kaggle", "build the offline bundle for a Kaggle notebook"),
    "compile-tpu": Command("monet_tf.training.tpu_compile", "compile a config's programs with "
                           "XLA:TPU for a TPU slice, no TPU needed", backend="jax"),
    "launch": Command("monet_tf.runtime.launch", "start N processes of one run on this "
                      "machine", absl=False),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {c.summary}" for name, c in COMMANDS.items())
    return (f"usage: monet-tf <command> [flags]   (also python -m monet_tf <command>)\n\n{rows}\n\n"
            "monet-tf <command> --helpshort lists a command's flags.")


def main(argv: list[str] | None = None) -> None:
    """Runs `argv[0]` (a command name) with the rest of argv as its flags."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if argv else commandline.USAGE_ERROR)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        commandline.fail(f"{name!r} is not a command: one of {', '.join(COMMANDS)} "
                         "(monet-tf --help)")
    command = COMMANDS[name]
    program = f"monet-tf {name}"
    commandline.prepare([program, *rest], backend=command.backend)
    module = importlib.import_module(command.module)
    if not command.absl:
        sys.exit(module.main(rest))
    module.define_flags()
    commandline.run(module.main, [program, *rest])
