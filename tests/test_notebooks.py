"""The notebooks of notebooks/ as a person runs them: each executed top to bottom in a real
Jupyter kernel (nbclient, ipykernel on this Python) on the bundled sample, with its parameters
injected papermill's way after the cell tagged `parameters`, and what the cells show checked:
the training's one line per epoch, the sample grid as a PNG, the scores, the translations, the
zip written and valid, no error. And each .ipynb is what notebooks/build.py makes of its .py.

The runs are offline as a Kaggle submission is: the kernel's proxy points nowhere, so the
Inception weights cannot be downloaded and the quality card alone scores (a CI machine with
internet would otherwise fetch 92 MB for MiFID).
"""

import ast
import base64
import importlib.util
import io
import json
import pathlib
import re
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("colab", "kaggle_gpu", "kaggle_tpu")
PARAMETERS = ("CONFIG", "STRATEGY", "WORKDIR", "DATA_DIR", "TIME_BUDGET", "INCEPTION_WEIGHTS",
              "SUBMISSION", "OVERRIDES", "REPOSITORY")


def _build():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _text(cell) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _cell(cell) -> tuple:
    """What a cell is, leaving out what a front end changes when it saves (ids, metadata other
    than tags, outputs)."""
    return cell["cell_type"], _text(cell), cell.get("metadata", {}).get("tags", [])


