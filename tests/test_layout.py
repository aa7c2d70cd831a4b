"""The house: folders by role importing downward only, one command line for every tool, and
documentation whose every relative link resolves."""

import ast
import os
import pathlib
import re
import subprocess
import sys

from monet_tf import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "monet_tf"
# Lowest first: a module may import its own layer and those before it, never one after it.
LAYERS = ("config", "runtime", "data", "models", "config_check", "scoring", "inference", "kaggle",
          "training", "notebook", "cli", "__main__", "__init__")
PACKAGES = ("runtime", "data", "models", "models/steps", "scoring", "inference", "training")


def _layer(module: str) -> int:
    """monet_tf.runtime.devices -> the index of 'runtime' in LAYERS."""
    parts = module.split(".")
    return LAYERS.index(parts[1] if len(parts) > 1 else "__init__")


def _module(path: pathlib.Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path):
    """(line, imported monet_tf module) for every import in the file, lazy ones included."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("monet_tf"):
            for alias in node.names:  # `from monet_tf.x import y`: y may be a module
                candidate = f"{node.module}.{alias.name}"
                is_module = (REPO / pathlib.Path(*candidate.split("."))).with_suffix(".py").exists()
                yield node.lineno, candidate if is_module else node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("monet_tf"))


def test_every_import_goes_down_the_layers_and_none_comes_back():
    upward, graph = [], {}
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _module(path)
        graph[here] = set()
        for line, target in _imports(path):
            if target == here or target == "monet_tf":
                continue
            graph[here].add(target)
            if _layer(target) > _layer(here):
                upward.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not upward, upward

    def reaches(start, goal, seen):
        return any(nxt == goal or (nxt not in seen and not seen.add(nxt)
                                   and reaches(nxt, goal, seen))
                   for nxt in graph.get(start, ()))

    cycles = [m for m in graph if reaches(m, m, set())]
    assert not cycles, f"modules that import themselves through others: {cycles}"


def test_each_folder_says_what_lives_there_and_what_it_may_import():
    for package in PACKAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))
        assert doc and len(doc) > 80, package
        assert re.search(r"import", doc), f"{package}/__init__.py must say what it may import"


def _run(*args, timeout=180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env=env)


def test_one_command_line_lists_every_command_and_refuses_an_unknown_one():
    listed = _run("-m", "monet_tf", "--help")
    assert listed.returncode == 0
    for name, command in cli.COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(command.summary)}$", listed.stdout,
                         re.M), listed.stdout
    unknown = _run("-m", "monet_tf", "trian")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("error: 'trian' is not a command: one of "
                                      f"{', '.join(cli.COMMANDS)} (monet-tf --help)")


def test_the_package_and_a_module_run_the_same_command():
    """The same flags, the same one-line answer, by either name."""
    answers = [_run(*argv, "--nosuchflag=1") for argv in (
        ["-m", "monet_tf.data.make_tfrecords"], ["-m", "monet_tf", "make-tfrecords"])]
    assert [a.returncode for a in answers] == [2, 2]
    assert answers[0].stderr.strip() == answers[1].stderr.strip() == (
        "error: Unknown command line flag 'nosuchflag'; see --helpshort")


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_relative_link_of_the_documentation_resolves():
    pages = [REPO / "README.md", REPO / "tfrecords" / "README.md",
             *sorted((REPO / "docs").glob("*.md"))]
    assert len(pages) >= 10
    broken = []
    for page in pages:
        for target in _LINK.findall(page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
            elif anchor:
                headings = re.findall(r"^#+ (.+)$", resolved.read_text(), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, broken


def test_every_docs_page_is_reachable_from_the_readme():
    readme = (REPO / "README.md").read_text()
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README.md links no docs/{page.name}"
