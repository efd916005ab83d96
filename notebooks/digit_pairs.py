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
# # Digit pairs: is the first MNIST digit <= the second?
#
# Each example is two 14x14 digits stacked as two channels; the label says
# whether the first digit is at most the second. The app trains the report's
# models (`fc`, `fc_dropout`, `cnn`, `deep_cnn`, `siamese`, `aux`, laid out
# as the report's tables), `aux_prob` and `aux_same_dense` (the earlier aux
# layout, which did better on real MNIST pairs); the auxiliary-loss models share one digit classifier between the
# two digits (weight sharing) and also learn the digit classes (loss weights
# 0.2 / 0.2 / 0.6), which is what lets them generalise from 1000 pairs.
#
# The settings in the first code cell are the app's, with its defaults
# (`python -m hybridvision.apps.digit_pairs.train --help` explains them all):
# the report's 100 epochs on 1000 pairs.
# **`QUICK = True` only checks that the code runs: its numbers are at chance.**
# It keeps your settings but trains 5 epochs on 400 pairs (under a minute on a CPU).

# %% tags=["parameters"]
REPO_URL = "https://github.com/OWNER/hybridvision.git"  # the suite's git URL (Colab clones it)
QUICK = True  # True: 5 epochs on 400 pairs, only checks the code runs; False: the app's settings (100 epochs, 1000 pairs)
DATA_DIR = None  # None: synthetic demo digits; else a folder with MNIST's IDX files (.gz or not)
OUTPUT_DIR = None  # None: runs/ and saved_models/ in the working folder; in Colab e.g. "/content/drive/MyDrive/hybridvision"
# The app's settings, at its defaults.
MODEL = "aux"  # one of CHOICES["MODEL"]
CHOICES = {  # what the app takes
    "MODEL": ("fc", "fc_dropout", "cnn", "deep_cnn", "siamese", "aux", "aux_prob", "aux_same_dense"),
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
# folder, mounted below), so the run (`runs/digit_pairs/...`) and the
# exported model (`saved_models/...`) are kept after the session ends.

# %%
data_dir, DATA_ARGS, RUN_DIR = resolve_data(DATA_DIR, "mnist", "digit_pairs", OUTPUT_DIR)

# %% [markdown]
# A few digits of the training split, as the app reads them (`hybridvision.common.data.mnist`).

# %%
import json

import numpy as np

from hybridvision.common.data.mnist import load_mnist

digits = load_mnist(data_dir)
images, labels = digits["train"] if "train" in digits else next(iter(digits.values()))
fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for ax, image, label in zip(axes, images[:10], labels[:10]):
    ax.imshow(image, cmap="gray")
    ax.set_title(int(label))
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Train
# Training goes through the app's own entry point, the same code as
# `python -m hybridvision.apps.digit_pairs.train --model aux`, with the settings
# above as its flags (the app's config is made first from them and shown).
# It writes a run directory
# (config, history, curves, best checkpoint, `metrics.json`) and exports the
# model to `saved_models/digit_pairs/` (`saved_models/demo/digit_pairs/` on the demo data).

# %%
from hybridvision.apps.digit_pairs.config import DigitPairsConfig
from hybridvision.apps.digit_pairs.train import main
from hybridvision.common.notebook import app_config, app_flags

argv = [*app_flags(model=MODEL), *DATA_ARGS, "--run-dir", str(RUN_DIR)]
if QUICK:
    argv += app_flags(epochs=5, pairs=400, export_anyway=True)  # the smoke run
app_config(DigitPairsConfig, argv, show=("model", "pairs", "epochs", "batch_size", "learning_rate"))
metrics = main(argv)
display(pd.DataFrame({split: {"accuracy": metrics[split]["accuracy"]} for split in ("train", "val", "test")}))

# %% [markdown]
# ## Learning curves
# From the run's `history.csv` (one row per epoch).

# %%
plot_history(RUN_DIR / "history.csv", f"digit_pairs {MODEL}")

# %% [markdown]
# ## Confusion matrix and predictions on the test pairs
# The test pairs are rebuilt from the run's saved config (same seed, so the
# same pairs), and the best checkpoint `model.keras` is loaded as any user
# would load it.

# %%
from hybridvision.apps.digit_pairs.data import load_pair_splits
from hybridvision.common.metrics import classification_summary
from hybridvision.common.plots import plot_confusion_matrix

cfg = json.loads((RUN_DIR / "config.json").read_text())
splits, _ = load_pair_splits(data_dir, cfg["pairs"], cfg["val_fraction"], cfg["seed"], cfg["image_size"])
test = splits["test"]
model = keras.models.load_model(RUN_DIR / "model.keras")
outputs = model.predict(test.x, verbose=0)
probabilities = outputs["compare"] if isinstance(outputs, dict) else outputs
summary = classification_summary(test.target, probabilities, ["first > second", "first <= second"])
show(plot_confusion_matrix(summary["confusion_matrix"], ["a > b", "a <= b"], RUN_DIR / "confusion_test.png", "test pairs"))

# %%
fig, axes = plt.subplots(2, 6, figsize=(12, 4.6))
for ax, i in zip(axes.ravel(), range(12)):
    pair = np.concatenate([test.x[i, :, :, 0], np.ones((test.x.shape[1], 2)), test.x[i, :, :, 1]], axis=1)
    predicted = int(probabilities[i].argmax())
    ax.imshow(pair, cmap="gray")
    ax.set_title(
        f"{test.classes[i, 0]} <= {test.classes[i, 1]}? {'yes' if predicted else 'no'}",
        color="green" if predicted == test.target[i] else "red",
        fontsize=10,
    )
    ax.axis("off")
fig.suptitle("test pairs: the model's answer (green right, red wrong)")
plt.show()

# %% [markdown]
# ## Next
# `python -m hybridvision.apps.digit_pairs.compare --rounds 10` trains every model ten
# times with new pairs and seeds and writes the report's comparison table.