def test_each_notebook_is_its_source_built_with_outputs_stripped():
    build = _build()
    assert sorted(p.stem for p in build.sources()) == list(NAMES)
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == list(NAMES)
    for name in NAMES:
        committed = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
        built = build.notebook(NOTEBOOKS / f"{name}.py")
        assert [_cell(c) for c in committed["cells"]] == [_cell(c) for c in built["cells"]], (
            f"notebooks/{name}.ipynb differs from notebooks/{name}.py: run python "
            "notebooks/build.py")
        for cell in committed["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, name
        assert committed["metadata"]["kernelspec"]["name"] == "python3"
        assert committed["nbformat"] == 4 and committed["nbformat_minor"] >= 5


def test_build_names_the_line_of_a_malformed_source():
    build = _build()
    with pytest.raises(build.SourceError, match=r"x:1: text before the first"):
        build.cells("import os\n# %%\nx = 1\n", "x")
    with pytest.raises(build.SourceError, match=r"x:3: a markdown cell's lines start with '# '"):
        build.cells("# %% [markdown]\n# ## Title\nplain\n", "x")
    with pytest.raises(build.SourceError, match=r"x:1: a cell marker is"):
        build.cells("# %% [raw]\n", "x")
    (code,) = build.cells('# %% tags=["parameters"]\n\nA = 1\n\n', "x")
    assert code["metadata"] == {"tags": ["parameters"]} and code["source"] == ["A = 1"]


def _parameters_cell(notebook) -> int:
    tagged = [i for i, c in enumerate(notebook["cells"])
              if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "one cell tagged parameters"
    return tagged[0]


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_comes_first_and_names_what_exists(name):
    """The parameters cell is the first code cell, sets every parameter the tests inject (a
    renamed one would be injected in vain), and a Kaggle notebook's config file exists."""
    notebook = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    index = _parameters_cell(notebook)
    assert all(c["cell_type"] == "markdown" for c in notebook["cells"][:index])
    values = {node.targets[0].id: ast.literal_eval(node.value)
              for node in ast.parse(_text(notebook["cells"][index])).body}
    assert set(PARAMETERS) <= set(values)
    if name.startswith("kaggle"):
        assert (REPO / values["CONFIG"]).is_file()
        assert values["SUBMISSION"] == "/kaggle/working/images.zip"


def _inject(notebook, parameters: dict) -> None:
    """papermill's way: a cell after the `parameters` cell that assigns the new values."""
    import nbformat

    source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(_parameters_cell(notebook) + 1, cell)


def _outputs(cell, kind: str) -> list:
    return [o for o in cell.outputs if o.output_type == kind]


def _cell_calling(notebook, call: str):
    (cell,) = [c for c in notebook.cells if c.cell_type == "code" and call in c.source]
    return cell


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, tmp_path, sample_dir, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    from PIL import Image

    from monet_tf.inference.submission import check_zip

    # The kernel runs this Python (the package and its dependencies), whatever else "python3"
    # names on this machine: JUPYTER_PATH is searched first.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (monet_tf tests)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # No cached Inception weights,
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):  # and no download.
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")
    workdir, submission = tmp_path / "run", tmp_path / "images.zip"

    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    _inject(notebook, {
        "CONFIG": str(REPO / "tests" / "tiny_config.py"), "STRATEGY": "cpu",
        "WORKDIR": str(workdir), "DATA_DIR": str(sample_dir), "TIME_BUDGET": "10m",
        "SUBMISSION": str(submission),
        "OVERRIDES": ["--config.train.steps=2", "--config.data.steps_per_epoch=1",
                      "--config.eval.every=2", "--config.submission.allow_any_count=true"]})
    NotebookClient(notebook, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not _outputs(cell, "error"), (name, cell.source[:80])
    install = "".join(o.text for o in _outputs(_cell_calling(notebook, 'find_spec("monet_tf")'),
                                               "stream"))
    assert "monet_tf is already installed" in install and f"from {REPO}" in install

    # Training: the plan and one line per epoch, no redrawn bar (carriage returns, colours).
    training = "".join(o.text for o in _outputs(_cell_calling(notebook, "notebook.train("),
                                                "stream"))
    assert "--progress=epoch" in training and "\r" not in training and "\x1b[" not in training
    assert len(re.findall(r"^Epoch \d/2$", training, re.M)) == 2
    assert len(re.findall(r"^1/1 - \S+ - \S+/step - ", training, re.M)) == 2
    assert f"submission: {submission}: 32 images" in training

    # The latest sample grid, displayed as the PNG the run wrote.
    (grid,) = _outputs(_cell_calling(notebook, "notebook.latest_grid("), "execute_result")
    assert base64.b64decode(grid.data["image/png"]) == (
        workdir / "samples" / "epoch_0002.png").read_bytes()
    (curves,) = _outputs(_cell_calling(notebook, "notebook.loss_curves("), "execute_result")
    assert Image.open(_png(curves)).size == (900, 300)
    (scores,) = _outputs(_cell_calling(notebook, "notebook.score_table("), "execute_result")
    table = scores.data["text/html"]
    assert "<th>card_score</th>" in table and "<td>2</td>" in table and "mifid" not in table
    assert "export/best: epoch 2, by the quality card score" in table
    (sheet,) = _outputs(_cell_calling(notebook, "notebook.translations("), "execute_result")
    assert Image.open(_png(sheet)).size == (2 * 32, 2 * 32)  # 2 photos above their paintings

    # The submission: written, valid, and what the cell says of it.
    assert check_zip(str(submission), expected=32) == 32
    said = "".join(o.text for o in _outputs(_cell_calling(notebook, "check_submission("),
                                            "stream"))
    assert f"{submission}: 32 uniquely named 256x256 RGB JPEGs" in said
    assert "not a submission: Kaggle takes 7,000 to 10,000 images" in said
    if name == "colab":
        packed = workdir / "photo_to_monet.zip"
        assert packed.is_file() and f"packed as {packed}" in said


def _png(output):
    return io.BytesIO(base64.b64decode(output.data["image/png"]))


def test_stop_reaches_the_command_as_one_sigint_and_its_last_words_are_shown(capsys):
    """The notebook's Stop interrupts the kernel's main thread: the command gets one SIGINT
    (run_train.py saves on the first, exits unsaved on a second), says what it did, and the
    interrupt goes on to stop the cell."""
    import os
    import signal
    import threading

    from monet_tf import notebook

    child = ("import signal, sys, time\n"
             "count = []\n"
             "signal.signal(signal.SIGINT, lambda *_: count.append(1))\n"
             "print('training', flush=True)\n"
             "while not count: time.sleep(0.01)\n"
             "time.sleep(0.3)\n"
             "print(f'saved after {len(count)} SIGINT', flush=True)\n"
             "sys.exit(130)\n")
    stop = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))  # Jupyter's interrupt
    stop.start()
    with pytest.raises(KeyboardInterrupt):
        notebook.run([sys.executable, "-c", child])
    assert capsys.readouterr().out == "training\nsaved after 1 SIGINT\n"


def test_a_failed_command_stops_the_cell_naming_its_exit_code(capsys):
    from monet_tf import notebook

    with pytest.raises(notebook.CommandFailed, match=r"exited with code 3: what it said is above"):
        notebook.run([sys.executable, "-c", "import sys; print('bad input'); sys.exit(3)"])
    assert capsys.readouterr().out == "bad input\n"
