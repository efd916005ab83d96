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
# # Cross-modal classes: photos, clip art and sketches
#
# Do features learnt on natural images carry over to clip art and sketches?
# The app trains one of four models (a frozen pretrained backbone with a new
# head, the same fine-tuned, a network from scratch, or one CNN per modality
# with a shared classifier) under one of three protocols (`all` modalities
# together, `from_source`: train on one modality and test on every one,
# `leave_one_out`), and reports accuracy per modality as a modality x
# modality table. Grad-CAM shows which pixels drove each prediction.
#
# Data: `<DATA_DIR>/<modality>/<class>/*.jpg` (PACS-like). The demo images
# are **synthetic** (five classes drawn as photos, cartoons and sketches).
#
# The settings in the first code cell are the app's, with its defaults
# (`python -m hybridvision.apps.cross_modal.train --help` explains them all):
# the pretrained EfficientNet-Lite0 (ImageNet weights offline) at its 224 px,
# a frozen phase, then all its layers fine-tuned, one network on all
# modalities (minutes on a GPU, longer on a CPU).
# `QUICK = True` keeps your settings but trains 2 epochs (and 1 of
# fine-tuning) at 32 px (75 px for inception_v3). **With the default settings `QUICK = True` shows a
# result above chance on the demo data**: test accuracy 0.78 and 0.93 over
# the three modalities' 45 test images in two runs on a CPU (expect a value
# of that order, not those digits), where guessing among the five classes
# gets 0.2; with other settings it only checks that the code runs.

# %% tags=["parameters"]
REPO_URL = "https://github.com/OWNER/hybridvision.git"  # the suite's git URL (Colab clones it)
QUICK = True  # True: 2 epochs at 32 px, a quick run (what it shows: above); False: the app's settings (use a GPU)
DATA_DIR = None  # None: synthetic demo modalities; else a folder of <modality>/<class>/ image folders
OUTPUT_DIR = None  # None: runs/ and saved_models/ in the working folder; in Colab e.g. "/content/drive/MyDrive/hybridvision"
# The app's settings, at its defaults; None: the app's automatic value.
MODEL = "finetune"  # one of CHOICES["MODEL"]
BACKBONE = "efficientnet_lite0"  # one of CHOICES["BACKBONE"]
WEIGHTS = None  # None: imagenet where the backbone has it, none for small / from_scratch (always none for scratch)
PROTOCOL = "all"  # one of CHOICES["PROTOCOL"] (domainbed: from the command line, see the Next section)
SOURCE = ["photo"]  # from_source: the modality (or modalities, one model each) to train on
CHOICES = {  # what the app takes
    "MODEL": ("frozen", "finetune", "scratch", "per_modality"),
    "BACKBONE": ("vgg16", "vgg16_bn", "resnet50", "inception_v3", "efficientnet_lite0", "efficientnet_lite1",
                 "efficientnet_lite2", "small", "from_scratch"),
    "PROTOCOL": ("all", "from_source", "leave_one_out", "domainbed"),
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
# folder, mounted below), so the run (`runs/cross_modal/...`) and the
# exported model (`saved_models/...`) are kept after the session ends.

# %%
data_dir, DATA_ARGS, RUN_DIR = resolve_data(DATA_DIR, "domains", "cross_modal", OUTPUT_DIR)

# %% [markdown]
# Two images per modality of the first class, read with the app's reader (`hybridvision.common.data.domains`).

# %%
from hybridvision.common.data.domains import read_domains

table = read_domains(data_dir)
modalities, class_names = table.attrs["modalities"], table.attrs["class_names"]
print("modalities:", modalities, "| classes:", class_names)
sample = table[table["label"] == 0].groupby("modality", group_keys=False).head(2)
fig, axes = plt.subplots(1, len(sample), figsize=(2 * len(sample), 2.3))
for ax, (_, row) in zip(axes, sample.iterrows()):
    ax.imshow(plt.imread(row["path"]))
    ax.set_title(f"{row['modality']}", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Train
# Through the app's entry point, as `python -m hybridvision.apps.cross_modal.train`,
# with the settings above as its flags (a setting left None is not passed:
# the app works it out; the app's config is made first from the same flags
# and shown). With `PROTOCOL = "all"` one network learns every modality;
# with `from_source` one model is trained on `SOURCE` and tested on every
# modality; `leave_one_out` trains on all but one and tests on that one.

# %%
from hybridvision.apps.cross_modal.config import MIN_IMAGE_SIZE, CrossModalConfig
from hybridvision.apps.cross_modal.train import main
from hybridvision.common.notebook import app_config, app_flags

if PROTOCOL == "domainbed":
    raise ValueError("PROTOCOL = 'domainbed' trains one run per held-out domain and seed, which this notebook's "
                     "tables do not show: run `hybridvision cross_modal train --protocol domainbed --seeds 0,1,2` "
                     "in a terminal (or a `!` cell) and read its domainbed_table.md")
argv = [*app_flags(model=MODEL, backbone=BACKBONE, weights=WEIGHTS, protocol=PROTOCOL, source=SOURCE),
        *DATA_ARGS, "--run-dir", str(RUN_DIR)]
if QUICK:
    # the quick run (InceptionV3 takes at least 75 px)
    argv += app_flags(image_size=max(32, MIN_IMAGE_SIZE[BACKBONE]), epochs=2, finetune_epochs=1, batch_size=16,
                      export_anyway=True)
app_config(CrossModalConfig, argv, show=("model", "backbone", "weights", "protocol", "image_size", "learning_rate",
                                         "epochs", "finetune_epochs"))
metrics = main(argv)
display(pd.DataFrame(metrics["test"]["per_modality"]).T)

# %% [markdown]
# ## The modality x modality table
# Rows: the modalities a model was trained on; columns: the modality it was tested on.

# %%
from IPython.display import Markdown

display(Markdown((RUN_DIR / "modality_table.md").read_text()))

# %% [markdown]
# ## Learning curves and confusion matrices
# One history per trained model (`history_<row>.csv`), one confusion matrix
# per tested modality.

# %%
for history in sorted(RUN_DIR.glob("history*.csv")):
    plot_history(history, history.stem)
for png in sorted(RUN_DIR.glob("confusion_*.png")):
    show(png)

# %% [markdown]
# ## Grad-CAM, activations and first-layer filters
# `hybridvision.apps.cross_modal.explain` (also `python -m hybridvision.apps.cross_modal.explain`) loads
# the run's `model.keras`, draws test images of every modality and writes
# each beside its Grad-CAM overlay: the regions that raised the score of the
# predicted class.

# %%
from hybridvision.apps.cross_modal import explain

written = explain.main(["--run-dir", str(RUN_DIR), "--images", "1" if QUICK else "3"])
for png in written:
    if png.name.startswith(("gradcam_", "filters")):
        show(png)

# %% [markdown]
# ## Next
# `PROTOCOL = "leave_one_out"` trains on two modalities and tests on the third;
# `hybridvision cross_modal train --protocol domainbed --seeds 0,1,2` (a terminal) does the same the way
# DomainBed reports PACS: the checkpoint chosen on the training domains only, several seeds, mean ± standard error;
# `MODEL = "per_modality"` gives every modality its own CNN; `--folds 5` runs
# K-fold cross-validation and reports the mean and spread.
