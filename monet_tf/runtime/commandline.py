"""What every command-line tool of monet_tf does the same way (monet_tf.cli runs them).

- `prepare(argv)`, first thing, before TensorFlow or JAX is imported: the quiet console
  (monet_tf.runtime.console; `--verbosity=0` brings the native log lines back) and, for the tools
  that take `--backend`, Keras' backend.
- `define_config(...)`: the `--config` flag, whose file and `--config.X=V` overrides
  ml_collections reads as the flag is defined; a missing file, an unknown field or a value of the
  wrong type is one line.
- `run(main)`: absl's app.run, whose flag errors are one line too, and so is a full disk
  (monet_tf.runtime.disk) at any write of the tool.

A user's mistake is `error: <flag>: what is wrong; what to do` on stderr and exit code 2, never a
traceback. Imports nothing heavy.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn

USAGE_ERROR = 2


def fail(message: str) -> NoReturn:
    """The one line a user's mistake gets, and exit 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(USAGE_ERROR)


def _argv_value(argv: list[str], names: tuple[str, ...]) -> str | None:
    """The value of --name=V / --name V / -name V in argv (absl takes one or two dashes)."""
    for i, arg in enumerate(argv):
        for name in names:
            for dash in ("--", "-"):
                if arg.startswith(f"{dash}{name}="):
                    return arg.split("=", 1)[1]
                if arg == f"{dash}{name}" and i + 1 < len(argv):
                    return argv[i + 1]
    return None


def prepare(argv: list[str] | None = None, backend: str | None = "auto") -> str | None:
    """Console, then backend, before the heavy imports. backend: "auto" reads --backend (and
    --strategy, --cpu_replicas) from argv; "tensorflow" or "jax" is the one backend this tool
    runs on (a --backend asking for another is refused); None leaves Keras alone."""
    from monet_tf.runtime.console import quiet

    argv = sys.argv if argv is None else argv
    verbosity = _argv_value(argv, ("verbosity", "v"))
    try:
        level = int(verbosity) if verbosity is not None else -1
    except ValueError:
        fail(f"--verbosity={verbosity}: not an integer; 0 shows the native INFO lines")
    quiet(verbosity is not None, level)
    if backend is None:
        return None
    from monet_tf.runtime.backend import select_backend_from_argv

    return select_backend_from_argv(argv, only=None if backend == "auto" else backend)


def define_config(name: str, default: str | None, help_text: str, **kwargs):
    """config_flags.DEFINE_config_file, whose load of the file and of the --config.X=V overrides
    in sys.argv happens here: a problem there is one line naming the flag."""
    from ml_collections import config_flags

    try:
        return config_flags.DEFINE_config_file(name, default, help_text, **kwargs)
    except Exception as err:  # noqa: BLE001: any failure of the user's file or override
        fail(config_problem(sys.argv, name, err))


def config_problem(argv: list[str], name: str, err: BaseException) -> str:
    """One line for a config file or override that ml_collections could not take."""
    from monet_tf.config import known_fields, unknown_field_message

    known = set(known_fields())
    for arg in argv[1:]:
        if arg.startswith(f"--{name}."):
            field = arg[len(name) + 3:].split("=", 1)[0]
            if field not in known and not any(k.startswith(field + ".") for k in known):
                return unknown_field_message(field).replace("--config.", f"--{name}.", 1)
    path = _argv_value(argv, (name,))
    if path is not None and not os.path.exists(path.split(":", 1)[0]):
        return (f"--{name}={path}: no such config file; name one of configs/*.py (e.g. "
                "configs/demo.py) or a path to your own")
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    where = f"--{name}={path}" if path is not None else f"--{name}"
    return f"{where}: could not be loaded ({type(err).__name__}: {first}); fix the file or flag"


def one_line(message: str) -> str:
    """A multi-line error as one line: its first line, and for a traceback inside it (a config
    file that raised), the exception and where in the user's file it was raised."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if "Traceback (most recent call last):" not in lines:
        return lines[0] if lines else message
    frames = [line for line in lines if line.startswith('File "')]
    where = f" ({frames[-1].split(', in ')[0]})" if frames else ""
    return f"{lines[0].rstrip(':')}: {lines[-1]}{where}"


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with its errors (and the config flag's) as one line."""
    from absl import flags

    try:
        rest = flags.FLAGS(argv)
    except flags.Error as err:
        fail(one_line(str(err)).removeprefix("flag ") + "; see --helpshort")
    except Exception as err:  # noqa: BLE001: a config file that fails to load at parse time
        fail(config_problem(argv, "config", err))
    for name in flags.FLAGS:  # A config file that failed to load says so when first read.
        flag = flags.FLAGS[name]
        if isinstance(getattr(type(flag), "config_filename", None), property) and flag.present:
            try:
                flag.value.to_dict()
            except Exception as err:  # noqa: BLE001
                fail(config_problem(argv, name, err))
    return rest


def run(main: Callable[[list[str]], None], argv: list[str] | None = None) -> None:
    """absl's app.run with parse_flags (argv: the program's name and flags; sys.argv's by
    default); a full disk ends the tool with its one line."""
    from absl import app

    def main_or_disk_full(args: list[str]) -> None:
        try:
            main(args)
        except Exception as err:
            from monet_tf.runtime.disk import disk_full

            full = disk_full(err)
            if full is None:
                raise
            fail(str(full))

    app.run(main_or_disk_full, argv=argv, flags_parser=parse_flags)
