"""The suite's own set-up: the command CI runs keeps the tests of an xdist group on one worker.

The slow modules train or compile once in a module fixture that all their tests read, and mark
themselves `xdist_group`; if the grouping silently stopped (pytest 9.2 with pytest-xdist 3.8:
pytest-dev/pytest-xdist#1386), each worker would run those fixtures again, and the suite would
take minutes longer without failing.
"""

import os
import pathlib
import shlex
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

GROUPED = '''
import os, pytest
pytestmark = pytest.mark.xdist_group("once")

@pytest.fixture(scope="module")
def made_once():
    with open(os.environ["FIXTURE_LOG"], "a") as f:
        f.write(f"{os.getpid()}\\n")

@pytest.mark.parametrize("i", range(6))
def test_uses_it(made_once, i):
    pass
'''
UNGROUPED = '''
import time, pytest

@pytest.mark.parametrize("i", range(6))
def test_other(i):
    time.sleep(0.05)
'''


def ci_pytest_flags() -> list[str]:
    command = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    flags = shlex.split(command.split("-m pytest", 1)[1])
    assert "-n" in flags and "--dist" in flags, command
    return [f for f in flags if not f.startswith("--durations")]


def test_ci_command_runs_a_groups_module_fixture_once(tmp_path):
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    for name in ("test_b.py", "test_c.py"):
        (tmp_path / name).write_text(UNGROUPED)
    log = tmp_path / "fixture.log"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *ci_pytest_flags(), "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "FIXTURE_LOG": str(log)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "18 passed" in result.stdout, result.stdout[-2000:]
    runs = log.read_text().split()
    assert len(runs) == 1, f"the group's module fixture ran in {len(runs)} workers: {runs}"


MEASURED = '''
import subprocess, sys, time

def test_waits():
    time.sleep(0.3)

def test_works():
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    subprocess.run([sys.executable, "-c", "import time\\nend = time.process_time() + 0.3\\n"
                    "while time.process_time() < end: pass"], check=True)
'''


def test_cpu_log_counts_each_tests_own_and_its_subprocesses_cpu(tmp_path):
    """MONET_TF_TEST_CPU_LOG (tests/suite_timeline.py's hook): a test's CPU seconds, its
    subprocesses' with them, not the wall time it waits; and the summary of them."""
    from tests import suite_timeline

    (tmp_path / "test_measured.py").write_text(MEASURED)
    log = tmp_path / "cpu.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "tests.suite_timeline", "--rootdir", str(tmp_path),
         str(tmp_path / "test_measured.py")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")},
             "MONET_TF_TEST_CPU_LOG": str(log)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    records = {r["test"].split("::")[-1]: r for r in suite_timeline.load(str(log))}
    assert set(records) == {"test_waits", "test_works"}
    assert records["test_waits"]["wall"] >= 0.3 and records["test_waits"]["cpu"] < 0.2
    assert records["test_works"]["cpu"] >= 0.6
    text = suite_timeline.summary(list(records.values()))
    assert text.startswith("2 tests, ") and "worker -: 2 tests" in text
    assert text.splitlines()[-2].endswith("test_measured.py::test_works")
