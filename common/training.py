"""One training harness for every app.

`Run` owns a run directory and everything written into it:

    runs/<app>/<timestamp>/
        config.yaml          the resolved config (what `--config` reads back)
        run.log              the log, including skipped images
        history.csv          one row per finished epoch (per phase: history_<phase>.csv)
        curves.png           loss and metric curves
        best.keras           best checkpoint by the monitored validation metric
        model.keras          the model to use (the best checkpoint)
        metrics.json         {"val": {...}, "test": {...}} with every compiled metric
        tensorboard/         TensorBoard logs
        backup/              training state while a run is unfinished

Running the same command again after a crash resumes from the last finished
epoch (Keras's `BackupAndRestore`, with writes made atomic here), keeps the
history rows and the best-so-far score, and then carries on. Apps with
several phases (fine-tuning after a frozen phase, a curriculum) call
`Run.fit` once per phase; finished phases are skipped on resume.

Typical use in an app:

    run = Run("digit_pairs", cfg)
    run.fit(model, train_ds, val_ds, monitor="val_accuracy")
    run.finish(model, {"val": val_ds, "test": test_ds})
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import math
import os
import shutil
from pathlib import Path

import keras

from common.config import save_config

log = logging.getLogger("hybridvision")

_IGNORED_FOR_RESUME = ("run_dir", "quiet")


def setup_logging(quiet: bool = False) -> None:
    """Console logging for the `hybridvision` logger (INFO, or WARNING when quiet)."""
    log.setLevel(logging.INFO)
    if not any(getattr(h, "_hybridvision_console", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._hybridvision_console = True
        log.addHandler(handler)
    for h in log.handlers:
        if getattr(h, "_hybridvision_console", False):
            h.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _atomic_save_model(model, path: Path) -> None:
    # A kill during model.save must never leave a half-written best checkpoint.
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    model.save(tmp)
    os.replace(tmp, path)


class _AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose weights and epoch counter are replaced atomically.

    Keras writes the weights file in place and then the metadata file; a kill in
    between (or during the write) leaves a corrupt or inconsistent backup. We
    write both to temporary names and rename them, the epoch counter last.
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        weights_tmp = self._weights_path + ".tmp.weights.h5"
        self.model.save_weights(weights_tmp, overwrite=True)
        meta_tmp = self._training_metadata_path + ".tmp"
        with open(meta_tmp, "w") as f:
            json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(weights_tmp, self._weights_path)
        os.replace(meta_tmp, self._training_metadata_path)


class _HistoryCSV(keras.callbacks.Callback):
    """history.csv that survives resume: rows of redone epochs are replaced, not duplicated."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        start = getattr(self.model, "_initial_epoch", None) or 0
        self.rows = [r for r in read_history(self.path) if int(r["epoch"]) < start]

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch}
        for key, value in (logs or {}).items():
            row[key] = float(value)
        self.rows = [r for r in self.rows if int(r["epoch"]) != epoch] + [row]
        keys = ["epoch"] + sorted({k for r in self.rows for k in r} - {"epoch"})
        lines = [",".join(keys)]
        for r in self.rows:
            lines.append(",".join(str(r.get(k, "")) for k in keys))
        _atomic_write_text(self.path, "\n".join(lines) + "\n")


class _BestCheckpoint(keras.callbacks.Callback):
    """Saves the best model by `monitor`; on resume it remembers the best score so far."""

    def __init__(self, path: Path, history_path: Path, monitor: str, mode: str):
        super().__init__()
        self.path, self.history_path = path, history_path
        self.monitor, self.mode = monitor, mode
        self.best = None

    def _better(self, value, best):
        return best is None or (value < best if self.mode == "min" else value > best)

    def on_train_begin(self, logs=None):
        start = getattr(self.model, "_initial_epoch", None) or 0
        self.best = None
        if not self.path.exists():
            return
        for row in read_history(self.history_path):
            value = row.get(self.monitor)
            if int(row["epoch"]) < start and value not in (None, ""):
                if self._better(float(value), self.best):
                    self.best = float(value)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(
                f"monitored metric '{self.monitor}' is not in the epoch logs "
                f"({', '.join(sorted(logs or {}))}); pass one of these as monitor"
            )
        value = float(value)
        if math.isnan(value):
            return
        if self._better(value, self.best):
            log.info("epoch %d: %s improved to %.4f, saving %s", epoch + 1, self.monitor, value, self.path.name)
            self.best = value
            _atomic_save_model(self.model, self.path)


