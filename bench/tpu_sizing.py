r"""XLA:TPU sizing of the TPU configs: does each compile and fit a v5e-8, at what per-chip peak,
how large a per-chip batch still fits with 10% headroom, and XLA's FLOPs per pair.

    python bench/tpu_sizing.py                          # the six TPU configs on v5e-8 (hours)
    python bench/tpu_sizing.py --configs=kaggle_fastcut --topology=v6e-8 --headroom=0.2

Every figure comes from `python -m monet_tf compile-tpu --json`, one subprocess per compile at
the default effort (the program a run compiles): first every config's programs at its own batch
(train_step, translate and, where it scores, inception), then, config by config, train_step alone
at other per-chip batches. The largest batch is found by bisection between a batch that fits
(peak <= (1 - headroom) x HBM) and one that does not; the first probe is a linear guess from the
config's own compile (its temporaries per pair; --first_probe sets it), which the bisection then
checks, since XLA's memory is not linear in the batch (it rematerialises when memory is short).
A compile that XLA refuses for memory counts as not fitting. Prints one markdown table row per
config as it is done (for README), and --json_out keeps every compile's report.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ("kaggle_tpu", "resnet9", "kaggle_cut", "kaggle_fastcut", "kaggle_dcgan", "hinge")
_OUT_OF_MEMORY = ("RESOURCE_EXHAUSTED", "Ran out of memory", "does not fit")
_TIMED_OUT = "error: the compile timed out after"


class CompileFailed(RuntimeError):
    """A compile that failed other than for memory (or timed out): the sizing cannot go on."""


_CACHE: dict[str, list] = {}
_CACHE_PATH: pathlib.Path | None = None


def compile_reports(config: str, topology: str, batch: int | None, programs: str,
                    timeout: float) -> tuple[list[dict], str | None]:
    """(reports, error): the CLI's JSON lines, and its error line when it failed.

    With --cache, a compile already done (same compiled config, topology, batch and programs) is
    read back instead of recompiled, so an interrupted sizing goes on where it stopped.
    """
    key = f"{config}|{compiled_config_hash(config)}|{topology}|{batch}|{programs}"
    if key in _CACHE:
        reports, error = _CACHE[key]
        return reports, error
    reports, error = _compile(config, topology, batch, programs, timeout)
    if _CACHE_PATH is not None and not (error or "").startswith(_TIMED_OUT):  # Retried next time.
        _CACHE[key] = [reports, error]
        _CACHE_PATH.write_text(json.dumps(_CACHE, indent=1))
    return reports, error


def compiled_config_hash(config: str) -> str:
    """A hash of the resolved config without `estimate`, which no compiled program reads.

    So writing a sizing's figures into a config's plan keeps its compiles, while a change to a
    config it is built from (kaggle_cut.py runs kaggle_tpu.py) does not.
    """
    import hashlib
    import runpy

    resolved = runpy.run_path(str(REPO / "configs" / f"{config}.py"))["get_config"]()
    with resolved.unlocked():
        del resolved["estimate"]
    text = resolved.to_json_best_effort(sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _compile(config: str, topology: str, batch: int | None, programs: str,
             timeout: float) -> tuple[list[dict], str | None]:
    cmd = [sys.executable, "-m", "monet_tf", "compile-tpu",
           f"--config={REPO / 'configs'}/{config}.py",
           f"--topology={topology}", f"--programs={programs}", "--json"]
    if batch is not None:
        cmd.append(f"--config.train.batch_size={batch}")
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return [], f"{_TIMED_OUT} {timeout:.0f} s (--timeout)"
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode == 0:
        return reports, None
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return reports, (errors[-1] if errors else result.stderr[-2000:])


class Sizer:
    def __init__(self, config: str, args):
        self.config, self.args = config, args
        self.tried: dict[int, dict | str] = {}  # batch -> train_step report, or the error

    def fits(self, batch: int) -> bool:
        started = time.monotonic()
        reports, error = compile_reports(self.config, self.args.topology, batch, "train_step",
                                         self.args.timeout)
        step = next((r for r in reports if r["program"] == "train_step"), None)
        if step is None and not any(text in (error or "") for text in _OUT_OF_MEMORY):
            raise CompileFailed(f"{self.config} at batch {batch}: {error}")
        self.tried[batch] = step or error
        ok = step is not None and step["peak_bytes"] <= (1 - self.args.headroom) * step["hbm_bytes"]
        peak = f"{step['peak_bytes'] / 2**30:.2f} GiB" if step else "refused"
        print(f"  {self.config}: batch {batch}/chip -> {peak}, {'fits' if ok else 'does not fit'}"
              f" ({time.monotonic() - started:.0f} s)", flush=True)
        return ok

    def largest(self, known: int, guess: int) -> int:
        """The largest batch that fits, from `known` (fits) and a first probe at `guess`."""
        lo, hi, step = known, None, 1
        probe = max(known + 1, min(guess, self.args.max_batch))
        while hi is None and lo < self.args.max_batch:
            if self.fits(probe):
                lo = probe
                probe = min(self.args.max_batch, probe + step)
                step *= 2
            else:
                hi = probe
        while hi is not None and hi - lo > 1:
            middle = (lo + hi) // 2
            lo, hi = (middle, hi) if self.fits(middle) else (lo, middle)
        return lo


def own_compile(config: str, args) -> dict:
    """The config's programs at its own batch: the table's row without the largest batch."""
    started = time.monotonic()
    reports, error = compile_reports(config, args.topology, None, "train_step,translate,inception",
                                     args.timeout)
    return {"config": config, "topology": args.topology, "reports": reports, "error": error,
            "seconds": time.monotonic() - started}


def find_largest_batch(row: dict, args) -> None:
    """Adds the largest per-chip batch that fits (None when the config's own does not)."""
    step = next((r for r in row["reports"] if r["program"] == "train_step"), None)
    if step is None:
        return
    started = time.monotonic()
    batch = step["items_per_chip"]
    budget = (1 - args.headroom) * step["hbm_bytes"]
    fixed = step["peak_bytes"] - step["temp_bytes"]
    guess = int((budget - fixed) // max(1.0, step["temp_bytes"] / batch))
    guess = args.first_probe or guess
    sizer = Sizer(row["config"], args)
    fits_now = step["peak_bytes"] <= budget
    row["largest_batch"] = sizer.largest(batch, guess) if fits_now else None
    row["max_batch"] = args.max_batch
    row["tried"] = sizer.tried
    row["seconds"] += time.monotonic() - started


def _largest(row: dict) -> str:
    largest = row.get("largest_batch")
    if not largest:
        return "-"
    return f">= {largest}" if largest >= row["max_batch"] else str(largest)


def table_row(row: dict) -> str:
    step = next((r for r in row["reports"] if r["program"] == "train_step"), None)
    if step is None:
        return f"| `{row['config']}` | no: {row['error']} | | | | | | | |"
    others = {r["program"]: r for r in row["reports"] if r["program"] != "train_step"}
    fits = row["error"] is None
    gib = lambda r: f"{r['peak_bytes'] / 2**30:.2f}" if r else "-"  # noqa: E731
    return (f"| `{row['config']}` | {'yes' if fits else 'no: ' + str(row['error'])} | "
            f"{step['items_per_chip']} | {gib(step)} | {gib(others.get('translate'))} | "
            f"{gib(others.get('inception'))} | {_largest(row)} | "
            f"{step['flops_per_item'] / 1e12:.2f} | {step['compile_seconds'] / 60:.1f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--topology", default="v5e-8")
    parser.add_argument("--headroom", type=float, default=0.1)
    parser.add_argument("--max_batch", type=int, default=128, help="per chip")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per compile")
    parser.add_argument("--first_probe", type=int, default=0,
                        help="per-chip batch of the bisection's first probe instead of the linear"
                             " guess, e.g. a sister config's largest batch")
    parser.add_argument("--json_out", default="")
    parser.add_argument("--cache", default="", help="JSON file of compiles done, read and extended")
    args = parser.parse_args(argv)
    if args.cache:
        global _CACHE_PATH
        _CACHE_PATH = pathlib.Path(args.cache)
        if _CACHE_PATH.exists():
            _CACHE.update(json.loads(_CACHE_PATH.read_text()))
    from monet_tf.models.precision_probe import cpu_model

    print(f"XLA:TPU sizing on {args.topology}, headroom {args.headroom:.0%}; compiled on "
          f"{cpu_model()} ({os.cpu_count()} CPUs)", flush=True)
    print("| config | compiles and fits | batch/chip | train_step peak, GiB/chip | translate "
          "peak | inception peak | largest batch/chip "
          f"({args.headroom:.0%} headroom) | TFLOP per pair | train_step compile, min |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", flush=True)
    # Every config's own programs first (the table's other columns), then the bisections.
    rows = []
    for config in args.configs.split(","):
        rows.append(own_compile(config, args))
        print(table_row(rows[-1]), "(largest batch still to find)", flush=True)
        _save(rows, args)
    for row in rows:
        find_largest_batch(row, args)
        print(table_row(row), flush=True)
        _save(rows, args)
    print("\nthe table:")
    for row in rows:
        print(table_row(row))


def _save(rows, args) -> None:
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    try:
        main()
    except CompileFailed as e:
        sys.exit(f"error: {e}; compiles done so far are kept with --cache")
