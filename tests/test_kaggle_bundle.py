"""monet_tf.kaggle bundle: the offline bundle, and that it installs and runs with nothing else."""

import os
import pathlib
import re
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from monet_tf import kaggle

REPO = pathlib.Path(__file__).resolve().parents[1]
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# What the fake Kaggle image leaves out of this venv: what the bundle must bring (and wandb,
# which the TPU image lacks too).
NOT_IN_KAGGLE = ("ml_collections", "monet_tf", "wandb")
_LEFT_OUT = re.compile(r"^(__editable__[._]*)?(" + "|".join(NOT_IN_KAGGLE) + r")([-_.]|$)")


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monet_tf.kaggle", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd or REPO)


def _fake_weights(path: pathlib.Path) -> pathlib.Path:
    path.write_bytes(HDF5_MAGIC + b"\0" * 64)
    return path


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> pathlib.Path:
    """One bundle for the module (building wheels takes seconds), made through the CLI."""
    tmp = tmp_path_factory.mktemp("kaggle")
    out = tmp / "bundle"
    weights = _fake_weights(tmp / "weights.h5")
    result = _cli("bundle", f"--output={out}", f"--inception_weights={weights}", cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert "pip install --no-index" in result.stdout and " MB)" in result.stdout
    return out


def _wheel(tmp_path: pathlib.Path, filename: str, requires: tuple[str, ...] = (),
           purelib: bool = True) -> str:
    name, version = filename.split("-")[:2]
    path = tmp_path / filename
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                    + "".join(f"Requires-Dist: {r}\n" for r in requires))
        zf.writestr(f"{name}-{version}.dist-info/WHEEL",
                    f"Wheel-Version: 1.0\nRoot-Is-Purelib: {str(purelib).lower()}\n")
    return str(path)


def test_bundle_contents(bundle_dir):
    wheels = sorted(p.name for p in (bundle_dir / "wheels").iterdir())
    assert [w.split("-")[0] for w in wheels] == ["ml_collections", "monet_tf"]
    for wheel in wheels:
        assert wheel.endswith("-py3-none-any.whl")
        kaggle.check_pure_python(str(bundle_dir / "wheels" / wheel))
    with zipfile.ZipFile(bundle_dir / "wheels" / wheels[1]) as zf:
        assert "monet_tf/kaggle.py" in zf.namelist()
    assert (bundle_dir / "run_train.py").read_bytes() == (REPO / "run_train.py").read_bytes()
    assert sorted(p.name for p in (bundle_dir / "configs").glob("*.py")) == sorted(
        p.name for p in (REPO / "configs").glob("*.py"))
    assert sorted(p.name for p in (bundle_dir / "tfrecords" / "sample").rglob("*.tfrec")) == sorted(
        p.name for p in (REPO / "tfrecords" / "sample").rglob("*.tfrec"))
    assert (bundle_dir / "tfrecords" / "README.md").is_file()
    assert (bundle_dir / kaggle.WEIGHTS_NAME).read_bytes().startswith(HDF5_MAGIC)
    install = (bundle_dir / "INSTALL.txt").read_text()
    base = "/kaggle/input/monet-tf-offline"
    assert (f"!pip install --no-index --find-links {base}/wheels --no-deps monet_tf ml_collections"
            in install)
    assert f"--config={base}/configs/kaggle_tpu.py --workdir=/kaggle/working/run" in install
    assert f"--config.eval.inception_weights={base}/{kaggle.WEIGHTS_NAME}" in install
    assert not [p for p in REPO.iterdir() if p.name in ("build", "dist")]


