"""What a finished run tells its trackers: TensorBoard (always), MLflow or Weights & Biases (`--tracker`).

`Run.finish` calls `log_final` once, after the final model is evaluated:

* TensorBoard, `tensorboard/final/` in the run directory: the run's settings through the hparams plugin
  (`tensorboard.plugins.hparams.api`), every numeric val/test metric as a scalar `final/<split>_<metric>`,
  and each split's confusion matrix (when the app's report has `confusion_matrix`) as an image
  `final/<split>_confusion_matrix`; and, where `Run.finish` has samples (its `samples`, else the val split,
  else test), the first 4 images of their first batch, each beside its Grad-CAM heat map of the final model
  (`hybridvision.common.explain.grad_cam_samples`, titled with the true and predicted class), as one image
  summary `final/gradcam`: a model without a convolution, or with inputs Grad-CAM cannot take, gets one
  warning and no samples. The per-epoch curves are the `keras.callbacks.TensorBoard` logs
  beside it (`tensorboard/<phase>/`).
* `--tracker mlflow` or `--tracker wandb` (optional extras: `pip install mlflow` / `pip install wandb`, or
  hybridvision's `tracking` / `wandb` extras) log the same things, read from the finished run
  (`Logged`): the settings, the per-epoch history (`history*.csv`; `<phase>/<metric>` for a phase other
  than the main one), the final val/test metrics, and config.yaml, the curves and confusion matrices as
  files. Logged at the end, in one go, so a run resumed after a crash logs once.
  - MLflow: a local store `mlruns/` in the run directory (a SQLite database and its artifacts), one run
    named after the run directory. Written anew each time.
  - Weights & Biases: one run in project `hybridvision-<app>`, named after the run directory, plus the
    exported model as a `model` artifact. Offline (`wandb sync <run dir>/wandb/offline-run-*` uploads it
    later) unless the user has set WANDB_MODE or is logged in (WANDB_API_KEY, or `wandb login`'s entry
    in ~/.netrc); written under WANDB_DIR, else the run directory.
"""

from __future__ import annotations

import dataclasses
import logging
import netrc
import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from hybridvision.common.cli import UserError
from hybridvision.common.history import read_history

log = logging.getLogger("hybridvision")
SPLITS = ("val", "test")
GRADCAM = 4  # samples of `final/gradcam`


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


def _gradcam_pngs(model, samples, class_names) -> list[bytes]:
    """`explain.grad_cam_samples` of the first batch of `samples` (a dataset, or an `(inputs, labels)` batch);
    [] for a model without a convolution (nothing to explain: no warning), and [] with one warning when
    Grad-CAM cannot be made for this model or these inputs."""
    if model is None or samples is None:
        return []
    from hybridvision.common.explain import conv_layers

    if not conv_layers(model):
        log.debug("TensorBoard: no Grad-CAM samples (model %r has no convolution)", model.name)
        return []
    try:
        from hybridvision.common.explain import grad_cam_samples

        batch = samples if isinstance(samples, tuple) else next(iter(samples))
        return grad_cam_samples(model, batch[0], batch[1] if len(batch) > 1 else None, class_names, count=GRADCAM)
    except Exception as err:  # noqa: BLE001
        log.warning("TensorBoard: no Grad-CAM samples (%s)", " ".join(str(err).split()))
        return []


def tensorboard_final(log_dir: Path, run_name: str, settings: dict, scalars: dict, pngs: dict, step: int,
                      gradcam: list[bytes] = ()) -> None:
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
        if gradcam:
            images = tf.stack([tf.image.decode_png(png, channels=3) for png in gradcam])
            tf.summary.image("final/gradcam", images, step=step, max_outputs=len(gradcam),
                             description="each image beside its Grad-CAM heat map: true and predicted class")
    writer.flush()
    writer.close()


def mlflow_uri(run_dir: Path) -> str:
    """The tracking URI of a run's local MLflow store (`mlflow ui --backend-store-uri <this>` shows it)."""
    return f"sqlite:///{(Path(run_dir) / 'mlruns' / 'mlflow.db').absolute()}"


@dataclasses.dataclass
class Logged:
    """What a tracker logs of a finished run: the same for every tracker."""

    app: str
    run_dir: Path
    run_name: str
    settings: dict  # `_settings`: bool, int, float or str values
    scalars: dict  # `_scalars`: the final val/test metrics
    step: int  # epochs trained
    model: Path | None = None  # the exported model, if the run exported one

    def epochs(self):
        """`(prefix, epoch, {metric: value})` per row of each `history*.csv`; the metrics of a phase other
        than the main one (`history_<phase>.csv`) are named `<phase>/<metric>` (prefix `<phase>/`)."""
        for history in sorted(self.run_dir.glob("history*.csv")):
            phase = history.stem[len("history"):].lstrip("_")
            prefix = f"{phase}/" if phase else ""
            for row in read_history(history):
                values = {prefix + key: float(value) for key, value in row.items()
                          if key != "epoch" and value is not None and np.isfinite(value)}
                yield prefix, int(row["epoch"]), values

    def files(self) -> list[Path]:
        """config.yaml, the curves and the confusion matrices of the run directory."""
        return [path for pattern in ("config.yaml", "curves*.png", "confusion*.png")
                for path in sorted(self.run_dir.glob(pattern))]


