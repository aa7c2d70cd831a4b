# %% [markdown]
# # monet_tf on Colab (TPU or GPU runtime): train, look, take the generator to Kaggle
#
# Trains on the competition's photos and paintings (or the bundled sample), shows what it
# paints, and packs the exported generator for a Kaggle notebook, where the submission is made:
# the competition takes `images.zip` from a Kaggle notebook's output only.
#
# **Set up** (File → Upload notebook → this file; Runtime → Change runtime type):
# - *TPU v5e-1*: trains `configs/kaggle_tpu.py` on Keras' JAX backend, on one chip (the recipe
#   is sized for Kaggle's eight: a quarter of its pairs per step, or raise `train.batch_size`).
# - *T4 GPU* (or another): trains `configs/gpu.py` with TensorFlow, float16 with loss scaling on
#   a T4, bfloat16 from compute capability 8.0.
# - Neither: the CPU trains `configs/demo.py`, a small FastCUT, for a look at the job.
#
# **What Colab's runtimes ship** (googlecolab/backend-info, `pip-freeze.gpu.txt` and
# `pip-freeze.tpu.txt` at commit a724079, 2026-08-19, "Upgrade to Python 3.13"): Python 3.13;
# GPU runtime: TensorFlow 2.20.0, Keras 3.13.2, JAX 0.7.2 (CUDA 12); TPU runtime: JAX 0.7.2 with
# libtpu 0.0.21.1 and Keras 3.13.2, and **no TensorFlow** (not pre-installed on TPU runtimes
# since March 2025: googlecolab/colabtools#5164). TPU v5e-1 replaced v2-8 in September 2025
# (googlecolab/colabtools#5566). Neither ships `ml_collections`. So the install cell adds
# `ml_collections`, and on a TPU `tensorflow-cpu==2.20.0` (the pairing of Kaggle's TPU image with
# the same JAX 0.7.2), which monet_tf needs for its data pipeline. monet_tf's tests run Python
# 3.11 and, for Kaggle's TPU image, 3.12; Python 3.13 is untested here.
#
# The data: `DATA_DIR = ""` downloads the competition with `kagglehub` (preinstalled), which
# needs your Kaggle API token (Colab's *Secrets*: `KAGGLE_USERNAME` and `KAGGLE_KEY`, notebook
# access on) and the competition's rules accepted on kaggle.com. `DATA_DIR = "sample"` trains on
# the bundled sample (32 photos, 30 paintings) instead.

# %% tags=["parameters"]
CONFIG = ""  # "": configs/kaggle_tpu.py on a TPU, configs/gpu.py on a GPU, configs/demo.py else
STRATEGY = ""  # "": what the runtime has (tpu | gpu | cpu)
WORKDIR = "/content/run"  # checkpoints, samples/, metrics.csv, export/; rerun resumes
DATA_DIR = ""  # "": the competition through kagglehub; "sample": the bundled sample; or a path
TIME_BUDGET = "3h"  # training stops here, saves and exports (Colab may end an idle session)
INCEPTION_WEIGHTS = ""  # "": Keras' download for MiFID (else the quality card alone)
SUBMISSION = "/content/images.zip"  # a local check of what Kaggle would get
OVERRIDES = []  # more config fields, e.g. ["--config.train.batch_size=16"]
REPOSITORY = ""  # the git URL to clone monet_tf from

# %% [markdown]
# ## Install
# One cell that sees what it has: monet_tf already installed (nothing to do), or a repository
# to clone (internet). It says which accelerator it found and what it installed.

# %%
import importlib
import importlib.util
import pathlib
import shutil
import subprocess
import sys


def pip(*args):
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args], check=True)


if not STRATEGY:
    if importlib.util.find_spec("libtpu"):
        STRATEGY = "tpu"
    elif shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi"],
                                                        capture_output=True).returncode == 0:
        STRATEGY = "gpu"
    else:
        STRATEGY = "cpu"
if not CONFIG:
    CONFIG = {"tpu": "configs/kaggle_tpu.py", "gpu": "configs/gpu.py"}.get(STRATEGY,
                                                                           "configs/demo.py")
print(f"accelerator: {STRATEGY}; config: {CONFIG}")
clone = pathlib.Path("/content/monet_tf")
found = importlib.util.find_spec("monet_tf")
if found:  # From a checkout (run_train.py beside it), or earlier in this session.
    CHECKOUT = next(p for p in (pathlib.Path(found.origin).parents[1], clone, None)
                    if p is None or (p / "run_train.py").is_file())
    if CHECKOUT is None:
        raise RuntimeError("monet_tf is installed but no checkout with run_train.py is found: set "
                           "REPOSITORY to monet_tf's git URL and rerun this cell")
    print(f"monet_tf is already installed ({pathlib.Path(found.origin).parent}): nothing "
          f"installed; run_train.py and configs/ from {CHECKOUT}")