def test_rebundle_replaces_a_bundle_and_refuses_other_folders(bundle_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(kaggle.BundleError, match="not a bundle"):
        kaggle.bundle(str(other))
    assert (other / "keep.txt").read_text() == "mine"
    with pytest.raises(kaggle.BundleError, match="inside"):
        kaggle.bundle(str(REPO / "configs" / "out"))


def test_install_text_without_weights_turns_mifid_off():
    text = kaggle.install_text("my-bundle", weights_bundled=False)
    assert "--find-links /kaggle/input/my-bundle/wheels --no-deps monet_tf ml_collections" in text
    assert "--config.eval.every=0" in text and "--config.eval.inception_weights" not in text


def test_cached_weights_come_from_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert kaggle.cached_weights() is None
    from monet_tf.inception import IMAGENET_FILE

    (tmp_path / "models").mkdir()
    cached = _fake_weights(tmp_path / "models" / IMAGENET_FILE)
    assert kaggle.cached_weights() == str(cached)


def test_refuses_platform_wheels_and_unknown_dependencies(tmp_path):
    with pytest.raises(kaggle.BundleError, match="not a pure-Python"):
        kaggle.check_pure_python(_wheel(tmp_path, "fast-1.0-cp311-cp311-linux_x86_64.whl"))
    with pytest.raises(kaggle.BundleError, match="not a pure-Python"):
        kaggle.check_pure_python(_wheel(tmp_path, "odd-1.0-py3-none-any.whl", purelib=False))
    ok = _wheel(tmp_path, "dep-1.0-py3-none-any.whl", requires=("absl-py", "PyYAML>=5"))
    kaggle.check_requirements([ok])
    needs = _wheel(tmp_path, "needs-1.0-py3-none-any.whl",
                   requires=("dep", "brand-new-lib>=1", "pytest; extra == 'dev'"))
    with pytest.raises(kaggle.BundleError, match="brand-new-lib"):
        kaggle.check_requirements([ok, needs])


@pytest.mark.parametrize("args, flag", [
    (["bundle"], "--output"),
    (["bundle", "--output=x", "--dataset_name=Not A Slug"], "--dataset_name"),
    (["bundle", "--output=x", "--inception_weights=/no/such/weights.h5"], "--inception_weights"),
    (["bundle", "--outptu=x"], "outptu"),
    (["bundel", "--output=x"], "bundel"),
])
def test_bad_arguments_exit_2_naming_the_flag(args, flag, tmp_path):
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and flag in result.stderr
    assert not (tmp_path / "x").exists()


def _kaggle_like_venv(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, dict]:
    """A fresh venv that sees this venv's packages through symlinks, less NOT_IN_KAGGLE.

    No .pth files are linked (the editable monet_tf is one), nor what the new venv already has
    (its own pip and setuptools). Returns its python, site-packages and a clean environment.
    """
    venv = tmp_path / "kaggle_venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull  # No index, find-links or constraints from pip.conf.
    env.pop("VIRTUAL_ENV", None)
    site = pathlib.Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout.strip())
    ours = pathlib.Path(sysconfig.get_paths()["purelib"])
    assert site != ours and site.is_dir()
    for entry in ours.iterdir():
        name = entry.name.lower()
        if (_LEFT_OUT.match(name) or name.endswith(".pth") or name == "__pycache__"
                or (site / entry.name).exists()):
            continue
        (site / entry.name).symlink_to(entry)
    # pip must not believe any of these installed: it would uninstall them through the links.
    probe = ("import importlib.metadata as m, importlib.util as u, sys\n"
             f"names = {NOT_IN_KAGGLE!r}\n"
             "found = [n for n in names if u.find_spec(n)]\n"
             "for n in names:\n"
             "    try: m.distribution(n); found.append(n + ' (metadata)')\n"
             "    except m.PackageNotFoundError: pass\n"
             "print(found)\n")
    seen = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert seen.returncode == 0 and seen.stdout.strip() == "[]", seen.stdout + seen.stderr
    return python, site, env


@pytest.mark.slow
def test_bundle_installs_offline_into_a_kaggle_like_venv_and_dry_runs(bundle_dir, tmp_path):
    python, site, env = _kaggle_like_venv(tmp_path)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--find-links",
         str(bundle_dir / "wheels"), "--no-deps", "monet_tf", "ml_collections"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run(
        [str(python), "-c", "import monet_tf, ml_collections, monet_tf.kaggle; "
         "print(monet_tf.__file__); print(ml_collections.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert pathlib.Path(path).parent.parent == site, where.stdout
        assert not path.startswith(str(REPO)), where.stdout

    installed = subprocess.run([str(python), "-m", "monet_tf.kaggle", "bundle", "--output=x"],
                               capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert installed.returncode == 2 and "run_train.py not found" in installed.stderr

    workdir = tmp_path / "dry"
    dry = subprocess.run(
        [str(python), str(bundle_dir / "run_train.py"),
         f"--config={bundle_dir / 'configs' / 'kaggle_tpu.py'}", "--dry_run",
         f"--workdir={workdir}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-4000:]
    with zipfile.ZipFile(workdir / "images.zip") as zf:
        names = zf.namelist()
        assert len(names) == 32 and all(n.lower().endswith(".jpg") for n in names)
        assert zf.read(names[0])[:3] == b"\xff\xd8\xff"
    # The full run's plan at the config's assumed throughput, and its memory.
    assert "dry run: 3 steps on the sample" in dry.stdout, dry.stdout[-3000:]
    assert ("full run: 15,000 steps (68.5 epochs of 219 steps) at a global batch of 32 "
            "(4 x 8 devices) = 480,000 pairs") in dry.stdout, dry.stdout[-3000:]
    assert "training at an assumed 100 pairs/s: 1h20m (time_budget 4h15m)" in dry.stdout
    assert re.search(r"^memory: 28\.3M parameters; .* GiB per device", dry.stdout, re.M)
