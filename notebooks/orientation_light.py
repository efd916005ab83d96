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
# # Face orientation and light source (left, center, right)
#
# Two 3-class tasks on face crops: which way the face is turned
# (`orientation`) and which side the light comes from (`light`). The app
# trains a from-scratch VGG-style CNN or a transfer model (EfficientNet-Lite0/1/2,
# InceptionV3, ResNet50 with a frozen base and optional fine-tuning of the top layers),
# writes confusion matrices and per-class precision/recall, and exports a
# model the labeller (`hybridvision.common.predict`) uses to label whole image folders.
#
# Data layout: `<DATA_DIR>/{train,val,test}/<class>/*.jpg`; the class names
# come from the folders. The demo faces are **synthetic**.
#
# The settings in the first code cell are the app's, with its defaults
# (`python -m hybridvision.apps.orientation_light.train --help` explains them
# all): 64 px, 15 epochs and the original report's settings for each model
# (from_scratch: SGD at 0.005, batch 16; inception_v3: AdaBound 0.003 / 0.005,
# dropout 0.55; resnet50: dropout 0.6), ImageNet weights for the transfer models.
# **`QUICK = True` only checks that the code runs: its numbers are at chance.**
# It keeps your settings but trains 3 epochs at 32 px (75 px for inception_v3).

# %% tags=["parameters"]
REPO_URL = "https://github.com/OWNER/hybridvision.git"  # the suite's git URL (Colab clones it)
QUICK = True  # True: 3 epochs at 32 px, only checks the code runs; False: the app's settings (64 px, 15 epochs)
DATA_DIR = None  # None: synthetic demo faces; else a folder with train/, val/ (and test/) class folders
OUTPUT_DIR = None  # None: runs/ and saved_models/ in the working folder; in Colab e.g. "/content/drive/MyDrive/hybridvision"
# The app's settings, at its defaults; None: the app's automatic value.
TASK = "orientation"  # one of CHOICES["TASK"]
MODEL = "from_scratch"  # one of CHOICES["MODEL"]
# None: ImageNet weights for the transfer models (EfficientNet-Lite's offline; InceptionV3's and ResNet50's
# downloaded by Keras once), none for from_scratch; or "none", or a .weights.h5 path
WEIGHTS = None
CHOICES = {  # what the app takes
    "TASK": ("orientation", "light"),
    "MODEL": ("from_scratch", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "inception_v3",
              "resnet50"),
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
# folder, mounted below), so the run (`runs/orientation_light/...`) and the
# exported model (`saved_models/...`) are kept after the session ends.

# %%
data_dir, DATA_ARGS, RUN_DIR = resolve_data(DATA_DIR, TASK, "orientation_light", OUTPUT_DIR)

# %% [markdown]
# A few training faces per class, read with the class-folder reader the app uses.

# %%
from hybridvision.common.data.class_folders import read_class_folders

train_table = read_class_folders(data_dir, "train")
class_names = list(train_table.attrs["class_names"])
print("classes:", class_names, "| images per class:", train_table["class_name"].value_counts().to_dict())
sample = train_table.groupby("class_name", group_keys=False).head(3)
fig, axes = plt.subplots(1, len(sample), figsize=(1.6 * len(sample), 2.2))
for ax, (_, row) in zip(axes, sample.iterrows()):
    ax.imshow(plt.imread(row["path"]))
    ax.set_title(row["class_name"], fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Train
# Through the app's entry point, as `python -m hybridvision.apps.orientation_light.train`,
# with the settings above as its flags (a setting left None is not passed:
# the app works it out). The app's config is made first from the same flags,
# to show what the automatic settings come to for `MODEL`.
# For a transfer model, `--finetune-layers N` adds a fine-tuning phase of the
# top N layers (BatchNorm layers stay frozen; `--batchnorm-fix off` gives the
# report's setting without its BatchNorm patch).

# %%
from hybridvision.apps.orientation_light.config import OrientationLightConfig
from hybridvision.apps.orientation_light.train import main
from hybridvision.common.notebook import app_config, app_flags

argv = [*app_flags(task=TASK, model=MODEL, weights=WEIGHTS), *DATA_ARGS, "--run-dir", str(RUN_DIR)]
if QUICK:  # the smoke run; InceptionV3 takes at least 75 px
    argv += app_flags(image_size=75 if MODEL == "inception_v3" else 32, epochs=3, export_anyway=True)
app_config(OrientationLightConfig, argv,
           show=("task", "model", "weights", "optimizer", "learning_rate", "batch_size", "image_size", "epochs"))
metrics = main(argv)
split = "test" if "test" in metrics else "val"
print(f"{split} accuracy: {metrics[split]['accuracy']:.3f}")
display(pd.DataFrame(metrics[split]["per_class"]).T)

# %% [markdown]
# ## Learning curves and confusion matrix
# The curves come from `history.csv`; the app wrote the confusion matrix.

# %%
plot_history(RUN_DIR / "history.csv", f"{TASK} {MODEL}")
show(RUN_DIR / f"confusion_{split}.png")

# %% [markdown]
# ## Label a folder
# The exported model labels every image under a folder into a CSV
# (`file,label,p_<class>...`, resumable), the way
# `python -m hybridvision.apps.orientation_light.predict` does; here the held-out faces,
# with a 3x3 grid of the predictions.

# %%
from hybridvision.common.predict import label_folder, save_prediction_grid

images_dir = data_dir / split
labels_csv = RUN_DIR / f"labels_{split}.csv"
result = label_folder(RUN_DIR / "model.keras", images_dir, labels_csv, class_names, progress=False)
print(f"labelled {result['labelled']} images, {result['errors']} errors")
show(save_prediction_grid(labels_csv, images_dir, RUN_DIR / "prediction_grid.png"))
display(pd.read_csv(labels_csv).head())

# %% [markdown]
# ## Next
# `python -m hybridvision.apps.orientation_light.tune` searches learning rate, dropout and
# dense units with KerasTuner (grid, random or Hyperband).