def read_history(path: Path) -> list[dict]:
    """Rows of a history CSV as dicts of floats (empty if the file is missing)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (float(v) if v not in ("", None) else None) for k, v in r.items()} for r in rows]


def _comparable(config) -> dict:
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v for k, v in data.items() if k not in _IGNORED_FOR_RESUME}


def resolve_run_dir(app: str, config, root: str | Path = "runs") -> Path:
    """The run directory: `config.run_dir`, else an unfinished run of the same config, else a new one."""
    if getattr(config, "run_dir", None):
        return Path(config.run_dir)
    app_root = Path(root) / app
    if app_root.is_dir():
        for candidate in sorted(app_root.iterdir(), reverse=True):
            cfg_file = candidate / "config.json"
            if not cfg_file.exists() or (candidate / "metrics.json").exists():
                continue
            try:
                saved = json.loads(cfg_file.read_text())
            except json.JSONDecodeError:
                continue
            if {k: v for k, v in saved.items() if k not in _IGNORED_FOR_RESUME} == _comparable(config):
                log.info("resuming the unfinished run in %s", candidate)
                return candidate
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = app_root / stamp
    n = 1
    while path.exists():
        n += 1
        path = app_root / f"{stamp}-{n}"
    return path


class Run:
    """A training run: its directory, its phases, its metrics and its exported model.

    Args:
        app: the app's name (`runs/<app>/...`, `saved_models/<app>/...`).
        config: the app's config dataclass (see `common.config`).
        export_name: file name (without `.keras`) under `saved_models/<app>/`;
            default: the run directory's name.
        saved_models_dir: where exported models go (default `saved_models`).
    """

    def __init__(self, app: str, config, export_name: str | None = None, saved_models_dir: str | Path = "saved_models"):
        self.app = app
        self.config = config
        self.quiet = bool(getattr(config, "quiet", False))
        setup_logging(self.quiet)
        self.dir = resolve_run_dir(app, config)
        if (self.dir / "metrics.json").exists():
            raise FileExistsError(
                f"run directory {self.dir} already holds a finished run (metrics.json); "
                "pass a new --run-dir or delete that folder"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.export_name = export_name or self.dir.name
        self.saved_models_dir = Path(saved_models_dir)
        self._log_handler = logging.FileHandler(self.dir / "run.log")
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self._log_handler)
        save_config(config, self.dir / "config.yaml")
        _atomic_write_text(self.dir / "config.json", json.dumps(config.to_dict(), indent=2, sort_keys=True))
        self.notes: dict = {}
        keras.utils.set_random_seed(int(getattr(config, "seed", 0)))
        log.info("run directory: %s", self.dir)

    # ---- paths -------------------------------------------------------------
    def _suffix(self, phase: str) -> str:
        return "" if phase == "main" else f"_{phase}"

    def history_path(self, phase: str = "main") -> Path:
        return self.dir / f"history{self._suffix(phase)}.csv"

    def best_path(self, phase: str = "main") -> Path:
        return self.dir / f"best{self._suffix(phase)}.keras"

    def phase_done(self, phase: str = "main") -> bool:
        return (self.dir / f".done{self._suffix(phase)}").exists()

    # ---- training ----------------------------------------------------------
    def callbacks(self, phase: str, monitor: str, mode: str) -> list:
        backup = self.dir / f"backup{self._suffix(phase)}"
        return [
            # Order matters: the backup restores the epoch counter that the
            # history and checkpoint callbacks read in on_train_begin.
            _AtomicBackupAndRestore(str(backup), double_checkpoint=True, delete_checkpoint=False),
            _HistoryCSV(self.history_path(phase)),
            _BestCheckpoint(self.best_path(phase), self.history_path(phase), monitor, mode),
            keras.callbacks.TensorBoard(str(self.dir / "tensorboard" / phase)),
        ]

    def fit(
        self,
        model,
        train_data,
        val_data,
        epochs: int | None = None,
        monitor: str = "val_loss",
        mode: str | None = None,
        phase: str = "main",
        callbacks: list | None = None,
        **fit_kwargs,
    ) -> list[dict]:
        """Train `model` (compiled) for one phase and return its history rows.

        A phase finished in an earlier invocation is not trained again: its
        final weights are loaded instead, so later phases resume correctly.
        """
        epochs = int(epochs if epochs is not None else self.config.epochs)
        mode = mode or ("min" if "loss" in monitor else "max")
        last_weights = self.dir / f"last{self._suffix(phase)}.weights.h5"
        if self.phase_done(phase):
            log.info("phase '%s' already finished in %s; loading its weights", phase, self.dir)
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(last_weights)
            return read_history(self.history_path(phase))
        if not model.built:
            raise ValueError("build the model (call it or give it an Input) before Run.fit")
        log.info("training phase '%s' for %d epochs, monitoring %s (%s)", phase, epochs, monitor, mode)
        # Datasets pass through; an (x, y) tuple of arrays is unpacked.
        x, y = train_data if isinstance(train_data, tuple) else (train_data, None)
        if y is None:
            # A dataset or generator orders its own batches (Keras warns about shuffle=True otherwise).
            fit_kwargs.setdefault("shuffle", False)
        model.fit(
            x,
            y,
            validation_data=val_data,
            epochs=epochs,
            callbacks=self.callbacks(phase, monitor, mode) + list(callbacks or []),
            verbose=0 if self.quiet else "auto",
            **fit_kwargs,
        )
        model.save_weights(last_weights)
        _atomic_write_text(self.dir / f".done{self._suffix(phase)}", "done\n")
        # Only now that the phase is marked done may its backup go: a kill before
        # this line resumes from the backup, after it skips the phase.
        shutil.rmtree(self.dir / f"backup{self._suffix(phase)}", ignore_errors=True)
        return read_history(self.history_path(phase))

    # ---- results -----------------------------------------------------------
    def best_model(self, phase: str = "main"):
        """The best checkpoint of `phase`, loaded (no custom_objects needed)."""
        return keras.models.load_model(self.best_path(phase))

    def evaluate(self, model, datasets: dict) -> dict:
        """`{"val": {...}, "test": {...}}` with every compiled metric of `model`."""
        results = {}
        for split, data in datasets.items():
            if data is None:
                continue
            # (x, y) tuples of arrays are unpacked; datasets pass through.
            args = data if isinstance(data, tuple) else (data,)
            values = model.evaluate(*args, return_dict=True, verbose=0)
            results[split] = {k: float(v) for k, v in values.items()}
        return results

    def finish(self, model, datasets: dict | None = None, metrics: dict | None = None, phase: str = "main", use_best: bool = True):
        """Write model.keras, metrics.json and curves; export to saved_models/<app>/.

        Args:
            model: the trained model (used when there is no best checkpoint).
            datasets: `{"val": ds, "test": ds}` evaluated with the chosen model.
            metrics: extra metrics merged into metrics.json (per split dicts
                are merged key by key).
            phase: whose best checkpoint becomes model.keras.
            use_best: False keeps `model` as is (e.g. the last epoch).
        Returns:
            (final_model, metrics dict)
        """
        from common.plots import plot_history

        final = self.best_model(phase) if use_best and self.best_path(phase).exists() else model
        _atomic_save_model(final, self.dir / "model.keras")
        results = self.evaluate(final, datasets or {})
        for key, value in (metrics or {}).items():
            if isinstance(value, dict) and isinstance(results.get(key), dict):
                results[key].update(value)
            else:
                results[key] = value
        if self.notes:
            results.setdefault("notes", {}).update(self.notes)
        for hist in sorted(self.dir.glob("history*.csv")):
            plot_history(hist, self.dir / hist.name.replace("history", "curves").replace(".csv", ".png"))
        export = self.saved_models_dir / self.app / f"{self.export_name}.keras"
        export.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.dir / "model.keras", export)
        results.setdefault("notes", {})["exported_model"] = str(export)
        # metrics.json last: its presence marks the run finished.
        _atomic_write_text(self.dir / "metrics.json", json.dumps(results, indent=2, sort_keys=True))
        log.info("metrics: %s", json.dumps({k: v for k, v in results.items() if k != "notes"}, sort_keys=True))
        log.info("model saved to %s and exported to %s", self.dir / "model.keras", export)
        self.close()
        return final, results

    def note(self, key: str, value) -> None:
        """Record a fact about the run (e.g. 'val split made from train rows') in metrics.json."""
        self.notes[key] = value
        log.info("note: %s = %s", key, value)

    def close(self) -> None:
        if self._log_handler in log.handlers:
            log.removeHandler(self._log_handler)
            self._log_handler.close()
