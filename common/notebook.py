"""The notebooks' shared cells: backend report, inline images, data location.

Every notebook in `notebooks/` runs its own setup cell first (clone and
install in Colab, or put the checkout on the path); only after it is this
module importable. The functions here are the cells that came after it in
every notebook alike (their learning curves: `hybridvision.common.plots.plot_history`).
Keras, TensorFlow and IPython are imported inside the functions, so importing
this module costs nothing.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

DRIVE = "/content/drive"


def report_backend():
    """Prints the Keras version, its backend and the GPUs TensorFlow sees; returns that GPU list."""
    import keras
    import tensorflow as tf

    print("Keras", keras.__version__, "on", keras.config.backend())
    gpus = tf.config.list_physical_devices("GPU")
    print("GPU:", gpus if gpus else "none (CPU only; fine with QUICK = True, slow for the real settings)")
    return gpus


def show(png):
    """Shows a PNG the app wrote (curves, confusion matrices) inline."""
    from IPython.display import Image, display

    display(Image(filename=str(png)))


def in_colab():
    """Whether this runs in Google Colab."""
    try:
        return importlib.util.find_spec("google.colab") is not None
    except ModuleNotFoundError:  # no `google` package at all
        return False


def resolve_data(data_dir, demo_name, app):
    """Where a notebook's data is and where its run goes: `(data_dir_path, data_args, run_dir)`.

    `data_dir` is the notebook's `DATA_DIR` parameter. Empty (None): the
    synthetic demo dataset `demo_name` (`hybridvision.common.data.demo.demo_root`,
    generated on first use), with no extra app arguments. Otherwise a local
    path or, in Colab, a Google Drive folder (`/content/drive/...`, mounted
    here); it must exist, and the app gets `["--data-dir", path]`.
    `run_dir` is `runs/<app>/notebook-<time>`, relative to the working folder.
    """
    if data_dir:
        if in_colab() and str(data_dir).startswith(DRIVE):
            from google.colab import drive

            drive.mount(DRIVE)
        path = Path(data_dir).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"DATA_DIR {path} does not exist: fix the path in the first code cell")
        data_args = ["--data-dir", str(path)]
    else:
        from hybridvision.common.data.demo import demo_root

        path = demo_root(demo_name)
        data_args = []
        print("SYNTHETIC demo data:", path)
    run_dir = Path("runs") / app / time.strftime("notebook-%Y%m%d-%H%M%S")
    print("run directory:", run_dir.resolve())
    return path, data_args, run_dir
