# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Attractiveness: CelebA attributes from faces plus structured covariates
#
# The task: predict the CelebA attribute `Attractive` from a face image *and*
# a few other attributes given as side information (`Male`, `Young`, ...).
# The app's models, all from the same starting weights:
#
# - `baseline`: the image alone;
# - `hybrid` (ShortFuse, the app's default): the convolution(s) at
#   `HYBRID_POSITIONS` become `HybridConv2D`, whose kernel depends on each
#   face's covariates (see the `hybrid_conv2d` notebook);
# - `film` / `condconv`: the same convolution(s) conditioned by FiLM or CondConv instead;
# - `late_fusion`: the covariates are concatenated to the image features.
#
# The demo faces are **synthetic**: their `Attractive` depends on the eye size
# and clothes' colour (an effect whose sign Male flips) and on Male, Young,
# Smiling and High_Cheekbones, so a model given both the
# pixels and the covariates has something to gain.
#
# The settings in the first code cell are the app's, with its defaults
# (`python -m hybridvision.apps.attractiveness.train --help` explains them
# all): the pretrained EfficientNet-Lite0 (ImageNet weights offline) at its
# 224 px, fine-tuned for 5 epochs; use a GPU for all of CelebA.
# **`QUICK = True` only checks that the code runs: its numbers are at chance.**
# It keeps your settings but trains 2 epochs on 32 px faces.

# %% tags=["parameters"]
REPO_URL = "https://github.com/OWNER/hybridvision.git"  # the suite's git URL (Colab clones it)
QUICK = True  # True: 2 epochs at 32 px, only checks the code runs; False: the app's settings (use a GPU)
DATA_DIR = None  # None: synthetic demo faces; else a CelebA root (img_align_celeba/, list_attr_celeba.txt, ...)
OUTPUT_DIR = None  # None: runs/ and saved_models/ in the working folder; in Colab e.g. "/content/drive/MyDrive/hybridvision"
# The app's settings, at its defaults; None: the app's automatic value.
MODEL = "hybrid"  # one of CHOICES["MODEL"]
BACKBONE = "efficientnet_lite0"  # one of CHOICES["BACKBONE"]
WEIGHTS = None  # None: imagenet where the backbone has it, none for small; or "none", or a .weights.h5 path
COVARIATES = None  # None: Male on CelebA (the report's; its other run: Smiling, Young, High_Cheekbones)
HYBRID_POSITIONS = ["last"]  # hybrid / film / condconv: the conv(s) conditioned: first, middle, last or a 1-based index
CHOICES = {  # what the app takes
    "MODEL": ("baseline", "hybrid", "late_fusion", "film", "condconv"),
    "BACKBONE": ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg16_bn", "small"),
}

# %% [markdown]
# ## Setup
# In Colab this clones `REPO_URL` and installs the suite (a minute); in a
# local checkout, or where the suite is installed already, it only makes sure
# the checkout is importable.

# %%
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
IN_COLAB = importlib.util.find_spec("google.colab") is not None


def find_checkout():
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "setup.py").is_file() and (folder / "apps").is_dir():
            return folder
    return None


ROOT = find_checkout()
if ROOT is None and IN_COLAB:
    if "OWNER" in REPO_URL:
        raise ValueError("set REPO_URL in the first code cell to the git URL of the hybridvision repository")
    ROOT = Path("/content/hybridvision")
    if not ROOT.exists():
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, str(ROOT)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT)], check=True)
if ROOT is not None and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
try:
    import hybridvision.apps  # noqa: F401
    import hybridvision.common  # noqa: F401
except ImportError as error:
    raise ImportError(
        "hybridvision is not importable: open this notebook from a checkout's notebooks/ folder, "
        "`pip install -e .` the checkout, or run it in Colab with REPO_URL set"
    ) from error

# %% [markdown]
# ## Backend and GPU
# The suite runs on Keras 3 with TensorFlow (`KERAS_BACKEND`). In Colab pick
# *Runtime > Change runtime type > GPU* for the real runs.

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import hybridvision
from hybridvision.common.notebook import report_backend, resolve_data, show
from hybridvision.common.plots import plot_history

gpus = report_backend()

# %% [markdown]
# ## Data
# With `DATA_DIR = None` the app uses the embedded **synthetic** demo data
# (generated on first use, in the real on-disk format; the numbers say
# nothing about real data). For real data set `DATA_DIR` to a local path or to
# a folder on Google Drive (`/content/drive/MyDrive/...`, mounted below).
# With `OUTPUT_DIR` set, the working folder moves there (in Colab a Drive
# folder, mounted below), so the run (`runs/attractiveness/...`) and the
# exported model (`saved_models/...`) are kept after the session ends.

