"""The notebooks' shared cells: backend report, inline images, data and output location, app settings.

Every notebook in `notebooks/` runs its own setup cell first (clone and
install in Colab, or put the checkout on the path); only after it is this
module importable. The functions here are the cells that came after it in
every notebook alike (their learning curves: `hybridvision.common.plots.plot_history`).
Keras, TensorFlow and IPython are imported inside the functions, so importing
this module costs nothing.

Where the output goes: the apps write `runs/<app>/...` (their `--run-dir`)
and export to `saved_models/<app>/...`, both relative to the working folder
(`hybridvision.common.run.Run`; there is no flag for the export folder). A
notebook's `OUTPUT_DIR` therefore moves the working folder (`use_output_dir`):
in Colab a folder under `/content/drive` mounts Google Drive first, so the
runs and the exported models outlive the Colab session.
"""

from __future__ import annotations

import importlib.util
import os
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


def on_drive(path):
    """Whether `path` lies on Google Drive as Colab mounts it (under `/content/drive`)."""
    return str(path) == DRIVE or str(path).startswith(DRIVE + "/")


def mount_drive(path, name="OUTPUT_DIR"):
    """Mounts Google Drive at `/content/drive` when `path` lies under it; True if it asked Colab to.

    Outside Colab such a path cannot work (unless `/content/drive` is there already, then it is
    used as it is): `ValueError` naming the notebook parameter `name`. Mounting an already
    mounted Drive only prints that it is mounted.
    """
    if not on_drive(path):
        return False
    if not in_colab():
        if Path(DRIVE).exists():
            return False
        raise ValueError(f"{name} {path} is on Google Drive, which only Colab mounts; "
                         "outside Colab give a local folder (or None)")
    from google.colab import drive

    drive.mount(DRIVE)
    return True


def use_output_dir(output_dir):
    """Makes `output_dir` the working folder, so the apps' `runs/` and `saved_models/` go there.

    `output_dir` is the notebook's `OUTPUT_DIR` parameter: None (or empty)
    leaves the working folder as it is; a folder under `/content/drive` in
    Colab mounts Google Drive first (e.g. `/content/drive/MyDrive/hybridvision`:
    the runs and exported models outlive the session). The folder is made if
    missing. Returns the working folder, absolute.
    """
    if output_dir:
        path = Path(output_dir).expanduser()
        mount_drive(path)
        path.mkdir(parents=True, exist_ok=True)
        os.chdir(path)
        print("runs/ and saved_models/ go under", Path.cwd())
    return Path.cwd()


def resolve_data(data_dir, demo_name, app, output_dir=None):
    """Where a notebook's data is and where its run goes: `(data_dir_path, data_args, run_dir)`.

    `data_dir` is the notebook's `DATA_DIR` parameter. Empty (None): the
    synthetic demo dataset `demo_name` (`hybridvision.common.data.demo.demo_root`,
    generated on first use), with no extra app arguments. Otherwise a local
    path or, in Colab, a Google Drive folder (`/content/drive/...`, mounted
    here); it must exist, and the app gets `["--data-dir", path]` (absolute).
    `output_dir` is the notebook's `OUTPUT_DIR` (`use_output_dir`), applied
    after `data_dir` is made absolute. `run_dir` is `runs/<app>/notebook-<time>`,
    relative to the working folder.
    """
    if data_dir:
        path = Path(data_dir).expanduser()
        mount_drive(path, "DATA_DIR")
        if not path.exists():
            raise FileNotFoundError(f"DATA_DIR {path} does not exist: fix the path in the first code cell")
        path = path.resolve()
        data_args = ["--data-dir", str(path)]
    else:
        from hybridvision.common.data.demo import demo_root

        path = demo_root(demo_name)
        data_args = []
        print("SYNTHETIC demo data:", path)
    use_output_dir(output_dir)
    run_dir = Path("runs") / app / time.strftime("notebook-%Y%m%d-%H%M%S")
    print("run directory:", run_dir.resolve())
    return path, data_args, run_dir


def app_flags(**settings):
    """An app's command-line flags for a notebook's settings: `app_flags(model="hybrid")` -> `["--model", "hybrid"]`.

    A setting left None is not passed, so the app uses its default (or its
    automatic value, such as the weights by backbone); a list or tuple is
    joined by commas; True / False give `--name` / `--no-name`.
    """
    flags = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            flags += [flag, ",".join(map(str, value))]
        else:
            flags += [flag, str(value)]
    return flags


def app_config(config_class, argv, show=()):
    """The app's config for the command line `argv`, as the app itself will make it; prints the fields `show`.

    Parsing runs the config's `fill_automatic`, so the printout gives the
    automatic settings' values (marked "automatic"), and an impossible
    combination fails here in one line before anything trains.
    """
    from hybridvision.common.config import parse_config

    config = parse_config(config_class, list(argv))
    automatic = getattr(config, "_automatic", frozenset())
    for name in show:
        value = getattr(config, name)
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        print(f"{name:>16}: {shown}" + ("  (automatic)" if name in automatic else ""))
    return config

