"""One training harness for every app.

`Run` owns a run directory and everything written into it:

    runs/<app>/<timestamp>/
        config.yaml          the resolved config (what `--config` reads back)
        run.log              the log, including skipped images
        run.lock             held (flock) by the process training in the folder; holds its PID
        history.csv          one row per finished epoch (per phase: history_<phase>.csv)
        curves.png           loss and metric curves
        best.keras           best checkpoint by the monitored validation metric
        best.json            {"score", "epoch", "monitor", "mode"} of best.keras
        model.keras          the model to use: the best checkpoint, or the last weights (`finish(final=...)`)
        model.<x>            files the app writes to describe it (model.classes.json), exported with it
        metrics.json         {"val": {...}, "test": {...}} with every compiled metric, plus the app's report
        tensorboard/         TensorBoard logs
        backup/              training state while a run is unfinished

Crash safety. At the end of every epoch its results become durable in one
order, each step an atomic rename of a completely written file, so a kill -9
at any instant leaves a directory that the next invocation can trust:

    1. backup/epoch-<n>.weights.h5   the weights and optimizer state after epoch n
    2. history.csv                   with the row of epoch n
    3. best.keras, then best.json    when the monitored metric improved
    4. backup/state.json             the epoch counter: the commit point

A kill before step 4 leaves the counter at the previous epoch. On resume
`Run.fit` looks at what the dead process left: when every step up to 4 is
there (the row, the weights, a best.json that agrees with history.csv), the
epoch is committed; otherwise its partial results are dropped and it runs
again. Leftovers of interrupted writes (`*.tmp*` files) are removed, and a
directory that cannot be repaired (rows missing, the backup weights gone) is
refused with one line. Resuming is logged (console and run.log) as
"resuming <dir> from epoch N of M".

Running the same command again after a crash resumes from the last finished
epoch, keeps the history rows and the best-so-far score (read from best.json,
the score of the model in best.keras), and then carries on. Apps with several
phases (fine-tuning after a frozen phase, a curriculum) call `Run.fit` once
per phase; finished phases are skipped on resume.

Concurrency. A run directory is locked (`fcntl.flock` on run.lock) for the
life of the `Run`; a second process given the same `--run-dir` is refused with
the holder's PID, and the automatic resume (no `--run-dir`) skips folders in
use. Exports to `saved_models/` are atomic (a temporary file renamed), and a
run that trained 0 epochs or whose weights are not finite exports nothing.

Typical use in an app:

    run = Run("digit_pairs", cfg)
    run.fit(model, train_ds, val_ds, monitor="val_accuracy")
    run.finish(model, {"val": val_ds, "test": test_ds}, final="best", report=per_class_tables)

`finish` decides how every run ends: it picks the final model (the best
checkpoint of a phase, else the model given; or the model as it is), saves and
evaluates it once, lets the app's `report` hook add its own results of that
model, exports it, and writes metrics.json last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from hybridvision.common import distribute
from hybridvision.common.cli import UserError, environment_error
from hybridvision.common.config import save_config, validate
from hybridvision.common.history import read_history  # noqa: F401 (re-exported: callers import it from here)
from hybridvision.common.plots import plot_history

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS: no locking
    fcntl = None

log = logging.getLogger("hybridvision")

# How a multi-process run is launched (flags or the scheduler's variables, where process 0
# is, which process this is) may change when it restarts.
_IGNORED_FOR_RESUME = ("run_dir", "quiet", "coordinator", "num_processes", "process_id")
# Test hook: `HYBRIDVISION_KILL_AT=<point>[@<epoch>]` kills this process with
# SIGKILL at that commit point (of that 0-based epoch); see `_commit_point`.
KILL_ENV = "HYBRIDVISION_KILL_AT"
COMMIT_POINTS = (
    "mid_backup",  # backup/epoch-<n>.tmp.weights.h5 half written
    "backup",  # backup/epoch-<n>.weights.h5 in place
    "history",  # history.csv has the row
    "mid_checkpoint",  # best.tmp.keras half written
    "best_tmp",  # best.tmp.keras and best.json.tmp complete, neither renamed
    "best_keras",  # best.keras renamed, best.json not yet
    "best",  # best.json renamed
    "counter",  # backup/state.json says n: the epoch is committed
)
# What `Run.finish` may end a run with: the best checkpoint of a phase, or the model as given.
FINAL_CHOICES = ("best", "last")


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is now, not to the stream it was created with.

    A handler that kept the stream of its creation would write into a closed
    one after a redirection ended (pytest's capture, a notebook cell).
    """

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property ignores it
        pass


