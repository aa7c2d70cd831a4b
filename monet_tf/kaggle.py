r"""Bundle monet_tf for a Kaggle notebook that runs with internet off.

    monet-tf bundle --output DIR [--dataset_name monet-tf-offline] [--inception_weights PATH]

DIR gets everything a submission notebook needs beside Kaggle's own image: wheels/ (this
package and the pure-Python dependencies the images lack), run_train.py, configs/, the bundled
sample data with its licences, optionally the InceptionV3 weights MiFID needs, and INSTALL.txt with
the notebook cells. Upload DIR as a Kaggle dataset, attach it, and run the cells: pip installs from
the attached wheels alone (--no-index --no-deps: setup.cfg asks for `tensorflow`, which pip does not
see as satisfied by the images' tensorflow-cpu).
"""

from __future__ import annotations

import dataclasses
import email.parser
import glob
import importlib.metadata
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

from absl import flags

from monet_tf.runtime import commandline

# Checked against Kaggle/docker-python at commit 78aaa43f8cc8e6b01bbaa5a56c39b4a2f61a8277
# (2026-08-12): tpu/requirements.in and tpu/config.txt (the TPU image: python:3.12 plus that list)
# and kaggle_requirements.txt (the GPU image: Colab's base image plus that list).
# What the images lack of monet_tf's required dependencies, bundled as wheels:
KAGGLE_LACKS = ("ml_collections",)
# What they have that monet_tf and the bundled wheels require (tensorboard comes with
# tensorflow-cpu, absl-py with TensorFlow and JAX, PyYAML with transformers and albumentations). wandb is in neither
# list: it is an optional extra (monet_tf[wandb]) whose wheels are platform-specific, and logging
# to it needs the internet anyway.
KAGGLE_PROVIDES = (
    "tensorflow", "tensorflow-cpu", "keras", "tensorflow-datasets", "tensorboard", "jax",
    "numpy", "scipy", "pillow", "matplotlib", "absl-py", "pyyaml",
)
# Kaggle's TPU image as pip requirements (and its Python), kept in one file that the tests
# install and README quotes.
KAGGLE_TPU_STACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kaggle_tpu_stack.txt")


def kaggle_tpu_stack() -> tuple[str, list[str]]:
    """(Python version, requirement lines) of Kaggle's TPU image (kaggle_tpu_stack.txt)."""
    python, requirements = None, []
    with open(KAGGLE_TPU_STACK) as f:
        for line in f:
            line = line.strip()
            if line.startswith("# python:"):
                python = line.split(":", 1)[1].strip()
            elif line and not line.startswith("#"):
                requirements.append(line)
    if python is None:
        raise ValueError(f"{KAGGLE_TPU_STACK} has no '# python: X.Y' line")
    return python, requirements