elif REPOSITORY:
    CHECKOUT = clone
    if not CHECKOUT.is_dir():
        subprocess.run(["git", "clone", "-q", "--depth=1", REPOSITORY, str(CHECKOUT)],
                       check=True)
    extra = ["tensorflow-cpu==2.20.0"] if not importlib.util.find_spec("tensorflow") else []
    pip("ml_collections", *extra)
    pip("--no-deps", str(CHECKOUT))
    print(f"installed monet_tf from {REPOSITORY} ({CHECKOUT}) with ml_collections"
          + (f" and {extra[0]} (this runtime has no TensorFlow)" if extra else ""))
else:
    raise RuntimeError("monet_tf is not installed: set REPOSITORY (the parameters cell) to "
                       "monet_tf's git URL")
importlib.invalidate_caches()
if DATA_DIR == "sample":
    DATA_DIR = str(CHECKOUT / "tfrecords" / "sample")
    OVERRIDES = [*OVERRIDES, "--config.submission.allow_any_count=true"]
    print(f"data: the bundled sample {DATA_DIR}; its zip cannot be a submission (32 images)")
elif not DATA_DIR:
    import kagglehub

    DATA_DIR = kagglehub.competition_download("gan-getting-started")
    print(f"data: the competition, downloaded to {DATA_DIR}")

# %% [markdown]
# ## Train
# `run_train.py` in a process of its own (the accelerator is its alone), its output streamed
# here: the plan, then one line per epoch with its losses, the scores every `eval.every`
# epochs, the export and the zip. Rerunning this cell resumes from the last checkpoint.

# %%
from monet_tf import notebook

notebook.train(CHECKOUT, config=CONFIG, strategy=STRATEGY, workdir=WORKDIR, data_dir=DATA_DIR,
               time_budget=TIME_BUDGET, inception_weights=INCEPTION_WEIGHTS,
               submission=SUBMISSION, overrides=OVERRIDES)

# %% [markdown]
# ## What it paints
# The latest sample grid: held-out photos, their paintings and back again (cycled), and
# (CycleGAN) paintings, their photos and back.

# %%
notebook.latest_grid(WORKDIR)

# %% [markdown]
# ## Losses by epoch
# From `metrics.csv`. A GAN's losses trade off: the grid and the scores say more than a
# falling curve.

# %%
notebook.loss_curves(WORKDIR)

# %% [markdown]
# ## Scores
# Every `eval.every` epochs: MiFID (lower is better) with Inception weights, and the quality
# card (no pretrained network; 1.0 is as close as real paintings are to each other:
# docs/scores.md). `export/best` is the best scored epoch.

# %%
notebook.score_table(WORKDIR)

# %% [markdown]
# ## A few translations
# Photos translated at the end through the exported generator (`export/`).

# %%
notebook.translations(WORKDIR)

# %% [markdown]
# ## From here to a Kaggle submission
# The zip as Kaggle would check it, and the generator packed for Kaggle: the best scored one
# when the run scored (`export/best`), else the last.

# %%
IMAGES = notebook.check_submission(SUBMISSION)
export = pathlib.Path(WORKDIR, "export")
generator = next(p for p in (export / "best" / "photo_to_monet", export / "photo_to_monet")
                 if p.is_dir())
packed = shutil.make_archive(str(pathlib.Path(WORKDIR, "photo_to_monet")), "zip", generator)
print(f"{generator} packed as {packed}")

# %% [markdown]
# **Next, on Kaggle.** Download that zip (Files panel, or `google.colab.files.download`),
# upload it as a Kaggle dataset (say `monet-generator`), and in a Kaggle notebook with it, the
# competition data and monet_tf's offline bundle attached, internet off:
#
# ```
# !pip install --no-index --find-links /kaggle/input/monet-tf-offline/wheels --no-deps monet_tf ml_collections
# !python -m monet_tf predict --model /kaggle/input/monet-generator --input /kaggle/input/gan-getting-started/photo_tfrec --output /kaggle/working/images.zip
# ```
#
# Then *Save Version* → *Save & Run All (Commit)*, and from the version's *Output*, submit
# `images.zip`.
