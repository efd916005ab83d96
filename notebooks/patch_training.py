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
# # Pascal VOC multi-label classification with patch pre-training
#
# One backbone, two heads: a multi-label head (sigmoid per class, weighted
# binary cross-entropy) for whole images, and a patch head (pooling to 4x4 or
# a spatial pyramid, dense layers, softmax) for single-object crops. The
# curriculum: epochs before `--switch-epoch` train on the object crops
# (PatchSet), the remaining epochs on full images (FullSet); `0` is the
# baseline without patches.
#
# Data: a `VOCdevkit/VOC2012` folder (`JPEGImages/`, `Annotations/`,
# `ImageSets/Main/`). The demo images are **synthetic** glyphs of the 20 VOC
# classes.
#
# The settings in the first code cell are the app's, with its defaults
# (`python -m hybridvision.apps.patch_training.train --help` explains them
# all): the pretrained EfficientNet-Lite0 (ImageNet weights offline; the
# original report used VGG16, `BACKBONE = "vgg16"`), 224 px, 10 epochs of which
# the first 5 on patches; use a GPU.
# **`QUICK = True` only checks that the code runs: its numbers are at chance**
# (the table shows the random mAP beside the model's). It keeps your settings
# but trains 2 epochs at 32 px (75 px for inception_v3), the first on patches (none with `SWITCH_EPOCH = 0`).

