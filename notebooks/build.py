"""Writes each notebooks/<name>.ipynb from its source, notebooks/<name>.py, with no outputs.

    python notebooks/build.py            # regenerate every notebook
    python notebooks/build.py --check    # exit 1 naming any notebook out of date

The sources are in jupytext's percent format, the way keras.io keeps its examples as text: a
`# %%` line starts a code cell, `# %% [markdown]` a markdown cell (its lines commented out),
and `tags=[...]` after the marker gives the cell's tags (papermill's `parameters`). jupytext
reads and writes the same files (`jupytext --to ipynb`); this script is the one the tests
check against, so the notebooks need no tool beyond Python to rebuild.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
_MARKER = re.compile(r"# %%(?: \[(?P<kind>markdown)\])?(?: tags=(?P<tags>\[.*\]))?\s*")
_KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}
# What each platform reads when the notebook is imported: Kaggle's accelerator and internet
# settings, Colab's runtime type. The notebooks say the same in words, for where it is not read.
PLATFORM = {
    "kaggle_tpu": {"kaggle": {"accelerator": "tpuV5e8", "isGpuEnabled": False,
                              "isInternetEnabled": True, "language": "python",
                              "sourceType": "notebook"}},
    "kaggle_gpu": {"kaggle": {"accelerator": "nvidiaTeslaT4", "isGpuEnabled": True,
                              "isInternetEnabled": True, "language": "python",
                              "sourceType": "notebook"}},
    "colab": {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}},
}


class SourceError(ValueError):
    """A notebook source is not in the percent format this script reads; the message says where."""


def cells(source: str, name: str) -> list[dict]:
    """The notebook cells of a percent-format source."""
    found: list[dict] = []
    for number, line in enumerate(source.splitlines(), 1):
        marker = _MARKER.fullmatch(line)
        if marker:
            tags = json.loads(marker["tags"]) if marker["tags"] else []
            found.append({"kind": marker["kind"] or "code", "tags": tags, "lines": []})
        elif line.startswith("# %%"):
            raise SourceError(f"{name}:{number}: a cell marker is '# %%', '# %% [markdown]' or "
                              f"either with tags=[...]; got {line!r}")
        elif not found:
            if line.strip():
                raise SourceError(f"{name}:{number}: text before the first '# %%' cell marker")
        elif found[-1]["kind"] == "markdown":
            if line and line != "#" and not line.startswith("# "):
                raise SourceError(f"{name}:{number}: a markdown cell's lines start with '# '")
            found[-1]["lines"].append(line[2:])
        else:
            found[-1]["lines"].append(line)
    notebook_cells = []
    for index, cell in enumerate(found):
        lines = cell["lines"]
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        text = "\n".join(lines)
        entry = {"cell_type": cell["kind"], "id": f"{name}-{index:02d}",
                 "metadata": {"tags": cell["tags"]} if cell["tags"] else {},
                 "source": text.splitlines(keepends=True)}
        if cell["kind"] == "code":
            entry.update(execution_count=None, outputs=[])
        notebook_cells.append(entry)
    return notebook_cells


def notebook(path: pathlib.Path) -> dict:
    """The notebook of a source file, as nbformat 4.5 JSON."""
    metadata = {"kernelspec": _KERNEL, "language_info": {"name": "python"},
                **PLATFORM.get(path.stem, {})}
    return {"cells": cells(path.read_text(encoding="utf-8"), path.stem), "metadata": metadata,
            "nbformat": 4, "nbformat_minor": 5}


def render(path: pathlib.Path) -> str:
    """The .ipynb text, as nbformat writes it (one-space indent, sorted keys)."""
    return json.dumps(notebook(path), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def sources() -> list[pathlib.Path]:
    return sorted(p for p in HERE.glob("*.py") if p.name != pathlib.Path(__file__).name)


def main(argv: list[str]) -> int:
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        print(f"usage: {argv[0]} [--check]", file=sys.stderr)
        return 2
    stale = []
    for source in sources():
        target = source.with_suffix(".ipynb")
        text = render(source)
        if check:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    if stale:
        print(f"out of date with their .py sources: {', '.join(stale)}; run python "
              "notebooks/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