def setup_logging(quiet: bool = False) -> None:
    """Console logging for the `hybridvision` logger (INFO, or WARNING when quiet)."""
    log.setLevel(logging.INFO)
    if not any(getattr(h, "_hybridvision_console", False) for h in log.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._hybridvision_console = True
        log.addHandler(handler)
    for h in log.handlers:
        if getattr(h, "_hybridvision_console", False):
            h.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


# ---- crash-safe file writing ------------------------------------------------
def _commit_point(name: str, epoch: int | None = None, truncate: Path | None = None) -> None:
    """Kill -9 this process here when `HYBRIDVISION_KILL_AT` names this point (tests only).

    `truncate`: a file to cut to half its size first (a write interrupted midway).
    """
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    point, _, at = spec.partition("@")
    if point != name or (at and (epoch is None or int(at) != epoch)):
        return
    if truncate is not None and truncate.exists():
        with open(truncate, "r+b") as f:
            f.truncate(truncate.stat().st_size // 2)
    _die(name)


def _die(point: str) -> None:
    """SIGKILL this process (tests running in-process replace this with a raise)."""
    os.kill(os.getpid(), signal.SIGKILL)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _writing(what: str, *leftovers: Path):
    """Turn out-of-space / read-only errors while writing `what` into one line; remove `leftovers`."""
    try:
        yield
    except Exception as err:
        for path in leftovers:
            with contextlib.suppress(OSError):
                path.unlink()
        if environment_error(err):
            reason = getattr(err, "strerror", None) or " ".join(str(err).split())[:200]
            raise UserError(f"cannot write {what}: {reason}; free some space or make it writable "
                            "(a run resumes from its last finished epoch)") from err
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with _writing(str(path), tmp):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _model_bytes(model) -> int:
    """About the bytes a checkpoint of `model` takes (weights + optimizer state)."""
    variables = list(model.weights)
    if getattr(model, "optimizer", None) is not None and model.optimizer.built:
        variables += list(model.optimizer.variables)
    return int(sum(np.prod(v.shape) * _itemsize(v.dtype) for v in variables))


def _itemsize(dtype) -> int:
    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # bfloat16 and other dtypes NumPy does not know
        return 4


def _ensure_space(folder: Path, needed: int, what: str) -> None:
    """Refuse (one line) before a write that would not fit: h5py can crash the process on a full disk."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    needed = int(needed * 1.2) + (1 << 20)
    if free < needed:
        raise UserError(f"not enough disk space in {folder} for {what}: about {needed / 1e6:.1f} MB needed, "
                        f"{free / 1e6:.1f} MB free; free some space (the run resumes from its last finished epoch)")


def _save_model_file(model, path: Path, tmp: Path, epoch: int | None = None) -> None:
    """`model.save` into `tmp`, flushed to disk (the caller renames it)."""
    _ensure_space(path.parent, _model_bytes(model), path.name)
    with _writing(str(path), tmp):
        model.save(tmp)
        _commit_point("mid_checkpoint", epoch, truncate=tmp)
        _fsync_file(tmp)


def _build_optimizer(model) -> None:
    """Build a compiled model's unused optimizer, so its saved state matches what loading builds.

    (A model whose parts were trained separately, e.g. a head on cached features, has an
    optimizer that never ran; saved that way, loading warns about skipped optimizer variables.)
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        with contextlib.suppress(Exception):
            optimizer.build(model.trainable_variables)


def _atomic_save_model(model, path: Path) -> None:
    # A kill during model.save must never leave a half-written model behind.
    _build_optimizer(model)
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    _save_model_file(model, path, tmp)
    os.replace(tmp, path)


def _atomic_save_weights(model, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name.replace(".weights.h5", ".tmp.weights.h5"))
    _ensure_space(path.parent, _model_bytes(model), path.name)
    with _writing(str(path), tmp):
        model.save_weights(tmp, overwrite=True)
        _fsync_file(tmp)
        os.replace(tmp, path)


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    _ensure_space(dst.parent, Path(src).stat().st_size, str(dst))
    with _writing(str(dst), tmp):
        shutil.copyfile(src, tmp)
        _fsync_file(tmp)
        os.replace(tmp, dst)
    _fsync_dir(dst.parent)


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is unreadable ({' '.join(str(err).split())}); the {what} is damaged: delete the "
                        "run directory or pass a new --run-dir") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object; delete the run directory or pass a new --run-dir")
    return data


# ---- history ------------------------------------------------------------------
def _write_history(path: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: r["epoch"])
    keys = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch"})
    lines = [",".join(keys)]
    for r in rows:
        cells = [str(int(r["epoch"]))]
        cells += ["" if r.get(k) is None else repr(float(r[k])) for k in keys[1:]]
        lines.append(",".join(cells))
    _atomic_write_text(path, "\n".join(lines) + "\n")


def _better(value, best, mode: str) -> bool:
    return best is None or (value < best if mode == "min" else value > best)


def _best_of(rows: list[dict], monitor: str, mode: str):
    """(score, epoch) the checkpoint callback keeps for these rows, or None."""
    best = None
    for row in sorted(rows, key=lambda r: r["epoch"]):
        value = row.get(monitor)
        if value is None or math.isnan(value):
            continue
        if _better(value, None if best is None else best[0], mode):
            best = (value, row["epoch"])
    return best


# ---- one phase's files and state --------------------------------------------
@dataclasses.dataclass
class _PhaseFiles:
    dir: Path
    suffix: str

    @property
    def history(self) -> Path:
        return self.dir / f"history{self.suffix}.csv"

    @property
    def best(self) -> Path:
        return self.dir / f"best{self.suffix}.keras"

    @property
    def best_tmp(self) -> Path:
        return self.dir / f"best{self.suffix}.tmp.keras"

    @property
    def best_json(self) -> Path:
        return self.dir / f"best{self.suffix}.json"

    @property
    def best_json_tmp(self) -> Path:
        return self.dir / f"best{self.suffix}.json.tmp"

    @property
    def backup(self) -> Path:
        return self.dir / f"backup{self.suffix}"

    @property
    def state(self) -> Path:
        return self.backup / "state.json"

    def weights(self, epochs_done: int) -> Path:
        return self.backup / f"epoch-{epochs_done}.weights.h5"

    @property
    def last_weights(self) -> Path:
        return self.dir / f"last{self.suffix}.weights.h5"

    @property
    def done(self) -> Path:
        return self.dir / f".done{self.suffix}"


@dataclasses.dataclass
class _PhaseState:
    epoch: int = 0  # epochs committed: training starts at this 0-based index
    weights: Path | None = None  # their backup, to load before training
    rows: list = dataclasses.field(default_factory=list)  # history rows of the committed epochs
    best: tuple | None = None  # (score, epoch) of best.keras


class _EpochCommit(keras.callbacks.Callback):
    """Restores a phase's state on train begin; makes each epoch durable in the documented order."""

    def __init__(self, files: _PhaseFiles, state: _PhaseState, monitor: str, mode: str):
        super().__init__()
        self.files, self.state = files, state
        self.monitor, self.mode = monitor, mode
        self.rows = {r["epoch"]: r for r in state.rows}
        self.best = state.best

    def on_train_begin(self, logs=None):
        if self.state.weights is not None:
            _load_backup(self.model, self.state.weights)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        value = logs.get(self.monitor)
        if value is None:
            raise _MonitorMissing(
                f"monitored metric '{self.monitor}' is not in the epoch logs "
                f"({', '.join(sorted(logs))}); pass one of these as monitor"
            )
        files, n = self.files, epoch + 1
        files.backup.mkdir(parents=True, exist_ok=True)
        # 1. The state after this epoch, under a name of its own (not yet the one to resume from).
        weights = files.weights(n)
        tmp = weights.with_name(f"epoch-{n}.tmp.weights.h5")
        _ensure_space(files.backup, _model_bytes(self.model), "the epoch's backup")
        with _writing(str(weights), tmp):
            self.model.save_weights(tmp, overwrite=True)
            _commit_point("mid_backup", epoch, truncate=tmp)
            _fsync_file(tmp)
            os.replace(tmp, weights)
        _commit_point("backup", epoch)
        # 2. Its history row.
        row = {"epoch": epoch, **{k: float(v) for k, v in logs.items()}}
        self.rows[epoch] = row
        _write_history(files.history, list(self.rows.values()))
        _commit_point("history", epoch)
        # 3. The best checkpoint and its score, when it improved.
        value = float(value)
        if not math.isnan(value) and _better(value, None if self.best is None else self.best[0], self.mode):
            log.info("epoch %d: %s improved to %.4f, saving %s", n, self.monitor, value, files.best.name)
            _save_model_file(self.model, files.best, files.best_tmp, epoch)
            record = {"score": value, "epoch": epoch, "monitor": self.monitor, "mode": self.mode}
            with _writing(str(files.best_json), files.best_tmp, files.best_json_tmp):
                with open(files.best_json_tmp, "w") as f:
                    json.dump(record, f)
                    f.flush()
                    os.fsync(f.fileno())
            _commit_point("best_tmp", epoch)
            os.replace(files.best_tmp, files.best)
            _commit_point("best_keras", epoch)
            os.replace(files.best_json_tmp, files.best_json)
            _commit_point("best", epoch)
            self.best = (value, epoch)
        # 4. The counter: from now on a resume starts after this epoch.
        _atomic_write_text(files.state, json.dumps({"epoch": n, "weights": weights.name}))
        _fsync_dir(files.backup)
        _commit_point("counter", epoch)
        for old in files.backup.glob("epoch-*.weights.h5"):
            if old != weights:
                old.unlink(missing_ok=True)


class _MonitorMissing(UserError, KeyError):
    """The monitored metric is not logged (a bad --monitor): one line, and a KeyError as before."""

    __str__ = ValueError.__str__


def _load_backup(model, weights: Path) -> None:
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(weights)


def _recover(files: _PhaseFiles, monitor: str, mode: str) -> _PhaseState:
    """What a previous invocation left of this phase: repaired, or refused with one line.

    See the module docstring for the order of an epoch's writes this relies on.
    """
    notes = []
    # An interrupted best checkpoint: before its rename it is dropped; after it,
    # best.json.tmp (complete: it is written before best.keras is renamed) is
    # renamed too, finishing that commit.
    if files.best_tmp.exists():
        files.best_tmp.unlink()
        files.best_json_tmp.unlink(missing_ok=True)
        notes.append(f"removed {files.best_tmp.name}, a checkpoint interrupted while being written")
    elif files.best_json_tmp.exists():
        try:
            json.loads(files.best_json_tmp.read_text())
            os.replace(files.best_json_tmp, files.best_json)
            notes.append(f"completed the write of {files.best_json.name} interrupted after {files.best.name}")
        except (OSError, ValueError):
            files.best_json_tmp.unlink(missing_ok=True)
    # Leftovers of other interrupted writes.
    leftovers = [files.history.with_name(files.history.name + ".tmp"), files.state.with_name("state.json.tmp"),
                 files.last_weights.with_name(files.last_weights.name.replace(".weights.h5", ".tmp.weights.h5"))]
    if files.backup.is_dir():
        leftovers += list(files.backup.glob("*.tmp.weights.h5")) + list(files.backup.glob("*.tmp"))
    for path in leftovers:
        if path.exists():
            path.unlink()
            notes.append(f"removed {path.relative_to(files.dir)}, left by an interrupted write")

    rows = read_history(files.history)
    epoch, weights = 0, None
    if files.state.exists():
        state = _read_json(files.state, "backup")
        epoch, weights = int(state.get("epoch", 0)), files.backup / str(state.get("weights", ""))
    elif (files.backup / "training_metadata.json").exists():  # a backup of an earlier version of this harness
        epoch = int(_read_json(files.backup / "training_metadata.json", "backup").get("epoch", 0))
        weights = files.backup / "latest.weights.h5"
    if epoch and not weights.is_file():
        raise UserError(f"run directory {files.dir} is damaged: {weights.relative_to(files.dir)} (the state after "
                        f"epoch {epoch}) is missing; delete the folder or pass a new --run-dir")
    best = None
    if files.best_json.exists():
        record = _read_json(files.best_json, "best checkpoint's score")
        try:
            best = (float(record["score"]), int(record["epoch"]))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{files.best_json} lacks score/epoch; delete the run directory or pass a new "
                            "--run-dir") from None
        if not files.best.exists():
            raise UserError(f"run directory {files.dir} is damaged: {files.best_json.name} is there but "
                            f"{files.best.name} is missing; delete the folder or pass a new --run-dir")

    # The epoch after the counter: committed when all its steps are durable.
    pending = files.weights(epoch + 1)
    pending_row = [r for r in rows if r["epoch"] == epoch]
    if pending.is_file() and pending_row:
        expected = _best_of([r for r in rows if r["epoch"] <= epoch], monitor, mode)
        if expected is None or (best is not None and expected == best):
            _atomic_write_text(files.state, json.dumps({"epoch": epoch + 1, "weights": pending.name}))
            notes.append(f"epoch {epoch + 1} had finished but its commit was interrupted; committed it")
            epoch, weights = epoch + 1, pending
    if files.backup.is_dir():  # the partial results of an uncommitted epoch are dropped: it runs again
        for path in files.backup.glob("epoch-*.weights.h5"):
            if path != weights:
                path.unlink()
    if best is not None and best[1] >= epoch:
        # best.keras from an epoch that was not committed (only from damaged or foreign folders).
        notes.append(f"dropped {files.best.name} of uncommitted epoch {best[1] + 1}")
        files.best.unlink()
        files.best_json.unlink()
        best = None
    stale = [r for r in rows if r["epoch"] >= epoch]
    if stale:
        rows = [r for r in rows if r["epoch"] < epoch]
        _write_history(files.history, rows)
        notes.append(f"dropped the history row(s) of uncommitted epoch(s) "
                     f"{', '.join(str(r['epoch'] + 1) for r in stale)}")
    missing = sorted(set(range(epoch)) - {r["epoch"] for r in rows})
    if missing:
        raise UserError(f"run directory {files.dir} is damaged: {epoch} epoch(s) finished but {files.history.name} "
                        f"lacks the row(s) of epoch(s) {', '.join(str(m + 1) for m in missing)}; delete the folder "
                        "or pass a new --run-dir")
    if best is None and files.best.exists():
        if epoch == 0:
            files.best.unlink()
        else:  # a run directory of an earlier version of this harness: no best.json yet
            best = _best_of(rows, monitor, mode)
            if best is not None:
                _atomic_write_text(files.best_json, json.dumps(
                    {"score": best[0], "epoch": best[1], "monitor": monitor, "mode": mode}))
                notes.append(f"wrote {files.best_json.name} from {files.history.name} (a run of an earlier version)")
    for note in notes:
        log.warning("%s: %s", files.dir, note)
    return _PhaseState(epoch=epoch, weights=weights if epoch else None, rows=rows, best=best)


