# %% [markdown]
# # monet_tf on Kaggle's GPU T4 x2: train, look, submit
#
# Trains `configs/kaggle_gpu.py` (the U-Net CycleGAN of `configs/kaggle_tpu.py`, behind the
# public 37.4 MiFID, for the same 480,000 pairs at a quarter of the batch) on the competition's
# photos and paintings, shows what it paints, and leaves `/kaggle/working/images.zip` checked for
# submission.
#
# **Set up** (File → Import Notebook → this file, then the right-hand panel):
# - *Accelerator*: GPU T4 x2. Kaggle's GPU image has TensorFlow: the run trains with
#   MirroredStrategy over both GPUs, float16 with loss scaling (a T4 has no bfloat16).
# - *Input*: the competition "I'm Something of a Painter Myself" (`gan-getting-started`).
# - *Internet* on, with `REPOSITORY` below set to monet_tf's git URL; or internet off (as a
#   submission runs) with the offline bundle attached as the dataset `monet-tf-offline`
#   (`monet-tf bundle`, README's "On Kaggle").
#
# Then Run All. Training prints one line per epoch; the budget below stops it in time to
# export and write the zip.

# %% tags=["parameters"]
CONFIG = "configs/kaggle_gpu.py"  # relative to monet_tf's checkout or the offline bundle
STRATEGY = "gpu"  # gpu | tpu | cpu
WORKDIR = "/kaggle/working/run"  # checkpoints, samples/, metrics.csv, export/; rerun resumes
DATA_DIR = ""  # "": the attached competition data (/kaggle/input/gan-getting-started)
TIME_BUDGET = "4h15m"  # training stops here, saves, exports and still writes the zip
# "": the bundle's inception_v3_notop.h5 when attached, else Keras' download (internet on),
# else no MiFID (the quality card alone scores the run and chooses the generator submitted).
INCEPTION_WEIGHTS = ""
SUBMISSION = "/kaggle/working/images.zip"
OVERRIDES = []  # more config fields, e.g. ["--config.train.steps=20000"]
OFFLINE_BUNDLE = "/kaggle/input/monet-tf-offline"
REPOSITORY = ""  # with internet on: the git URL to clone monet_tf from

# %% [markdown]
# ## Install
# One cell that sees what it has: monet_tf already installed (nothing to do), internet and a
# repository (clone it, install it and `ml_collections`, the one package Kaggle's images lack;
# `--no-deps` keeps the image's TensorFlow and Keras), or the offline bundle (its wheels,
# no index).

# %%
import importlib
import importlib.util
import pathlib
import socket
import subprocess
import sys


def online(host="pypi.org"):
    try:
        socket.create_connection((host, 443), timeout=5).close()
        return True
    except OSError:
        return False


def pip(*args):
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args], check=True)


bundle, clone = pathlib.Path(OFFLINE_BUNDLE), pathlib.Path("/tmp/monet_tf")
found = importlib.util.find_spec("monet_tf")
if found:  # From a checkout (run_train.py beside it), or earlier in this session.
    CHECKOUT = next(p for p in (pathlib.Path(found.origin).parents[1], clone, bundle, None)
                    if p is None or (p / "run_train.py").is_file())
    if CHECKOUT is None:
        raise RuntimeError(f"monet_tf is installed but neither a checkout nor {bundle} has its "
                           "run_train.py: attach the offline bundle, or set REPOSITORY")
    print(f"monet_tf is already installed ({pathlib.Path(found.origin).parent}): nothing "
          f"installed; run_train.py and configs/ from {CHECKOUT}")
elif REPOSITORY and online():
    CHECKOUT = clone
    if not CHECKOUT.is_dir():
        subprocess.run(["git", "clone", "-q", "--depth=1", REPOSITORY, str(CHECKOUT)], check=True)
    pip("ml_collections")
    pip("--no-deps", str(CHECKOUT))
    print(f"internet on: installed monet_tf and ml_collections from {REPOSITORY} ({CHECKOUT})")
elif (bundle / "wheels").is_dir():
    pip("--no-index", "--find-links", str(bundle / "wheels"), "--no-deps", "monet_tf",
        "ml_collections")
    CHECKOUT = bundle
    print(f"installed monet_tf and ml_collections from the offline bundle {bundle} (no index)")
else:
    raise RuntimeError(
        f"monet_tf is not installed and {bundle} is not attached: attach the offline bundle "
        "(Add Input -> your monet-tf-offline dataset), or turn the internet on and set "
        "REPOSITORY to monet_tf's git URL")
importlib.invalidate_caches()
if not INCEPTION_WEIGHTS and (bundle / "inception_v3_notop.h5").is_file():
    INCEPTION_WEIGHTS = str(bundle / "inception_v3_notop.h5")
    print(f"MiFID with the bundle's InceptionV3 weights: {INCEPTION_WEIGHTS}")

# %% [markdown]
# ## Train
# `run_train.py` in a process of its own (the GPUs are its alone), its output streamed here:
# the plan, then one line per epoch with its losses, the scores every `eval.every` epochs,
# the export and the submission. Rerunning this cell resumes from the last checkpoint.

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
# docs/scores.md). `export/best`, the generator submitted, is the best scored epoch.

# %%
notebook.score_table(WORKDIR)

# %% [markdown]
# ## A few translations
# Photos translated at the end through the exported generator (`export/`), as a user of the
# SavedModel would.

# %%
notebook.translations(WORKDIR)

# %% [markdown]
# ## The submission
# The zip checked as Kaggle will take it: 7,000 to 10,000 uniquely named 256x256 JPEGs.

# %%
IMAGES = notebook.check_submission(SUBMISSION)

# %% [markdown]
# **Next, on Kaggle.** A submission is a saved version that ran with the internet off:
# attach the offline bundle, turn the internet off, then *Save Version* → *Save & Run All
# (Commit)*. When the version has run, open it, *Output* lists `images.zip`: *Submit* (or the
# competition's *Submit Prediction* → this notebook, this version, `images.zip`). The run's
# folder (`/kaggle/working/run`) is in the version's output too: add that output as the input
# of a later version to resume or to predict again (`python -m monet_tf predict`).
