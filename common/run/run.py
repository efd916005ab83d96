"""`Run`: one training run, its directory, its phases, its metrics and its exported model.

The layout of the run directory and the order in which its files become
durable are in the package docstring (`hybridvision.common.run`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from hybridvision.common import distribute, recipe, tracking
from hybridvision.common.cli import UserError
from hybridvision.common.config import save_config, validate
from hybridvision.common.history import read_history
from hybridvision.common.model_card import attach_card
from hybridvision.common.plots import plot_history
from hybridvision.common.run.atomic import (
    atomic_copy,
    atomic_save_model,
    atomic_save_weights,
    atomic_write_text,
    model_bytes,
    writing,
)
from hybridvision.common.run.commit import EpochCommit, PhaseFiles, load_backup, load_checkpoint, recover
from hybridvision.common.run.logs import setup_logging
from hybridvision.common.run.rundir import claim_run_dir, make_dir, other_settings, shorten

log = logging.getLogger("hybridvision")


def seed_everything(config) -> None:
    """Seed Python, NumPy and the backend with `config.seed`; with `config.deterministic`, also turn on
    TensorFlow's op determinism (before any dataset is built: it sets how tf.data runs its steps).

    Without it, Keras augmentation layers inside a parallel `Dataset.map` share one seed generator and
    draw from it in thread order, so a seeded run can part from its rerun once the cache makes the
    input pipeline run ahead (from the second epoch on)."""
    keras.utils.set_random_seed(int(getattr(config, "seed", 0)))
    if getattr(config, "deterministic", False):
        import tensorflow as tf  # tf.data is TensorFlow's under every backend

        tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def determinism_refused(config):
    """Under `--deterministic`, TensorFlow raises `UnimplementedError` for an op that has no deterministic
    kernel on the device (TensorFlow lists such kernels for GPUs): one line instead,
    naming the op and the fix. Every other error passes unchanged."""
    try:
        yield
    except Exception as error:
        message = str(error)
        if not (getattr(config, "deterministic", False) and type(error).__name__ == "UnimplementedError"
                and "determinis" in message.lower()):
            raise
        reason = next(line.strip() for line in message.splitlines() if "determinis" in line.lower())
        raise UserError(f"--deterministic: TensorFlow has no deterministic kernel for an op of this model on this device "
                        f"({reason}); run without --deterministic, or on the CPU") from None


# What `Run.finish` may end a run with: the best checkpoint of a phase, or the model as given.
FINAL_CHOICES = ("best", "last")
# Where runs on the embedded demo data export, under saved_models/: never beside a model trained on real data.
DEMO_EXPORTS = "demo"
# The copy of the newest export of an app (a copy, not a symlink: it works on every filesystem and survives moves).
LATEST = "latest"
# An epoch whose training loss is this many times the phase's first epoch's: the training diverged.
EXPLODED = 100
PREPROCESSING = ("inside the model: give images with values 0..255 of any height and width; each is resized "
                 "(bilinear) to the training size, then the backbone's own preprocessing runs")


def refuse_unexported(metrics: dict) -> dict:
    """`metrics` (what `Run.finish` returned, metrics.json) of a run whose model was exported or kept by choice
    (`export=False`); a one-line `UserError` when its export was refused as it did not learn.

    A train command ends with it, so that it exits with 2 then; tools that make many runs (studies,
    sweeps, tuners) go on and report each run's notes instead.
    """
    refused = metrics.get("notes", {}).get("refused_export")
    if refused:
        raise UserError(refused)
    return metrics


class Run:
    """A training run: its directory, its phases, its metrics and its exported model.

    Args:
        app: the app's name (`runs/<app>/...`, `saved_models/<app>/...`).
        config: the app's config dataclass (see `hybridvision.common.config`).
        export_name: file name (without `.keras`) under `saved_models/<app>/`;
            default: the run directory's name (the rule every app follows; tools that make
            several runs in one directory, seeds or sweeps, name each one).
        saved_models_dir: where exported models go (default `saved_models`). A run on the
            embedded demo data (`config.data_dir` None) exports under `<saved_models_dir>/demo/<app>/`
            instead, so a demo or notebook never replaces a model trained on real data.
        export: False keeps the model in the run directory only (`model.keras`), e.g. for the
            cells of a study, which would otherwise fill `saved_models/` with one copy each.

    Raises `UserError` (one line) when the directory is finished, in use by
    another process, holds an unfinished run with other settings, is not
    writable, or is damaged beyond repair.
    """

    def __init__(self, app: str, config, export_name: str | None = None, saved_models_dir: str | Path = "saved_models",
                 export: bool = True):
        self.app = app
        self.export = export
        self.config = config
        self.quiet = bool(getattr(config, "quiet", False))
        setup_logging(self.quiet)
        if dataclasses.is_dataclass(config):
            validate(config)
        self._lock = self._scratch = None
        tracking.check(config)  # --tracker and --callbacks, before the run directory is claimed
        self.is_chief = distribute.is_chief()
        self.dir, self._lock = claim_run_dir(app, config) if self.is_chief else (None, None)
        if distribute.process_count() > 1:
            self.dir = self._follow_chief(self.dir)
            if not self.is_chief:
                saved_models_dir = self._scratch / "saved_models"
        try:
            self._check_same_settings(config)
            self.export_name = export_name or self.dir.name
            self.saved_models_dir = Path(saved_models_dir)
            self.synthetic = getattr(config, "data_dir", "") is None
            with writing(f"run directory {self.dir}", folder=self.dir):
                self._log_handler = logging.FileHandler(self.dir / "run.log")
            self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(self._log_handler)
            with writing(str(self.dir / "config.yaml")):
                save_config(config, self.dir / "config.yaml")
            atomic_write_text(self.dir / "config.json", json.dumps(config.to_dict(), indent=2, sort_keys=True))
        except BaseException:
            self._release()
            raise
        self.notes: dict = {}
        self.monitors: dict = {}  # phase -> (monitor, mode) of its `fit`, in the order fitted
        seed_everything(config)
        log.info("run directory: %s", self.dir)

    # ---- the directory ------------------------------------------------------
    def _follow_chief(self, claimed: Path | None) -> Path:
        """A multi-process run (hybridvision.common.distribute): process 0 claims the run directory and alone writes
        into it. Every other process works in a private copy of it (a temporary folder, deleted on
        close) and does the same writes there: Keras's saving holds collectives, so all processes
        must save alike. Resuming needs the run directory on a filesystem all processes see."""
        chief_dir = Path(distribute.chief_value(str(claimed.absolute()) if self.is_chief else ""))
        if not self.is_chief:
            if not chief_dir.is_dir():
                raise UserError(f"process 0's run directory {chief_dir} is not visible to process "
                                f"{distribute.process_index()}: a multi-process run needs it on a filesystem all "
                                "processes see")
            self._scratch = Path(tempfile.mkdtemp(prefix=f"hybridvision-process{distribute.process_index()}-"))
            copy = self._scratch / chief_dir.name
            shutil.copytree(chief_dir, copy, ignore=shutil.ignore_patterns("run.lock", "run.log", "tensorboard"))
            chief_dir = copy
        distribute.barrier("run directory copied")  # process 0 changes nothing in it before this
        return chief_dir

    def _check_same_settings(self, config) -> None:
        """An unfinished run continues only with its own settings (else its files would mix two runs)."""
        started = any(self.dir.glob("history*.csv")) or any(self.dir.glob("backup*"))
        diff = other_settings(self.dir, config) if started else []
        if diff:
            raise UserError(f"run directory {self.dir} holds an unfinished run with other settings "
                            f"({shorten(diff)}); run it with its own settings "
                            f"(--config {self.dir / 'config.yaml'}) or pass another --run-dir")

    # ---- paths -------------------------------------------------------------
    def _suffix(self, phase: str) -> str:
        return "" if phase == "main" else f"_{phase}"

    def _files(self, phase: str) -> PhaseFiles:
        return PhaseFiles(self.dir, self._suffix(phase))

    def history_path(self, phase: str = "main") -> Path:
        return self._files(phase).history

    def best_path(self, phase: str = "main") -> Path:
        return self._files(phase).best

    def best_record(self, phase: str = "main") -> dict | None:
        """best.json of `phase`: {"score", "epoch", "monitor", "mode"} of best.keras, or None."""
        path = self._files(phase).best_json
        return json.loads(path.read_text()) if path.exists() else None

    def phase_done(self, phase: str = "main") -> bool:
        return self._files(phase).done.exists()

    # ---- training ----------------------------------------------------------
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
        final weights are loaded instead, so later phases resume correctly. An
        unfinished one resumes after its last committed epoch.
        """
        epochs = int(epochs if epochs is not None else self.config.epochs)
        mode = mode or ("min" if "loss" in monitor else "max")
        self.monitors[phase] = (monitor, mode)
        files = self._files(phase)
        if self.phase_done(phase):
            log.info("phase '%s' already finished in %s; loading its weights", phase, self.dir)
            load_backup(model, files.last_weights)
            return read_history(files.history)
        if not model.built:
            raise ValueError("build the model (call it or give it an Input) before Run.fit")
        state = recover(files, monitor, mode)
        if state.epoch:
            log.warning("resuming %s from epoch %d of %d%s (%d finished before; best %s so far: %s)",
                        self.dir, state.epoch + 1, epochs, "" if phase == "main" else f" of phase '{phase}'",
                        state.epoch, monitor, "none" if state.best is None else f"{state.best[0]:.4f} at epoch "
                        f"{state.best[1] + 1}")
        log.info("training phase '%s' for %d epochs, monitoring %s (%s)", phase, epochs, monitor, mode)
        if state.epoch >= epochs:
            if state.weights is not None:
                load_backup(model, state.weights)
        elif recipe.stopped_early(self.config, state.rows, monitor, mode):
            log.info("phase '%s' had stopped early (--early-stopping) after epoch %d", phase, state.epoch)
            if state.weights is not None:
                load_backup(model, state.weights)
        else:
            # The shared training recipe (--lr-schedule, --ema, --mixup, ...; defaults change nothing).
            train_data, before, after = recipe.apply(
                model, train_data, self.config, epochs=epochs, monitor=monitor, mode=mode, rows=state.rows,
                resumed=state.weights is not None, fit_kwargs=fit_kwargs)
            # Datasets pass through; an (x, y) tuple of arrays is unpacked.
            x, y = train_data if isinstance(train_data, tuple) else (train_data, None)
            if y is None:
                # A dataset or generator orders its own batches (Keras warns about shuffle=True otherwise).
                fit_kwargs.setdefault("shuffle", False)
            distribute.jit_steps_under_data_parallel(model)
            # A full disk met by any write of an epoch (TensorBoard's, a callback's): one line, not an op's text.
            with writing("the training's files (the next backup and checkpoint)", folder=self.dir,
                         needed=2 * model_bytes(model)), determinism_refused(self.config):
                model.fit(
                    x,
                    y,
                    validation_data=val_data,
                    epochs=epochs,
                    initial_epoch=state.epoch,
                    callbacks=[
                        # First: the epoch's results are durable before any other callback runs
                        # (`before` only swaps in --ema's averaged weights, which the commit saves).
                        *before,
                        EpochCommit(files, state, monitor, mode),
                        *after,
                        keras.callbacks.TensorBoard(str(self.dir / "tensorboard" / phase)),
                        *(callbacks or []),
                    ],
                    verbose=0 if self.quiet else "auto",
                    **fit_kwargs,
                )
        atomic_save_weights(model, files.last_weights)
        atomic_write_text(files.done, "done\n")
        # Only now that the phase is marked done may its backup go: a kill before
        # this line resumes from the backup, after it skips the phase.
        shutil.rmtree(files.backup, ignore_errors=True)
        return read_history(files.history)

    # ---- results -----------------------------------------------------------
    def best_model(self, phase: str = "main"):
        """The best checkpoint of `phase`, loaded (no custom_objects needed)."""
        return load_checkpoint(self.best_path(phase))

    def restore_best(self, model, phase: str = "main") -> bool:
        """Load the best checkpoint's weights of `phase` into `model` (the model that phase trained).

        Returns False, leaving `model` as it is, when the phase has no checkpoint
        (no epoch with a finite monitored metric).
        """
        if not self.best_path(phase).exists():
            return False
        model.set_weights(load_checkpoint(self.best_path(phase), compile=False).get_weights())
        return True

    def evaluate(self, model, datasets: dict) -> dict:
        """`{"val": {...}, "test": {...}}` with every compiled metric of `model`."""
        results = {}
        distribute.jit_steps_under_data_parallel(model)
        for split, data in datasets.items():
            if data is None:
                continue
            # (x, y) tuples of arrays are unpacked; datasets pass through.
            args = data if isinstance(data, tuple) else (data,)
            with determinism_refused(self.config):
                values = model.evaluate(*args, return_dict=True, verbose=0)
            results[split] = {k: float(v) for k, v in values.items()}
        return results

    def epochs_trained(self) -> int:
        """Epochs trained in this run directory, all phases together (history rows)."""
        return sum(len(read_history(p)) for p in self.dir.glob("history*.csv"))

    def _export_refusal(self, model) -> str | None:
        """Why `model` must not replace an export, as its training failed (None: it may): it trained no epoch,
        its weights are not finite, or some epoch's training loss was not finite or more than `EXPLODED`
        times its phase's first."""
        if self.epochs_trained() == 0:
            return "the run trained 0 epochs"
        if not all(np.isfinite(np.asarray(w)).all() for w in model.get_weights()):
            return "its weights are not finite (the training diverged)"
        for hist in sorted(self.dir.glob("history*.csv")):
            losses = [(r["epoch"], r["loss"]) for r in read_history(hist) if r.get("loss") is not None]
            for epoch, loss in losses:
                if not np.isfinite(loss) or loss > EXPLODED * losses[0][1] > 0:
                    return (f"the training diverged: its loss at epoch {epoch + 1} ({hist.name}) was {loss:.4g}, "
                            f"after {losses[0][1]:.4g} at epoch {losses[0][0] + 1}")
        return None

    def _below_floor(self, results: dict, floor: dict | None, card: dict, phase: str) -> str | None:
        """Why the final model learned nothing (None: it beat the floor, or there is none to compare with).

        Its validation score of the monitored metric (`fit`'s `monitor` of `phase`, else of the phase
        fitted last; `val_<m>`: `results["val"][m]`) must be better than `floor["val"][m]`, or without
        it, for an accuracy, than 1 / the number of classes (`card["class_names"]`, two or more).
        """
        monitor, mode = self.monitors.get(phase) or next(reversed(self.monitors.values()), (None, None))
        if not (monitor or "").startswith("val_"):
            return None
        key = monitor[len("val_"):]
        score = results.get("val", {}).get(key)
        level = ((floor or {}).get("val") or {}).get(key)
        what = "the run's floor"
        classes = len(card.get("class_names") or [])
        if level is None and key.endswith("accuracy") and classes >= 2:
            level, what = 1 / classes, f"chance (1/{classes} classes)"
        if score is None or level is None:
            return None
        better = score < level if mode == "min" else score > level
        if not better or np.isclose(score, level, rtol=1e-6, atol=0):
            return f"its val {key} {score:.4f} is no better than {what}, {level:.4f}: it learned nothing"
        return None

    def final_model(self, model, final: str = "best", phase: str = "main"):
        """The model a run ends with: `phase`'s best checkpoint (`final="best"`, when there is one), else `model`."""
        if final not in FINAL_CHOICES:
            raise ValueError(f"final={final!r}: choose one of {', '.join(FINAL_CHOICES)}")
        return self.best_model(phase) if final == "best" and self.best_path(phase).exists() else model

    def sidecars(self) -> list[Path]:
        """Files beside model.keras that describe it (`model.<anything>`, e.g. model.classes.json)."""
        return sorted(p for p in self.dir.glob("model.*") if p.name != "model.keras" and ".tmp" not in p.name)

    def finish(self, model, datasets: dict | None = None, *, final: str = "best", phase: str = "main",
               report=None, metrics: dict | None = None, card: dict | None = None, floor: dict | None = None,
               samples=None):
        """Choose the final model, evaluate it once, write model.keras, metrics.json and curves; export it.

        Args:
            model: the trained model.
            datasets: `{"val": ds, "test": ds, ...}` evaluated (`model.evaluate`) with the final model.
            final: `"best"`: the best checkpoint of `phase` (by the metric `fit` monitored), or
                `model` when the phase has none; `"last"`: `model` as it is (its weights after
                the last epoch, or whatever the app loaded into it).
            phase: whose best checkpoint `final="best"` takes.
            report: `report(final_model, run_dir, results) -> dict` (or None): the app's own results
                of the final model (per-class tables, confusion matrices, ...), called once after
                model.keras is written and the datasets are evaluated (`results`). It may write
                files into `run_dir`; those named `model.<anything>` (e.g. model.classes.json,
                `hybridvision.common.predict.write_class_names(run_dir / "model.keras", ...)`) describe the model
                and are exported with it as `<export_name>.<anything>`.
            metrics: results known before (timings, a baseline's scores).
            The dicts of `report` and `metrics` are merged into metrics.json, per split key by key.
            card: what only the app knows about the model for its model card
                (`hybridvision.common.model_card`): `task`, `class_names` (output order), `target`,
                `covariates` (input order), `covariate_coding`, ... Run adds the app, the run's name,
                the training input size, the inputs, the preprocessing and how it was trained (settings,
                data, epochs, val/test metrics).
            floor: the scores a model must beat to be exported, in metrics.json's shape
                (`{"val": {"accuracy": 0.61}, ...}`; only "val" is read): the run's own chance level,
                majority-class rate or covariates-only model (e.g. attractiveness's covariate floor).
                The monitored metric of `phase` (`fit`'s `monitor`, `val_<m>`) of the final model
                must be better than `floor["val"][m]`; without it an accuracy must beat
                1 / the number of classes of `card["class_names"]`; other metrics are not checked.
            samples: a dataset (or an `(inputs, labels)` batch) whose first images TensorBoard gets with
                their Grad-CAM (`hybridvision.common.tracking`); default `datasets["val"]`, else
                `datasets["test"]`.

        Only a model that learned is exported: a run that trained no epoch, whose weights are not
        finite, whose training loss ever was not finite or exploded (> `EXPLODED` times its phase's
        first epoch's), or whose monitored validation score is no better than the floor (unless
        `config.export_anyway`, `--export-anyway`), replaces nothing. The run finishes as usual
        (a study or tuner goes on to its next run), its notes say why (`not_exported`) and hold
        `refused_export`, the one-line error with which a train command ends (exit 2): it calls
        `refuse_unexported(metrics)` last.

        The export is `saved_models/<app>/<export_name>.keras` (`saved_models/demo/<app>/...` for a run
        on the demo data), the final model wrapped by `attach_card`: images of any size, the card
        inside. `latest.keras` beside it becomes a copy of it. Replacing a file is always logged.
        Returns:
            (final_model, metrics dict); `metrics["notes"]["exported_model"]`
            is the exported file, or None when the model was not exported
            (then `notes["not_exported"]` says why).
        """
        chosen = self.final_model(model, final, phase)
        atomic_save_model(chosen, self.dir / "model.keras")
        results = self.evaluate(chosen, datasets or {})
        extra = [metrics or {}]
        if report is not None:
            extra.append(report(chosen, self.dir, results) or {})
        for more in extra:
            for key, value in more.items():
                if isinstance(value, dict) and isinstance(results.get(key), dict):
                    results[key].update(value)
                else:
                    results[key] = value
        if self.notes:
            results.setdefault("notes", {}).update(self.notes)
        for hist in sorted(self.dir.glob("history*.csv")):
            with writing(str(hist.with_suffix(".png"))):
                plot_history(hist, out_png=self.dir / hist.name.replace("history", "curves").replace(".csv", ".png"))
        export = self._export_dir() / f"{self.export_name}.keras"
        refusal = None
        if self.export:
            refusal = self._export_refusal(chosen)
            weak = None if refusal else self._below_floor(results, floor, card or {}, phase)
            if weak and getattr(self.config, "export_anyway", False):
                log.warning("exported anyway (--export-anyway): %s", weak)
                results.setdefault("notes", {})["exported_anyway"] = weak
            elif weak:
                refusal = f"{weak} (--export-anyway exports it all the same)"
        notes = results.setdefault("notes", {})
        if refusal is not None:
            log.info("not exported to %s: %s", export, refusal)  # a train command says it (refuse_unexported)
            notes.update(exported_model=None, not_exported=refusal,
                         refused_export=f"not exported to {export}: {refusal}; nothing there was replaced, the run "
                                        f"is kept in {self.dir}")
        elif self.export:
            self._export(chosen, export, self._card(results, card or {}))
            notes["exported_model"] = str(export)
        else:
            notes.update(exported_model=None, not_exported=f"export=False: the model stays in {self.dir / 'model.keras'}")
        if samples is None:
            samples = next((d for d in ((datasets or {}).get(s) for s in ("val", "test")) if d is not None), None)
        class_names = (card or {}).get("class_names") or results["notes"].get("class_names")
        tracking.log_final(self, results, chosen, samples, class_names)
        # metrics.json last: its presence marks the run finished.
        atomic_write_text(self.dir / "metrics.json", json.dumps(results, indent=2, sort_keys=True))
        log.info("metrics: %s", json.dumps({k: v for k, v in results.items() if k != "notes"}, sort_keys=True))
        if notes.get("exported_model"):
            log.info("model saved to %s and exported to %s", self.dir / "model.keras", export)
        self.close()
        return chosen, results

    def _export_dir(self) -> Path:
        if self.synthetic:
            return self.saved_models_dir / DEMO_EXPORTS / self.app
        return self.saved_models_dir / self.app

    def _card(self, results: dict, app_card: dict) -> dict:
        """The model card: what the app knows (`app_card`) and what the run knows."""
        settings = self.config.to_dict() if hasattr(self.config, "to_dict") else {}
        data_dir = getattr(self.config, "data_dir", None)
        metrics = {split: {k: v for k, v in values.items() if isinstance(v, (int, float))}
                   for split, values in results.items() if split in ("val", "test") and isinstance(values, dict)}
        return {
            "app": self.app,
            "run": self.export_name,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "keras_version": keras.__version__,
            "preprocessing": PREPROCESSING,
            **app_card,
            "training": {
                "data": "the embedded SYNTHETIC demo data (--data-dir omitted)" if self.synthetic else str(data_dir),
                "data_dir": data_dir,
                "run_dir": str(self.dir),
                "epochs_trained": self.epochs_trained(),
                "settings": settings,
                "metrics": {split: values for split, values in metrics.items() if values},
            },
        }

    def _export(self, chosen, export: Path, card: dict) -> None:
        """Write the export (its sidecars first: an export is never without them), then latest.keras."""
        make_dir(export.parent)
        sidecars = {sidecar.name[len("model"):]: sidecar for sidecar in self.sidecars()}  # ".classes.json": path
        for suffix, sidecar in sidecars.items():
            atomic_copy(sidecar, export.with_name(self.export_name + suffix))
        if export.exists():
            log.warning("replacing %s: an earlier export had the same name (run %s)", export, self.export_name)
        atomic_save_model(attach_card(chosen, card), export)
        latest = export.with_name(f"{LATEST}.keras")
        if latest == export:
            return
        for old in export.parent.glob(f"{LATEST}.*"):
            if old != latest and old.name[len(LATEST):] not in sidecars and ".tmp" not in old.name:
                log.info("removing %s: the sidecar of an earlier %s, which %s lacks", old, latest.name, export.name)
                old.unlink()
        for suffix, sidecar in sidecars.items():
            atomic_copy(sidecar, latest.with_name(LATEST + suffix))
        log.info("%s %s a copy of %s", latest, "now is" if latest.exists() else "is", export)
        atomic_copy(export, latest)

    def note(self, key: str, value) -> None:
        """Record a fact about the run (e.g. 'val split made from train rows') in metrics.json."""
        self.notes[key] = value
        log.info("note: %s = %s", key, value)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        """Stop logging into run.log and release the run directory's lock."""
        handler = getattr(self, "_log_handler", None)
        if handler is not None and handler in log.handlers:
            log.removeHandler(handler)
            handler.close()
        self._release()
        if getattr(self, "_scratch", None) is not None:  # another process's private copy of the run directory
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