KAGGLE_PYTHON = kaggle_tpu_stack()[0]  # tpu/config.txt BASE_IMAGE; Colab's base image too.
PACKAGE = "monet_tf"
DEFAULT_DATASET = "monet-tf-offline"
WEIGHTS_NAME = "inception_v3_notop.h5"
_PACKAGE_FILES = ("setup.cfg", "setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_DATASET_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
FLAGS = flags.FLAGS  # Flags are defined only when run as a program (see define_flags).


class BundleError(ValueError):
    """The bundle cannot be made: the message names the flag, file or package and what is wrong."""


@dataclasses.dataclass
class Bundle:
    path: str
    wheels: list[str]
    weights_bundled: bool
    install_text: str
    size_bytes: int


def source_root() -> pathlib.Path:
    """The checkout that holds run_train.py beside the monet_tf package; an installed wheel has
    neither run_train.py nor configs/, so bundling needs the source tree."""
    root = pathlib.Path(__file__).resolve().parents[1]
    if not (root / "run_train.py").is_file():
        raise BundleError(
            f"run_train.py not found in {root}: monet_tf.kaggle bundles a source checkout "
            "(git clone), not an installed monet_tf"
        )
    return root


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheel_name(path: str) -> str:
    return _canonical(os.path.basename(path).split("-")[0])


def _wheel_metadata(path: str) -> tuple[email.message.Message, email.message.Message]:
    """The METADATA and WHEEL files of a wheel, parsed."""
    with zipfile.ZipFile(path) as zf:
        dist_info = [n for n in zf.namelist()
                     if re.fullmatch(r"[^/]+\.dist-info/(METADATA|WHEEL)", n)]
        files = {n.rsplit("/", 1)[1]: zf.read(n).decode("utf-8") for n in dist_info}
    if set(files) != {"METADATA", "WHEEL"}:
        raise BundleError(f"{os.path.basename(path)} is not a wheel (no .dist-info METADATA/WHEEL)")
    parser = email.parser.Parser()
    return parser.parsestr(files["METADATA"]), parser.parsestr(files["WHEEL"])


def check_pure_python(path: str) -> None:
    """Refuses a wheel that is not py3-none-any: Kaggle's Python and CPU need not match ours."""
    name = os.path.basename(path)
    parts = name[: -len(".whl")].split("-") if name.endswith(".whl") else []
    if len(parts) not in (5, 6):
        raise BundleError(f"{name} is not a wheel file name")
    python, abi, platform = parts[-3:]
    tags = {f"{p}-{a}-{pl}" for p in python.split(".") for a in abi.split(".")
            for pl in platform.split(".")}
    _, wheel = _wheel_metadata(path)
    if "py3-none-any" not in tags or wheel.get("Root-Is-Purelib", "").strip().lower() != "true":
        raise BundleError(
            f"{name} is not a pure-Python (py3-none-any) wheel; it may not install on Kaggle's "
            f"Python {KAGGLE_PYTHON}"
        )


def check_requirements(wheels: list[str]) -> None:
    """Every required dependency of a bundled wheel must be bundled or in Kaggle's images, and
    every wheel must accept Kaggle's Python: a notebook with internet off cannot fetch more."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    bundled = {_wheel_name(w) for w in wheels}
    present = {_canonical(n) for n in KAGGLE_PROVIDES}
    for wheel in wheels:
        metadata, _ = _wheel_metadata(wheel)
        name = os.path.basename(wheel)
        python = metadata.get("Requires-Python")
        if python and KAGGLE_PYTHON not in SpecifierSet(python):
            raise BundleError(f"{name} requires Python {python}; Kaggle has {KAGGLE_PYTHON}")
        for line in metadata.get_all("Requires-Dist") or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(
                {"extra": "", "python_version": KAGGLE_PYTHON, "sys_platform": "linux",
                 "platform_system": "Linux"}
            ):
                continue
            dep = _canonical(req.name)
            if dep not in bundled and dep not in present:
                raise BundleError(
                    f"{name} requires {req.name}, which is neither in Kaggle's images "
                    "(monet_tf.kaggle.KAGGLE_PROVIDES) nor bundled (KAGGLE_LACKS): check the "
                    "images and add it to one of the two"
                )


def _run_pip(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _pip_tail(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return " | ".join(lines[-3:]) or f"pip exited with {result.returncode}"


def build_package_wheel(root: pathlib.Path, dest: str) -> str:
    """Builds monet_tf's wheel from a copy of the sources, so that setuptools' build/ and
    .egg-info folders land in a temporary folder, not in the checkout."""
    with tempfile.TemporaryDirectory(prefix="monet_tf_wheel_") as tmp:
        src = os.path.join(tmp, "src")
        shutil.copytree(root / PACKAGE, os.path.join(src, PACKAGE),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for name in _PACKAGE_FILES:
            if (root / name).is_file():
                shutil.copy2(root / name, os.path.join(src, name))
        out = os.path.join(tmp, "wheels")
        result = _run_pip(["wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-w", out, src], timeout=600)
        built = glob.glob(os.path.join(out, f"{PACKAGE}-*.whl"))
        if result.returncode != 0 or len(built) != 1:
            raise BundleError(f"building the {PACKAGE} wheel failed: {_pip_tail(result)}")
        return shutil.copy2(built[0], dest)


def _cached_wheels(name: str) -> list[str]:
    """Wheels of `name` in pip's cache of built wheels (newest version last)."""
    result = _run_pip(["cache", "dir"], timeout=60)
    cache = result.stdout.strip() if result.returncode == 0 else ""
    if not cache:
        return []
    found = glob.glob(os.path.join(cache, "wheels", "**", "*.whl"), recursive=True)
    return sorted((w for w in found if _wheel_name(w) == _canonical(name)), key=os.path.getmtime)


def fetch_dependency_wheel(name: str, dest: str) -> str:
    """The wheel of dependency `name`: the version installed here (the one tested) when there is
    one, downloaded with pip, else from pip's cache."""
    try:
        spec = f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        spec = name
    with tempfile.TemporaryDirectory(prefix="monet_tf_dl_") as tmp:
        try:
            result = _run_pip(["download", "--no-deps", "--only-binary=:all:", "-d", tmp, spec],
                              timeout=300)
            why = _pip_tail(result)
        except subprocess.TimeoutExpired:
            why = "pip download timed out"
        got = [w for w in glob.glob(os.path.join(tmp, "*.whl"))
               if _wheel_name(w) == _canonical(name)]
        if got:
            return shutil.copy2(got[0], dest)
    cached = _cached_wheels(name)
    if cached:
        return shutil.copy2(cached[-1], dest)
    raise BundleError(
        f"cannot get a wheel of {name} ({spec}): pip download failed ({why}) and pip's cache "
        f"has none; download {name}'s py3-none-any wheel on a machine with internet and put it "
        f"in pip's wheel cache, or make the registry reachable"
    )


def check_weights(path: str) -> None:
    if not os.path.isfile(path):
        raise BundleError(f"--inception_weights={path}: no such file")
    if not path.endswith(".h5"):
        raise BundleError(f"--inception_weights={path}: expected an InceptionV3 notop .h5 file")
    with open(path, "rb") as f:
        head = f.read(2048 + len(_HDF5_MAGIC))
    if not any(head[o: o + len(_HDF5_MAGIC)] == _HDF5_MAGIC for o in (0, 512, 1024, 2048)):
        raise BundleError(f"--inception_weights={path} is not an HDF5 file")


def cached_weights() -> str | None:
    """Keras' cached ImageNet notop file, which training on this machine uses, if it is there."""
    from monet_tf.scoring.inception import imagenet_cache_path

    cached = imagenet_cache_path()
    return cached if os.path.isfile(cached) else None


def _copy_runnable(root: pathlib.Path, out: str) -> None:
    """run_train.py, configs/*.py and the sample data with its licences: what a notebook runs."""
    shutil.copy2(root / "run_train.py", os.path.join(out, "run_train.py"))
    configs = sorted((root / "configs").glob("*.py"))
    if not configs:
        raise BundleError(f"no configs/*.py in {root}")
    os.makedirs(os.path.join(out, "configs"))
    for config in configs:
        shutil.copy2(config, os.path.join(out, "configs", config.name))
    sample = root / "tfrecords" / "sample"
    if not sample.is_dir():
        raise BundleError(f"the bundled sample {sample} is missing")
    shutil.copytree(sample, os.path.join(out, "tfrecords", "sample"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(root / "tfrecords" / "README.md", os.path.join(out, "tfrecords", "README.md"))


def install_text(dataset_name: str, weights_bundled: bool) -> str:
    """The notebook cells, with the bundle at /kaggle/input/<dataset_name>."""
    base = f"/kaggle/input/{dataset_name}"
    train = (f"!python {base}/run_train.py --strategy=tpu --config={base}/configs/kaggle_tpu.py "
             "--workdir=/kaggle/working/run")
    if weights_bundled:
        train += f" --config.eval.inception_weights={base}/{WEIGHTS_NAME}"
        mifid = "MiFID uses the bundled InceptionV3 weights."
    else:
        mifid = ("No InceptionV3 weights are bundled, so MiFID is off: the quality card scores "
                 "the run and chooses the generator it submits; rebuild with "
                 "--inception_weights=PATH for MiFID.")
    return "\n".join([
        f"monet_tf offline bundle. Upload this folder as a Kaggle dataset named {dataset_name},",
        "attach it and the competition data (gan-getting-started) to a TPU notebook, and run",
        "these cells; the internet can stay off.",
        mifid,
        "",
        f"!pip install --no-index --find-links {base}/wheels --no-deps {PACKAGE} "
        + " ".join(KAGGLE_LACKS),
        train,
        "",
        "Where the run does not write /kaggle/working/images.zip itself (config submission.path),",
        "make the submission from its export:",
        "",
        "!python -m monet_tf predict --model /kaggle/working/run/export/photo_to_monet "
        "--input /kaggle/input/gan-getting-started/photo_tfrec --output /kaggle/working/images.zip",
        "",
    ])


def _is_earlier_bundle(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "INSTALL.txt")) and os.path.isdir(
        os.path.join(path, "wheels"))


def _check_output(output: str, root: pathlib.Path) -> str:
    if not output:
        raise BundleError("--output is required: the folder to write the bundle to")
    path = os.path.abspath(output)
    for copied in (root / PACKAGE, root / "configs", root / "tfrecords"):
        if pathlib.Path(path).is_relative_to(copied.resolve()):
            raise BundleError(f"--output={output} is inside {copied}, which the bundle copies")
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise BundleError(f"--output={output} exists and is not a folder")
        if os.listdir(path) and not _is_earlier_bundle(path):
            raise BundleError(f"--output={output} is a non-empty folder that is not a bundle; "
                              "refusing to overwrite it")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise BundleError(f"--output={output}: folder {parent} does not exist")
    return path


def _folder_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def bundle(output: str, dataset_name: str = DEFAULT_DATASET,
           inception_weights: str | None = None) -> Bundle:
    """Writes the offline bundle to `output`, replacing an earlier bundle there atomically.

    `inception_weights`: an InceptionV3 notop .h5 to bundle; None bundles Keras' cached ImageNet
    file when there is one.
    """
    if not _DATASET_SLUG.fullmatch(dataset_name or ""):
        raise BundleError(f"--dataset_name={dataset_name!r} is not a Kaggle dataset slug "
                          "(lowercase letters, digits and hyphens)")
    if inception_weights:
        check_weights(inception_weights)
    root = source_root()
    path = _check_output(output, root)
    inception_weights = inception_weights or cached_weights()

    partial, old = path + ".partial", path + ".old"
    for leftover in (partial, old):
        if os.path.lexists(leftover):
            shutil.rmtree(leftover)
    try:
        wheel_dir = os.path.join(partial, "wheels")
        os.makedirs(wheel_dir)
        wheels = [build_package_wheel(root, wheel_dir)]
        wheels += [fetch_dependency_wheel(name, wheel_dir) for name in KAGGLE_LACKS]
        for wheel in wheels:
            check_pure_python(wheel)
        check_requirements(wheels)
        _copy_runnable(root, partial)
        if inception_weights:
            shutil.copyfile(inception_weights, os.path.join(partial, WEIGHTS_NAME))
        text = install_text(dataset_name, weights_bundled=bool(inception_weights))
        with open(os.path.join(partial, "INSTALL.txt"), "w", encoding="utf-8") as f:
            f.write(text)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if os.path.lexists(path):
        os.rename(path, old)
    os.rename(partial, path)
    if os.path.lexists(old):
        shutil.rmtree(old)
    return Bundle(path, sorted(os.path.basename(w) for w in wheels), bool(inception_weights),
                  text, _folder_size(path))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        commandline.fail(f"unexpected arguments: {' '.join(argv[1:])} "
                         "(monet-tf bundle --output DIR)")
    try:
        result = bundle(FLAGS.output, FLAGS.dataset_name, FLAGS.inception_weights)
    except BundleError as err:
        commandline.fail(str(err))
    if not result.weights_bundled:
        print("note: no InceptionV3 weights bundled, so MiFID during training is off; pass "
              "--inception_weights=PATH (an InceptionV3 notop .h5) to bundle them")
    print(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB): {', '.join(result.wheels)}")
    print()
    print(result.install_text, end="")


def define_flags() -> None:
    flags.DEFINE_string("output", None, "Folder to write the bundle to (replaced if an earlier "
                        "bundle; any other non-empty folder is refused).")
    flags.DEFINE_string("dataset_name", DEFAULT_DATASET,
                        "Slug of the Kaggle dataset the bundle is uploaded as: INSTALL.txt's "
                        "paths are /kaggle/input/<dataset_name>/...")
    flags.DEFINE_string("inception_weights", None,
                        "InceptionV3 notop .h5 to bundle for MiFID (default: Keras' cached "
                        "ImageNet file when present).")