def mlflow_final(logged: Logged) -> Path:
    """Log the run into `run_dir/mlruns` (a SQLite store and its artifacts); returns that folder."""
    try:
        import mlflow
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UserError(MISSING["mlflow"]) from None
    store = logged.run_dir / "mlruns"
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir()
    # MLflow's file store is in maintenance mode: a SQLite database and an artifact folder, both in mlruns/.
    client = MlflowClient(tracking_uri=mlflow_uri(logged.run_dir))
    experiment = client.create_experiment(logged.app, artifact_location=(store / "artifacts").absolute().as_uri())
    run = client.create_run(experiment, run_name=logged.run_name)
    rid = run.info.run_id
    now = int(mlflow.utils.time.get_current_time_millis())
    params = [Param(key, str(value)[:6000]) for key, value in logged.settings.items()]
    metrics = [Metric(key, value, now, logged.step) for key, value in logged.scalars.items()]
    metrics += [Metric(key, value, now, epoch) for _, epoch, values in logged.epochs()
                for key, value in values.items()]
    for i in range(0, len(params), 100):
        client.log_batch(rid, params=params[i:i + 100])
    for i in range(0, len(metrics), 500):
        client.log_batch(rid, metrics=metrics[i:i + 500])
    for path in logged.files():
        client.log_artifact(rid, str(path))
    client.set_terminated(rid)
    return store


def wandb_mode() -> str | None:
    """`wandb.init`'s mode: None (wandb decides) where the user set WANDB_MODE or is logged in (WANDB_API_KEY,
    or `wandb login`'s entry in ~/.netrc), else "offline": nothing leaves the machine unasked."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return None
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        if netrc.netrc().authenticators(host):
            return None
    except (OSError, netrc.NetrcParseError):
        pass
    return "offline"


def wandb_final(logged: Logged) -> Path:
    """Log the run to Weights & Biases (offline unless the user chose otherwise, `wandb_mode`); returns
    the folder of wandb's run files."""
    try:
        import wandb
    except ImportError:
        raise UserError(MISSING["wandb"]) from None
    own_dir = not os.environ.get("WANDB_DIR")
    if own_dir:  # written anew each time, like mlruns/
        shutil.rmtree(logged.run_dir / "wandb", ignore_errors=True)
    run = wandb.init(project=f"hybridvision-{logged.app}", name=logged.run_name, config=logged.settings,
                     dir=str(logged.run_dir) if own_dir else None, mode=wandb_mode(),
                     settings=wandb.Settings(console="off"))
    try:
        folder = Path(run.dir).parent
        for prefix, epoch, values in logged.epochs():
            run.log({f"{prefix}epoch": epoch, **values})
        run.summary.update(logged.scalars)
        for path in logged.files():  # as <run name>/config.yaml ...: wandb's own config.yaml is the settings
            run.save(str(path), base_path=str(logged.run_dir.parent), policy="now")
        if logged.model is not None and logged.model.is_file():
            artifact = wandb.Artifact(re.sub(r"[^\w.-]", "-", logged.run_name), type="model",
                                      metadata={"app": logged.app, **logged.scalars})
            artifact.add_file(str(logged.model))
            run.log_artifact(artifact)
    finally:
        run.finish()
    return folder


# --tracker NAME (also the package it needs): its logger, and the one line when the package is missing.
TRACKERS = {"mlflow": mlflow_final, "wandb": wandb_final}
MISSING = {
    "mlflow": "--tracker mlflow: mlflow is not installed (pip install mlflow, or the hybridvision[tracking] extra), "
              "or pass --tracker none",
    "wandb": "--tracker wandb: wandb is not installed (pip install wandb, or the hybridvision[wandb] extra), "
             "or pass --tracker none",
}


def check(config) -> None:
    """Refuse (one line) a `--tracker` that is not installed or a `--callbacks` that cannot be imported."""
    import importlib.util

    from hybridvision.common.recipe import callback_factory

    tracker = getattr(config, "tracker", "none")
    if tracker in TRACKERS and importlib.util.find_spec(tracker) is None:
        raise UserError(MISSING[tracker])
    for spec in getattr(config, "callbacks", None) or ():
        callback_factory(spec)


def log_final(run, results: dict, model=None, samples=None, class_names=None) -> None:
    """The finished run `run` (a `Run`) with its final `results`, to TensorBoard and the chosen tracker.

    `model`, `samples`, `class_names`: the final model and a dataset (or an `(inputs, labels)` batch) whose
    first `GRADCAM` images TensorBoard gets with their Grad-CAM (`final/gradcam`); none without them.
    """
    settings = _settings(run.config)
    scalars = _scalars(results)
    step = run.epochs_trained()
    # A tracker that fails costs its log, never the finished run (metrics.json is written next).
    try:
        tensorboard_final(run.dir / "tensorboard" / "final", run.export_name, settings, scalars,
                          _confusion_pngs(results), step, _gradcam_pngs(model, samples, class_names))
    except Exception as err:  # noqa: BLE001
        log.warning("TensorBoard: the final settings and metrics were not written (%s)", " ".join(str(err).split()))
    tracker = getattr(run.config, "tracker", "none")
    if tracker in TRACKERS:
        model = (results.get("notes") or {}).get("exported_model")
        logged = Logged(run.app, run.dir, run.export_name, settings, scalars, step, Path(model) if model else None)
        name = {"mlflow": "MLflow", "wandb": "Weights & Biases"}[tracker]
        try:
            where = TRACKERS[tracker](logged)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001
            log.warning("%s: the run was not logged (%s)", name, " ".join(str(err).split()))
        else:
            log.info("%s: logged to %s", name, where)
