"""One epoch made durable (`EpochCommit`), and what a killed process left of a phase repaired (`recover`).

Both follow the order of writes in the package docstring (`hybridvision.common.run`):
the epoch's backup weights, its history row, the best checkpoint and its score,
then the counter in backup/state.json, the commit point. `PhaseFiles` names the
files of one phase (`history_<phase>.csv`, `best_<phase>.keras`, ...).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import zipfile
from pathlib import Path

import keras

from hybridvision.common.cli import UserError
from hybridvision.common.history import read_history
from hybridvision.common.run.atomic import (
    atomic_write_text,
    ensure_space,
    fsync_dir,
    fsync_file,
    model_bytes,
    save_model_file,
    writing,
)
from hybridvision.common.run.commit_points import commit_point

log = logging.getLogger("hybridvision")


def damaged(path: Path, what: str, err: BaseException | str) -> UserError:
    """The one-line refusal of a file of the run directory that cannot be read: its path, why, the fix."""
    reason = " ".join(str(err).split())[:200] or type(err).__name__
    return UserError(f"{path} is unreadable ({reason}); the {what} is damaged: delete the run directory or pass a "
                     "new --run-dir")


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise damaged(path, what, err) from None
    if not isinstance(data, dict):
        raise damaged(path, what, "not a JSON object")
    return data


def check_checkpoint(path: Path) -> None:
    """Refuse (one line) a .keras file that is not a whole Keras archive (cut short, overwritten), before Keras's
    own `File not found` traceback would."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise damaged(path, "best checkpoint", err) from None
    if broken is not None or not {"config.json", "model.weights.h5"} <= names:
        raise damaged(path, "best checkpoint", f"{broken or 'config.json or model.weights.h5'} is damaged or missing")


def load_checkpoint(path: Path, compile: bool = True):
    """`keras.models.load_model(path)`, or the one-line refusal of a damaged file."""
    check_checkpoint(path)
    try:
        return keras.models.load_model(path, compile=compile)
    except (OSError, ValueError) as err:
        raise damaged(path, "best checkpoint", err) from None


# ---- history ------------------------------------------------------------------
def _write_history(path: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda r: r["epoch"])
    keys = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch"})
    lines = [",".join(keys)]
    for r in rows:
        cells = [str(int(r["epoch"]))]
        cells += ["" if r.get(k) is None else repr(float(r[k])) for k in keys[1:]]
        lines.append(",".join(cells))
    atomic_write_text(path, "\n".join(lines) + "\n")


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
class PhaseFiles:
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
class PhaseState:
    epoch: int = 0  # epochs committed: training starts at this 0-based index
    weights: Path | None = None  # their backup, to load before training
    rows: list = dataclasses.field(default_factory=list)  # history rows of the committed epochs
    best: tuple | None = None  # (score, epoch) of best.keras


class EpochCommit(keras.callbacks.Callback):
    """Restores a phase's state on train begin; makes each epoch durable in the documented order."""

    def __init__(self, files: PhaseFiles, state: PhaseState, monitor: str, mode: str):
        super().__init__()
        self.files, self.state = files, state
        self.monitor, self.mode = monitor, mode
        self.rows = {r["epoch"]: r for r in state.rows}
        self.best = state.best

    def on_train_begin(self, logs=None):
        if self.state.weights is not None:
            load_backup(self.model, self.state.weights)

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
        ensure_space(files.backup, model_bytes(self.model), "the epoch's backup")
        with writing(str(weights), tmp, needed=model_bytes(self.model)):
            self.model.save_weights(tmp, overwrite=True)
            commit_point("mid_backup", epoch, truncate=tmp)
            fsync_file(tmp)
            os.replace(tmp, weights)
        commit_point("backup", epoch)
        # 2. Its history row.
        row = {"epoch": epoch, **{k: float(v) for k, v in logs.items()}}
        self.rows[epoch] = row
        _write_history(files.history, list(self.rows.values()))
        commit_point("history", epoch)
        # 3. The best checkpoint and its score, when it improved.
        value = float(value)
        if not math.isnan(value) and _better(value, None if self.best is None else self.best[0], self.mode):
            log.info("epoch %d: %s improved to %.4f, saving %s", n, self.monitor, value, files.best.name)
            save_model_file(self.model, files.best, files.best_tmp, epoch)
            record = {"score": value, "epoch": epoch, "monitor": self.monitor, "mode": self.mode}
            with writing(str(files.best_json), files.best_tmp, files.best_json_tmp):
                with open(files.best_json_tmp, "w") as f:
                    json.dump(record, f)
                    f.flush()
                    os.fsync(f.fileno())
            commit_point("best_tmp", epoch)
            os.replace(files.best_tmp, files.best)
            commit_point("best_keras", epoch)
            os.replace(files.best_json_tmp, files.best_json)
            commit_point("best", epoch)
            self.best = (value, epoch)
        # 4. The counter: from now on a resume starts after this epoch.
        atomic_write_text(files.state, json.dumps({"epoch": n, "weights": weights.name}))
        fsync_dir(files.backup)
        commit_point("counter", epoch)
        for old in files.backup.glob("epoch-*.weights.h5"):
            if old != weights:
                old.unlink(missing_ok=True)


class _MonitorMissing(UserError, KeyError):
    """The monitored metric is not logged (a bad --monitor): one line, and a KeyError as before."""

    __str__ = ValueError.__str__


def load_backup(model, weights: Path) -> None:
    """Load saved weights (a backup, or a finished phase's last weights), or refuse a damaged file in one line."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(weights)
    except (OSError, ValueError) as err:
        raise damaged(weights, "saved training state", err) from None


def recover(files: PhaseFiles, monitor: str, mode: str) -> PhaseState:
    """What a previous invocation left of this phase: repaired, or refused with one line.

    See the package docstring (`hybridvision.common.run`) for the order of an epoch's writes this relies on.
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
        check_checkpoint(files.best)

    # The epoch after the counter: committed when all its steps are durable.
    pending = files.weights(epoch + 1)
    pending_row = [r for r in rows if r["epoch"] == epoch]
    if pending.is_file() and pending_row:
        expected = _best_of([r for r in rows if r["epoch"] <= epoch], monitor, mode)
        if expected is None or (best is not None and expected == best):
            atomic_write_text(files.state, json.dumps({"epoch": epoch + 1, "weights": pending.name}))
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
                atomic_write_text(files.best_json, json.dumps(
                    {"score": best[0], "epoch": best[1], "monitor": monitor, "mode": mode}))
                notes.append(f"wrote {files.best_json.name} from {files.history.name} (a run of an earlier version)")
    for note in notes:
        log.warning("%s: %s", files.dir, note)
    return PhaseState(epoch=epoch, weights=weights if epoch else None, rows=rows, best=best)