# ---- run directories and their locks ----------------------------------------
class _DirLock:
    """An exclusive `flock` on `<dir>/run.lock` for the life of the process (released on close or exit)."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / "run.lock"
        self.file = None

    def acquire(self) -> bool:
        if fcntl is None:
            return True
        with _writing(f"run directory {self.path.parent}"):
            f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        with _writing(f"run directory {self.path.parent}"):
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
        self.file = f
        return True

    def holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            pid = ""
        return f"pid {pid}" if pid else "a process that has not written its pid yet"

    def release(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError, ValueError):
                fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
            self.file.close()
            self.file = None


def _locked(directory: Path) -> bool:
    """Whether another open `Run` holds `directory` (probes without keeping the lock)."""
    if fcntl is None or not (Path(directory) / "run.lock").exists():
        return False
    probe = _DirLock(directory)
    try:
        if probe.acquire():
            probe.release()
            return False
    except UserError:
        return False
    return True


def _comparable(config) -> dict:
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v for k, v in data.items() if k not in _IGNORED_FOR_RESUME}


def other_settings(folder: Path, config, ignore=()) -> list[str]:
    """How `config` differs from the settings a run in `folder` was started with (its config.json).

    One `"<field>: <value> there, <value> now"` per differing field; empty when they agree or the
    folder holds no readable config.json. How a run is launched (`run_dir`, `quiet`, the
    multi-process flags) and the fields in `ignore` are not compared; a field that the saved
    config lacks (added to the app since) counts as its default then.
    """
    saved_file = Path(folder) / "config.json"
    try:
        saved = json.loads(saved_file.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(saved, dict):
        return []
    skip = set(_IGNORED_FOR_RESUME) | set(ignore)
    now = {k: v for k, v in json.loads(json.dumps(_comparable(config))).items() if k not in skip}
    defaults = {}
    if dataclasses.is_dataclass(config):
        for f in dataclasses.fields(config):
            if f.default is not dataclasses.MISSING:
                defaults[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                defaults[f.name] = f.default_factory()
        defaults = json.loads(json.dumps(defaults))
    saved = {k: v for k, v in saved.items() if k not in skip}
    return [f"{k}: {saved.get(k, defaults.get(k))!r} there, {now.get(k)!r} now" for k in sorted(set(saved) | set(now))
            if saved.get(k, defaults.get(k)) != now.get(k)]


def shorten(diff: list[str], most: int = 3) -> str:
    """The first `most` entries of an `other_settings` list, for a one-line error."""
    return "; ".join(diff[:most]) + ("; ..." if len(diff) > most else "")


def _unfinished_candidates(app_root: Path, config):
    if not app_root.is_dir():
        return
    for candidate in sorted(app_root.iterdir(), reverse=True):
        cfg_file = candidate / "config.json"
        if not cfg_file.exists() or (candidate / "metrics.json").exists():
            continue
        try:
            saved = json.loads(cfg_file.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict) and {k: v for k, v in saved.items() if k not in _IGNORED_FOR_RESUME} == _comparable(config):
            yield candidate


def _new_run_dir(app_root: Path) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = app_root / stamp, 1
    while path.exists():
        n += 1
        path = app_root / f"{stamp}-{n}"
    return path


def resolve_run_dir(app: str, config, root: str | Path = "runs") -> Path:
    """The run directory: `config.run_dir`, else an unfinished run of the same config not in use, else a new one."""
    if getattr(config, "run_dir", None):
        return Path(config.run_dir)
    app_root = Path(root) / app
    for candidate in _unfinished_candidates(app_root, config):
        if not _locked(candidate):
            log.info("resuming the unfinished run in %s", candidate)
            return candidate
        log.info("not resuming %s: in use by %s", candidate, _DirLock(candidate).holder())
    return _new_run_dir(app_root)


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"run directory {path} exists and is not a folder; pass another --run-dir") from None
    except OSError as err:
        raise UserError(f"cannot create run directory {path}: {err.strerror or err}; pass a writable --run-dir") \
            from None


def _check_writable(path: Path) -> None:
    probe = path / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UserError(f"run directory {path} is not writable ({err.strerror or err}); pass a writable --run-dir") \
            from None


class Run:
    """A training run: its directory, its phases, its metrics and its exported model.

    Args:
        app: the app's name (`runs/<app>/...`, `saved_models/<app>/...`).
        config: the app's config dataclass (see `hybridvision.common.config`).
        export_name: file name (without `.keras`) under `saved_models/<app>/`;
            default: the run directory's name.
        saved_models_dir: where exported models go (default `saved_models`).
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
        self.is_chief = distribute.is_chief()
        self.dir = self._claim_dir(app, config) if self.is_chief else None
        if distribute.process_count() > 1:
            self.dir = self._follow_chief(self.dir)
            if not self.is_chief:
                saved_models_dir = self._scratch / "saved_models"
        try:
            self._check_same_settings(config)
            self.export_name = export_name or self.dir.name
            self.saved_models_dir = Path(saved_models_dir)
            with _writing(f"run directory {self.dir}"):
                self._log_handler = logging.FileHandler(self.dir / "run.log")
            self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(self._log_handler)
            with _writing(str(self.dir / "config.yaml")):
                save_config(config, self.dir / "config.yaml")
            _atomic_write_text(self.dir / "config.json", json.dumps(config.to_dict(), indent=2, sort_keys=True))
        except BaseException:
            self._release()
            raise
        self.notes: dict = {}
        keras.utils.set_random_seed(int(getattr(config, "seed", 0)))
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

    def _claim_dir(self, app: str, config) -> Path:
        """The run directory, locked for this process."""
        if getattr(config, "run_dir", None):
            path = Path(config.run_dir)
            if (path / "metrics.json").exists():
                raise FileExistsError(
                    f"run directory {path} already holds a finished run (metrics.json); "
                    "pass a new --run-dir or delete that folder"
                )
            _make_dir(path)
            lock = _DirLock(path)
            if not lock.acquire():
                raise UserError(f"run directory {path} is in use by another training ({lock.holder()}); wait for it "
                                "to finish or pass another --run-dir")
            self._lock = lock
            _check_writable(path)
            return path
        app_root = Path("runs") / app
        for candidate in _unfinished_candidates(app_root, config):
            lock = _DirLock(candidate)
            if lock.acquire():
                if (candidate / "metrics.json").exists():  # finished while we looked
                    lock.release()
                    continue
                self._lock = lock
                log.info("resuming the unfinished run in %s", candidate)
                return candidate
            log.info("not resuming %s: in use by %s", candidate, lock.holder())
        while True:
            path = _new_run_dir(app_root)
            _make_dir(path.parent)
            try:
                path.mkdir()
            except FileExistsError:  # another process took that name a moment ago
                continue
            except OSError as err:
                raise UserError(f"cannot create run directory {path}: {err.strerror or err}; "
                                "pass a writable --run-dir") from None
            lock = _DirLock(path)
            if lock.acquire():
                self._lock = lock
                return path

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

    def _files(self, phase: str) -> _PhaseFiles:
        return _PhaseFiles(self.dir, self._suffix(phase))

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
        files = self._files(phase)
        if self.phase_done(phase):
            log.info("phase '%s' already finished in %s; loading its weights", phase, self.dir)
            _load_backup(model, files.last_weights)
            return read_history(files.history)
        if not model.built:
            raise ValueError("build the model (call it or give it an Input) before Run.fit")
        state = _recover(files, monitor, mode)
        if state.epoch:
            log.warning("resuming %s from epoch %d of %d%s (%d finished before; best %s so far: %s)",
                        self.dir, state.epoch + 1, epochs, "" if phase == "main" else f" of phase '{phase}'",
                        state.epoch, monitor, "none" if state.best is None else f"{state.best[0]:.4f} at epoch "
                        f"{state.best[1] + 1}")
        log.info("training phase '%s' for %d epochs, monitoring %s (%s)", phase, epochs, monitor, mode)
        if state.epoch >= epochs:
            if state.weights is not None:
                _load_backup(model, state.weights)
        else:
            # Datasets pass through; an (x, y) tuple of arrays is unpacked.
            x, y = train_data if isinstance(train_data, tuple) else (train_data, None)
            if y is None:
                # A dataset or generator orders its own batches (Keras warns about shuffle=True otherwise).
                fit_kwargs.setdefault("shuffle", False)
            distribute.jit_steps_under_data_parallel(model)
            model.fit(
                x,
                y,
                validation_data=val_data,
                epochs=epochs,
                initial_epoch=state.epoch,
                callbacks=[
                    # First: the epoch's results are durable before any other callback runs.
                    _EpochCommit(files, state, monitor, mode),
                    keras.callbacks.TensorBoard(str(self.dir / "tensorboard" / phase)),
                    *(callbacks or []),
                ],
                verbose=0 if self.quiet else "auto",
                **fit_kwargs,
            )
        _atomic_save_weights(model, files.last_weights)
        _atomic_write_text(files.done, "done\n")
        # Only now that the phase is marked done may its backup go: a kill before
        # this line resumes from the backup, after it skips the phase.
        shutil.rmtree(files.backup, ignore_errors=True)
        return read_history(files.history)

    # ---- results -----------------------------------------------------------
    def best_model(self, phase: str = "main"):
        """The best checkpoint of `phase`, loaded (no custom_objects needed)."""
        return keras.models.load_model(self.best_path(phase))

    def restore_best(self, model, phase: str = "main") -> bool:
        """Load the best checkpoint's weights of `phase` into `model` (the model that phase trained).

        Returns False, leaving `model` as it is, when the phase has no checkpoint
        (no epoch with a finite monitored metric).
        """
        if not self.best_path(phase).exists():
            return False
        model.set_weights(keras.models.load_model(self.best_path(phase), compile=False).get_weights())
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
            values = model.evaluate(*args, return_dict=True, verbose=0)
            results[split] = {k: float(v) for k, v in values.items()}
        return results

    def epochs_trained(self) -> int:
        """Epochs trained in this run directory, all phases together (history rows)."""
        return sum(len(read_history(p)) for p in self.dir.glob("history*.csv"))

    def _export_refusal(self, model) -> str | None:
        """Why `model` must not replace an export (None: it may)."""
        if self.epochs_trained() == 0:
            return "the run trained 0 epochs"
        if not all(np.isfinite(np.asarray(w)).all() for w in model.get_weights()):
            return "its weights are not finite (the training diverged)"
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
               report=None, metrics: dict | None = None):
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
        Returns:
            (final_model, metrics dict); `metrics["notes"]["exported_model"]`
            is the exported file, or None when the model was not exported
            (then `notes["not_exported"]` says why).
        """
        chosen = self.final_model(model, final, phase)
        _atomic_save_model(chosen, self.dir / "model.keras")
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
            with _writing(str(hist.with_suffix(".png"))):
                plot_history(hist, out_png=self.dir / hist.name.replace("history", "curves").replace(".csv", ".png"))
        export = self.saved_models_dir / self.app / f"{self.export_name}.keras"
        if self.export:
            refusal = self._export_refusal(chosen)
        else:
            refusal = f"export=False: the model stays in {self.dir / 'model.keras'}"
        if refusal is None:
            _make_dir(export.parent)
            # The files describing the model first: an export is never without them.
            for sidecar in self.sidecars():
                _atomic_copy(sidecar, export.with_name(self.export_name + sidecar.name[len("model"):]))
            _atomic_copy(self.dir / "model.keras", export)
            results.setdefault("notes", {})["exported_model"] = str(export)
        else:
            if self.export:
                log.warning("not exported to %s: %s", export, refusal)
            results.setdefault("notes", {}).update(exported_model=None, not_exported=refusal)
        # metrics.json last: its presence marks the run finished.
        _atomic_write_text(self.dir / "metrics.json", json.dumps(results, indent=2, sort_keys=True))
        log.info("metrics: %s", json.dumps({k: v for k, v in results.items() if k != "notes"}, sort_keys=True))
        if refusal is None:
            log.info("model saved to %s and exported to %s", self.dir / "model.keras", export)
        self.close()
        return chosen, results

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
