"""monet-tf bundle: the offline bundle, and that it installs and runs with nothing else."""

import json
import os
import pathlib
import re
import subprocess
import sys
import zipfile

import pytest

from monet_tf import kaggle
from tests import kaggle_venv

# Its module fixture serves every test here: one xdist worker runs them (--dist loadgroup), but
# the Kaggle-stack test, which builds the bundle again if it runs on the other one (seconds).
pytestmark = pytest.mark.xdist_group("kaggle_bundle")

REPO = pathlib.Path(__file__).resolve().parents[1]
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# What Kaggle's TPU image lacks: what the bundle must bring (and wandb, an optional extra).
NOT_IN_KAGGLE = ("ml_collections", "monet_tf", "wandb")


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monet_tf", *args], capture_output=True,
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


def test_install_text_without_weights_scores_with_the_quality_card_alone():
    text = kaggle.install_text("my-bundle", weights_bundled=False)
    assert "--find-links /kaggle/input/my-bundle/wheels --no-deps monet_tf ml_collections" in text
    assert "--config.eval.every" not in text and "--config.eval.inception_weights" not in text
    assert "MiFID is off: the quality card scores the run" in text


def test_cached_weights_come_from_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert kaggle.cached_weights() is None
    from monet_tf.scoring.inception import IMAGENET_FILE

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


def _run(python, *args, env, cwd, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def kaggle_tpu_venv() -> tuple[pathlib.Path, dict]:
    """A fresh venv of Kaggle's TPU image (tests/kaggle_venv.py, whose install began when the run
    collected the test): its python and a clean environment."""
    venv = kaggle_venv.ready(pathlib.Path(os.environ["MONET_TF_TEST_CACHES"]))
    if venv is None:
        pytest.skip(f"Python {kaggle.KAGGLE_PYTHON} (Kaggle's TPU image's) not found: install it "
                    f"(e.g. pyenv install {kaggle.KAGGLE_PYTHON}) to run this test")
    return venv


# A group of its own: xdist hands out the larger groups first, so this test starts mid-run, once
# the venv's install (begun at collection) is done, instead of waiting for it at the start.
@pytest.mark.xdist_group("kaggle_tpu_stack")
@pytest.mark.slow
def test_bundle_installs_offline_on_kaggles_tpu_stack_dry_runs_and_compiles(
        bundle_dir, kaggle_tpu_venv, tmp_path):
    python, env = kaggle_tpu_venv
    versions = _run(python, "-c", "import sys, importlib.metadata as m; print('%d.%d' % "
                    "sys.version_info[:2]); [print(n, m.version(n)) for n in ('tensorflow-cpu', "
                    "'jax', 'jaxlib', 'libtpu', 'keras')]", env=env, cwd=tmp_path)
    _, pins = kaggle.kaggle_tpu_stack()
    pinned = dict(p.split("==") for p in pins if "==" in p)
    assert versions.stdout.split("\n")[0] == kaggle.KAGGLE_PYTHON, versions.stdout
    for line in versions.stdout.strip().split("\n")[1:]:
        name, version = line.split()
        assert pinned[name] == version, versions.stdout
    # What the image lacks is not there before the bundle brings it.
    absent = _run(python, "-c", "import importlib.util as u; print([n for n in "
                  f"{NOT_IN_KAGGLE!r} if u.find_spec(n)])", env=env, cwd=tmp_path)
    assert absent.stdout.strip() == "[]", absent.stdout + absent.stderr

    install = _run(python, "-m", "pip", "install", "--no-index", "--find-links",
                   str(bundle_dir / "wheels"), "--no-deps", "monet_tf", "ml_collections",
                   env=env, cwd=tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    where = _run(python, "-c", "import monet_tf, ml_collections, monet_tf.kaggle; "
                 "print(monet_tf.__file__); print(ml_collections.__file__)", env=env, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert "site-packages" in path and not path.startswith(str(REPO)), where.stdout
    installed = _run(python, "-m", "monet_tf", "bundle", "--output=x", env=env,
                     cwd=tmp_path)
    assert installed.returncode == 2 and "run_train.py not found" in installed.stderr

    # The TPU notebook's path on this CPU: JAX over 2 host devices, a reduced copy of the
    # config's models, the full run's plan from XLA:TPU's FLOPs.
    workdir = tmp_path / "dry_jax"
    dry = _run(python, str(bundle_dir / "run_train.py"),
               f"--config={bundle_dir / 'configs' / 'kaggle_tpu.py'}", "--dry_run",
               "--backend=jax", "--strategy=cpu", "--cpu_replicas=2", f"--workdir={workdir}",
               env=env, cwd=tmp_path, timeout=1800)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-4000:]
    with zipfile.ZipFile(workdir / "images.zip") as zf:
        names = zf.namelist()
        assert len(names) == 32 and all(n.lower().endswith(".jpg") for n in names)
        assert zf.read(names[0])[:3] == b"\xff\xd8\xff"
    # The U-Net 256 halves its input eight times: its reduced copy keeps the 256 px.
    assert "dry run on JAX's CPU devices: a reduced copy (256 px, ngf 16, ndf 16" in dry.stdout
    assert "dry run: 3 steps on the sample" in dry.stdout, dry.stdout[-3000:]
    assert ("full run: 15,000 steps (68.5 epochs of 219 steps) at a global batch of 32 "
            "(4 x 8 devices) = 480,000 pairs") in dry.stdout, dry.stdout[-3000:]
    assert ("training at 1,381 pairs/s: 30% of the v5e-8's 1,576 bf16 TFLOP/s over XLA:TPU's "
            "0.34 TFLOP per pair (bench/tpu_sizing.py): 5m48s (time_budget 4h15m)") in dry.stdout

    # The same on TensorFlow 2.20 (the Kaggle GPU path's engine), at widths a CPU does quickly.
    workdir = tmp_path / "dry_tf"
    dry = _run(python, str(bundle_dir / "run_train.py"),
               f"--config={bundle_dir / 'configs' / 'kaggle_tpu.py'}", "--dry_run",
               "--config.model.ngf=16", "--config.model.ndf=16",
               f"--workdir={workdir}", env=env, cwd=tmp_path, timeout=1800)
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-4000:]
    assert "backend: tensorflow" in dry.stdout and "dry run: 3 steps on the sample" in dry.stdout
    assert re.search(r"^memory: 7\.\dM parameters; .* GiB per device", dry.stdout, re.M), dry.stdout

    # Kaggle's own compiler: XLA:TPU of libtpu 0.0.17 under jax 0.7.2, for a v5e-8.
    compiled = _run(python, "-m", "monet_tf", "compile-tpu",
                    f"--config={REPO / 'tests' / 'tpu_tiny_config.py'}", "--topology=v5e-8",
                    "--effort=fast", "--programs=train_step,translate", "--json", env=env,
                    cwd=tmp_path, timeout=1800)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    reports = [json.loads(line) for line in compiled.stdout.splitlines() if line.startswith("{")]
    assert [r["program"] for r in reports] == ["train_step", "translate"]
    assert all(r["fits"] and r["flops"] > 0 for r in reports), reports