# %% tags=["parameters"]
REPO_URL = "https://github.com/OWNER/hybridvision.git"  # the suite's git URL (Colab clones it)
QUICK = True  # True: 2 epochs at 32 px, only checks the code runs; False: the app's settings (use a GPU)
DATA_DIR = None  # None: synthetic demo VOC; else the VOC2012 folder (e.g. /content/drive/MyDrive/VOCdevkit/VOC2012)
OUTPUT_DIR = None  # None: runs/ and saved_models/ in the working folder; in Colab e.g. "/content/drive/MyDrive/hybridvision"
# The app's settings, at its defaults; None: the app's automatic value.
BACKBONE = "efficientnet_lite0"  # one of CHOICES["BACKBONE"]
WEIGHTS = None  # None: imagenet where the backbone has it, none for small / from_scratch; or "none", or a .weights.h5 path
SWITCH_EPOCH = 5  # epochs on patches before the full images, of the 10 (0 = the baseline without patches)
PATCH_POOLING = "adaptive"  # the patch head's pooling: one of CHOICES["PATCH_POOLING"]
CHOICES = {  # what the app takes
    "BACKBONE": ("vgg16", "vgg16_bn", "resnet50", "inception_v3", "efficientnet_lite0", "efficientnet_lite1",
                 "efficientnet_lite2", "small", "from_scratch"),
    "PATCH_POOLING": ("adaptive", "spp"),
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
import keras
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

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
# folder, mounted below), so the run (`runs/patch_training/...`) and the
# exported model (`saved_models/...`) are kept after the session ends.

# %%
data_dir, DATA_ARGS, RUN_DIR = resolve_data(DATA_DIR, "voc", "patch_training", OUTPUT_DIR)

# %% [markdown]
# A few training images with their boxes, parsed by the VOC reader the app uses (`hybridvision.common.data.voc`).

# %%
import numpy as np

from hybridvision.common.data.voc import read_voc

images, boxes = read_voc(data_dir, "train")
print(f"{len(images)} training images, {len(boxes)} boxes")
fig, axes = plt.subplots(1, 4, figsize=(12, 2.8))
for ax, (_, row) in zip(axes, images.head(4).iterrows()):
    ax.imshow(plt.imread(row["path"]))
    for _, box in boxes[boxes["image_id"] == row["image_id"]].iterrows():
        ax.add_patch(plt.Rectangle((box["xmin"] - 1, box["ymin"] - 1), box["xmax"] - box["xmin"], box["ymax"] - box["ymin"],
                                   fill=False, color="yellow", linewidth=1.5))
        ax.text(box["xmin"], box["ymin"], box["class_name"], color="yellow", fontsize=7, va="bottom")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Train the curriculum
# Through the app's entry point, as `python -m hybridvision.apps.patch_training.train`,
# with the settings above as its flags (a setting left None is not passed:
# the app works it out; the app's config is made first from the same flags
# and shown). It crops the patches once into a cache folder, trains
# `SWITCH_EPOCH` epochs on them and the rest on full images, and reports
# micro precision/recall and mAP on the validation split.

# %%
from hybridvision.apps.patch_training.config import PatchTrainingConfig
from hybridvision.apps.patch_training.train import main
from hybridvision.common.notebook import app_config, app_flags

argv = [*app_flags(backbone=BACKBONE, weights=WEIGHTS, patch_pooling=PATCH_POOLING), *DATA_ARGS,
        "--run-dir", str(RUN_DIR)]
if QUICK:  # the smoke run: 2 epochs, the first on patches unless SWITCH_EPOCH is 0; InceptionV3 takes >= 75 px
    argv += app_flags(switch_epoch=min(SWITCH_EPOCH, 1), image_size=75 if BACKBONE == "inception_v3" else 32,
                      epochs=2, min_patch=16, cache=True, export_anyway=True)
else:
    argv += app_flags(switch_epoch=SWITCH_EPOCH)
app_config(PatchTrainingConfig, argv, show=("backbone", "weights", "switch_epoch", "epochs", "image_size",
                                            "learning_rate", "patch_lr_factor"))
metrics = main(argv)
val = metrics["val"]
display(pd.Series({"mAP": val["map"], "random mAP": val["chance_map"], "precision": val["precision"],
                   "recall": val["recall"], "train seconds": metrics["train_seconds"]}).to_frame("val").T)

# %% [markdown]
# ## Learning curves of both phases
# One history per phase: `history_patches.csv` (patch head) and
# `history_full.csv` (multi-label head).

# %%
for phase in ("patches", "full"):
    history = RUN_DIR / f"history_{phase}.csv"
    if history.exists():
        plot_history(history, f"phase '{phase}'")

# %% [markdown]
# ## Per-class average precision and the summed confusion matrix
# Multi-label, so every class has its own 2x2 matrix; the sum over classes
# (at the 0.5 threshold) gives the micro precision and recall above.

# %%
from hybridvision.common.plots import plot_confusion_matrix

ap = pd.Series(val["per_class_ap"]).sort_values()
ap.plot.barh(figsize=(5, 5), title="val AP per class")
plt.show()
matrix = [[val["tn"], val["fp"]], [val["fn"], val["tp"]]]
show(plot_confusion_matrix(matrix, ["absent", "present"], RUN_DIR / "confusion_val.png", "val, summed over classes"))

# %% [markdown]
# ## Predictions on validation images
# The run's saved config rebuilds the same validation split with the app's
# own loader; `model.keras` is the multi-label model.

# %%
from hybridvision.apps.patch_training.config import PatchTrainingConfig
from hybridvision.apps.patch_training.train import load_data
from hybridvision.common.config import parse_config
from hybridvision.common.data.voc import VOC_CLASSES, full_dataset

cfg = parse_config(PatchTrainingConfig, ["--config", str(RUN_DIR / "config.yaml")])
splits, _ = load_data(cfg)
val_images = splits["val"][0].head(8).reset_index(drop=True)
model = keras.models.load_model(RUN_DIR / "model.keras")
scores = model.predict(full_dataset(val_images, cfg.image_size, 8), verbose=0)  # the model normalises raw images
fig, axes = plt.subplots(2, 4, figsize=(12, 5.5))
for ax, (i, row) in zip(axes.ravel(), val_images.iterrows()):
    true = [c for c in VOC_CLASSES if row[c]]
    top = [VOC_CLASSES[k] for k in np.argsort(scores[i])[::-1][:2]]
    ax.imshow(plt.imread(row["path"]))
    ax.set_title(f"true: {', '.join(true)}\ntop-2: {', '.join(top)}", fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Next
# `python -m hybridvision.apps.patch_training.sweep` runs a range of switch epochs and
# plots mAP and training time against the switch epoch.