# %%
data_dir, DATA_ARGS, RUN_DIR = resolve_data(DATA_DIR, "celeba", "attractiveness", OUTPUT_DIR)

# %% [markdown]
# A few demo faces with their `Attractive` label and covariates, read by the
# same CelebA reader the app uses (`hybridvision.common.data.celeba`).

# %%

from hybridvision.common.data.celeba import read_celeba

faces = read_celeba(data_dir)
columns = ["Attractive", *(COVARIATES or ["Male"])]
fig, axes = plt.subplots(1, 6, figsize=(12, 3))
for ax, (_, row) in zip(axes, faces.head(6).iterrows()):
    ax.imshow(plt.imread(row["path"]))
    ax.set_title("\n".join(f"{c}={int(row[c])}" for c in columns[:3]), fontsize=8)
    ax.axis("off")
plt.show()
display(faces[columns].mean().rename("share of 1s").to_frame().T)

# %% [markdown]
# ## Train
# The app's own entry point, as `python -m hybridvision.apps.attractiveness.train`,
# with the settings above as its flags (a setting left None is not passed:
# the app works it out). The app's config is made first from the same flags,
# to show what the automatic settings come to (the weights by backbone, the
# image size and learning rate by weights); any setting not in the first cell
# keeps the app's default.

# %%
from hybridvision.apps.attractiveness.config import AttractivenessConfig
from hybridvision.apps.attractiveness.train import main
from hybridvision.common.notebook import app_config, app_flags

argv = [*app_flags(model=MODEL, backbone=BACKBONE, weights=WEIGHTS, covariates=COVARIATES,
                   hybrid_positions=HYBRID_POSITIONS), *DATA_ARGS, "--run-dir", str(RUN_DIR)]
if QUICK:
    argv += app_flags(image_size=32, epochs=2, cache=True, export_anyway=True)  # the smoke run
app_config(AttractivenessConfig, argv, show=("model", "backbone", "weights", "image_size", "learning_rate", "epochs"))
metrics = main(argv)
scores = ["accuracy", "balanced_accuracy", "roc_auc", "f1_macro"]
table = pd.DataFrame({split: metrics[split] for split in ("val", "test")}).T[scores]
table.loc["covariates only (floor)"] = [metrics["covariate_floor"]["test"][k] for k in scores]
display(table)

# %% [markdown]
# The "covariates only" row is a logistic regression on the covariates alone
# (test split): with the real settings a model that also uses the pixels
# should beat it (with `QUICK = True` the model's numbers are at chance).
#
# ## Learning curves

# %%
plot_history(RUN_DIR / "history.csv", f"attractiveness {MODEL}")

# %% [markdown]
# ## Confusion matrix and predictions on the test faces
# The run's metrics.json holds each split's confusion matrix; the run's saved
# config rebuilds the same test split with the app's own data functions, and
# `model.keras` takes the raw images and covariates (coded inside it).

# %%
from hybridvision.apps.attractiveness.config import AttractivenessConfig
from hybridvision.apps.attractiveness.data import load_data, make_datasets
from hybridvision.common.config import parse_config
from hybridvision.common.covariate_coding import fit_coding
from hybridvision.common.plots import plot_confusion_matrix

cfg = parse_config(AttractivenessConfig, ["--config", str(RUN_DIR / "config.yaml")])
tables, _, data = load_data(cfg)
show(plot_confusion_matrix(metrics["test"]["confusion_matrix"], data.class_names, RUN_DIR / "confusion_test.png",
                           f"test: {data.target}"))

# %%
# The same coding as in training (fitted on the same train rows); the model codes the raw values itself.
coding = fit_coding(tables["train"], data.covariates, data.kinds) if cfg.model != "baseline" else None
test_ds = make_datasets(cfg, tables, coding, len(data.class_names), 64)["test"]
model = hybridvision.load_model(RUN_DIR / "model.keras")
p = model.predict(test_ds, verbose=0).reshape(-1)
test_table = tables["test"].reset_index(drop=True)
fig, axes = plt.subplots(2, 6, figsize=(12, 6))
for ax, i in zip(axes.ravel(), range(12)):
    row = test_table.iloc[i]
    ax.imshow(plt.imread(row["path"]))
    ax.set_title(f"p={p[i]:.2f} true={int(row['label'])}", fontsize=9,
                 color="green" if int(p[i] >= 0.5) == int(row["label"]) else "red")
    ax.axis("off")
fig.suptitle("test faces: predicted probability of Attractive (green right, red wrong)")
plt.show()

# %% [markdown]
# ## Next
# `python -m hybridvision.apps.attractiveness.tune` runs matched sweeps of the three model
# kinds and writes the comparison table; `--seeds 0,1,2` on the train command
# gives the mean and spread over seeds.
