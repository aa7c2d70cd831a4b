"""What a test run cost: with MONET_TF_TEST_CPU_LOG=FILE each test adds a line (the hook below,
which tests/conftest.py takes in), and this sums them up:

  MONET_TF_TEST_CPU_LOG=/tmp/cpu.jsonl pytest -q -n 2 --dist loadgroup
  python -m tests.suite_timeline /tmp/cpu.jsonl [--top N]

Prints each worker's span, busy wall and CPU seconds and when it went idle (a worker idle while
the other runs a long group is time the run loses on 2 cores), the groups and modules by CPU
seconds, and the costliest tests.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import time

import pytest

_CPU_LOG = os.environ.get("MONET_TF_TEST_CPU_LOG")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With MONET_TF_TEST_CPU_LOG=FILE, one JSON line per test (setup, call and teardown): its
    worker, start, wall seconds and CPU seconds, this process's threads and the subprocesses it
    waited for (their own children included). On 2 shared cores wall time says little of a
    test's cost."""
    if not _CPU_LOG:
        yield
        return

    def cpu() -> float:
        own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                            resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    start, wall, used = time.time(), time.monotonic(), cpu()
    yield
    marker = item.get_closest_marker("xdist_group")
    line = json.dumps({"test": item.nodeid, "worker": os.environ.get("PYTEST_XDIST_WORKER", "-"),
                       "group": marker.args[0] if marker else None, "start": round(start, 3),
                       "wall": round(time.monotonic() - wall, 3), "cpu": round(cpu() - used, 3)})
    with open(_CPU_LOG, "a") as f:  # One short line a write: the workers' lines do not mix.
        f.write(line + "\n")


def load(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def summary(records: list[dict], top: int = 20) -> str:
    if not records:
        return "no tests recorded"
    begin = min(r["start"] for r in records)
    end = max(r["start"] + r["wall"] for r in records)
    lines = [f"{len(records)} tests, {end - begin:.0f} s from the first start to the last end, "
             f"{sum(r['cpu'] for r in records):.0f} CPU-s in all"]
    workers = collections.defaultdict(list)
    for r in records:
        workers[r["worker"]].append(r)
    for worker, rs in sorted(workers.items()):
        last = max(r["start"] + r["wall"] for r in rs)
        lines.append(f"  worker {worker}: {len(rs)} tests, busy {sum(r['wall'] for r in rs):.0f} s"
                     f", {sum(r['cpu'] for r in rs):.0f} CPU-s, done {last - begin:.0f} s in "
                     f"(idle {end - last:.0f} s at the end)")
    for title, key in (("groups", lambda r: r["group"] or "(no group)"),
                       ("modules", lambda r: r["test"].split("::")[0])):
        totals = collections.defaultdict(lambda: [0.0, 0.0, 0])
        for r in records:
            t = totals[key(r)]
            t[0], t[1], t[2] = t[0] + r["cpu"], t[1] + r["wall"], t[2] + 1
        lines.append(f"{title} by CPU-s (CPU-s, wall s, tests):")
        for name, (cpu, wall, count) in sorted(totals.items(), key=lambda kv: -kv[1][0])[:top]:
            lines.append(f"  {cpu:8.1f} {wall:8.1f} {count:4d}  {name}")
    lines.append("tests by CPU-s (CPU-s, wall s, worker, start s):")
    for r in sorted(records, key=lambda r: -r["cpu"])[:top]:
        lines.append(f"  {r['cpu']:8.1f} {r['wall']:8.1f} {r['worker']:>4} "
                     f"{r['start'] - begin:7.0f}  {r['test']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.suite_timeline",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="the file MONET_TF_TEST_CPU_LOG named")
    parser.add_argument("--top", type=int, default=20, help="rows per table")
    args = parser.parse_args(argv)
    print(summary(load(args.log), args.top))


if __name__ == "__main__":
    main()
