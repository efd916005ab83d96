"""What a finished run tells its trackers: TensorBoard (always) and MLflow (`--tracker mlflow`).

`Run.finish` calls `log_final` once, after the final model is evaluated:

* TensorBoard, `tensorboard/final/` in the run directory: the run's settings through the hparams plugin
  (`tensorboard.plugins.hparams.api`), every numeric val/test metric as a scalar `final/<split>_<metric>`,
  and each split's confusion matrix (when the app's report has `confusion_matrix`) as an image
  `final/<split>_confusion_matrix`. The per-epoch curves are the `keras.callbacks.TensorBoard` logs
  beside it (`tensorboard/<phase>/`).
* MLflow (an optional extra: `pip install mlflow`), a local store `mlruns/` in the run directory: one
  run named after the run directory with the settings as params, the per-epoch history and the final
  metrics as metrics, and config.yaml, the curves and confusion matrices as artifacts. Written anew
  each time (a run finished again after a crash logs once).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from hybridvision.common.cli import UserError
from hybridvision.common.history import read_history

log = logging.getLogger("hybridvision")
SPLITS = ("val", "test")


def _scalars(results: dict) -> dict:
    """{"val_accuracy": 0.9, ...}: the numeric metrics of the val/test splits."""
    out = {}
    for split in SPLITS:
        for key, value in (results.get(split) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                out[f"{split}_{key}"] = float(value)
    return out


def _settings(config) -> dict:
    """The settings as hparams/params values: bool, int, float or str."""
    raw = config.to_dict() if hasattr(config, "to_dict") else {}
    out = {}
    for key, value in raw.items():
        if value is None:
            value = "none"
        elif isinstance(value, (list, tuple, dict)):
            value = ",".join(map(str, value)) if not isinstance(value, dict) else str(value)
        out[key] = value
    return out


def _confusion_pngs(results: dict) -> dict:
    """{split: PNG bytes} of the confusion matrices in the app's report."""
    from hybridvision.common.plots import plot_confusion_matrix

    names = (results.get("notes") or {}).get("class_names")
    pngs = {}
    for split in SPLITS:
        matrix = (results.get(split) or {}).get("confusion_matrix")
        if matrix is None:
            continue
        matrix = np.asarray(matrix)
        if matrix.ndim != 2:
            continue
        labels = list(names) if names and len(names) == len(matrix) else [str(i) for i in range(len(matrix))]
        with tempfile.TemporaryDirectory() as tmp:
            out = plot_confusion_matrix(matrix, labels, Path(tmp) / "cm.png", title=f"{split}: confusion matrix")
            pngs[split] = Path(out).read_bytes()
    return pngs


def tensorboard_final(log_dir: Path, run_name: str, settings: dict, scalars: dict, pngs: dict, step: int) -> None:
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        try:
            from tensorboard.plugins.hparams import api as hp

            hp.hparams(settings, trial_id=run_name)
        except ImportError:  # TensorBoard is not installed: the scalars and images still are written
            log.warning("tensorboard is not installed: the run's settings are not written as hparams")
        for key, value in scalars.items():
            tf.summary.scalar(f"final/{key}", value, step=step)
        for split, png in pngs.items():
            image = tf.image.decode_png(png, channels=4)[None]
            tf.summary.image(f"final/{split}_confusion_matrix", image, step=step)
    writer.flush()
    writer.close()


def mlflow_uri(run_dir: Path) -> str:
    """The tracking URI of a run's local MLflow store (`mlflow ui --backend-store-uri <this>` shows it)."""
    return f"sqlite:///{(Path(run_dir) / 'mlruns' / 'mlflow.db').absolute()}"


def mlflow_final(run_dir: Path, app: str, run_name: str, settings: dict, scalars: dict, step: int) -> Path:
    """Log the run into `run_dir/mlruns` (a SQLite store and its artifacts); returns that folder."""
    try:
        import mlflow
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UserError("--tracker mlflow: mlflow is not installed (pip install mlflow)") from None
    store = run_dir / "mlruns"
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir()
    # MLflow's file store is in maintenance mode: a SQLite database and an artifact folder, both in mlruns/.
    client = MlflowClient(tracking_uri=mlflow_uri(run_dir))
    experiment = client.create_experiment(app, artifact_location=(store / "artifacts").absolute().as_uri())
    run = client.create_run(experiment, run_name=run_name)
    rid = run.info.run_id
    now = int(mlflow.utils.time.get_current_time_millis())
    params = [Param(key, str(value)[:6000]) for key, value in settings.items()]
    metrics = [Metric(key, value, now, step) for key, value in scalars.items()]
    for history in sorted(run_dir.glob("history*.csv")):
        phase = history.stem[len("history"):].lstrip("_")
        for row in read_history(history):
            for key, value in row.items():
                if key != "epoch" and value is not None and np.isfinite(value):
                    name = f"{phase}/{key}" if phase else key
                    metrics.append(Metric(name, float(value), now, int(row["epoch"])))
    for i in range(0, len(params), 100):
        client.log_batch(rid, params=params[i:i + 100])
    for i in range(0, len(metrics), 500):
        client.log_batch(rid, metrics=metrics[i:i + 500])
    for pattern in ("config.yaml", "curves*.png", "confusion*.png"):
        for path in sorted(run_dir.glob(pattern)):
            client.log_artifact(rid, str(path))
    client.set_terminated(rid)
    return store


def check(config) -> None:
    """Refuse (one line) a `--tracker` that is not installed or a `--callbacks` that cannot be imported."""
    import importlib
    import importlib.util

    if getattr(config, "tracker", "none") == "mlflow" and importlib.util.find_spec("mlflow") is None:
        raise UserError("--tracker mlflow: mlflow is not installed (pip install mlflow), or pass --tracker none")
    for spec in getattr(config, "callbacks", None) or ():
        module, _, name = str(spec).partition(":")
        if not module or not name:
            raise UserError(f"--callbacks {spec!r}: expected module:factory, e.g. mypackage.callbacks:make")
        try:
            found = hasattr(importlib.import_module(module), name)
        except ImportError as err:
            raise UserError(f"--callbacks {spec}: cannot import {module} ({err})") from None
        if not found:
            raise UserError(f"--callbacks {spec}: {module} has no {name}")


def log_final(run, results: dict) -> None:
    """The finished run `run` (a `Run`) with its final `results`, to TensorBoard and the chosen tracker."""
    settings = _settings(run.config)
    scalars = _scalars(results)
    step = run.epochs_trained()
    # A tracker that fails costs its log, never the finished run (metrics.json is written next).
    try:
        tensorboard_final(run.dir / "tensorboard" / "final", run.export_name, settings, scalars,
                          _confusion_pngs(results), step)
    except Exception as err:  # noqa: BLE001
        log.warning("TensorBoard: the final settings and metrics were not written (%s)", " ".join(str(err).split()))
    if getattr(run.config, "tracker", "none") == "mlflow":
        try:
            store = mlflow_final(run.dir, run.app, run.export_name, settings, scalars, step)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001
            log.warning("MLflow: the run was not logged (%s)", " ".join(str(err).split()))
        else:
            log.info("MLflow: logged to %s", store)
