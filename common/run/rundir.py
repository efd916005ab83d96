"""Run directories: finding the one to resume or making a new one, comparing settings, the lock.

A run directory is locked (`fcntl.flock` on run.lock) for the life of its `Run`;
`claim_run_dir` is the one place that picks a directory and takes its lock.

A run directory is the suite's or nobody's (`own_dir`). The suite writes `MARKER` into every
folder it makes or adopts, right after its lock, before any other file. A folder without it is taken only when it is
empty, or when it is a run directory of an earlier version of the suite (which wrote no marker):
every entry one of the suite's own names (`SUITE_NAMES`) and the files every such run began
with (config.json with config.yaml and run.log; or, for a multi-seed run, config.json and
`seed<k>` folders). Anything else (a user's notes.txt, history.csv or config.json) is refused
in one line, before any file is written or a lock taken; the automatic resume skips such folders.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import fnmatch
import json
import logging
import os
from pathlib import Path

from hybridvision.common.cli import UserError
from hybridvision.common.run.atomic import writing

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS: no locking
    fcntl = None

log = logging.getLogger("hybridvision")

# How a multi-process run is launched (flags or the scheduler's variables, where process 0
# is, which process this is) may change when it restarts.
_IGNORED_FOR_RESUME = ("run_dir", "quiet", "export_anyway", "coordinator", "num_processes", "process_id")


# Written into every folder the suite makes or adopts as a run directory, before any file but run.lock.
MARKER = ".hybridvision-run"
# What the suite writes into a run directory or a multi-seed run's folder (glob patterns).
SUITE_NAMES = (MARKER, "config.json", "config.yaml", "run.log", "run.lock", "history*.csv", "curves*.png", "best*.keras",
               "best*.json", "best*.tmp", "backup*", "last*.weights.h5", ".done*", "model.*", "metrics.json",
               "tensorboard", "seed*", "summary.json", "summary.csv", ".write-test-*", "*.tmp*")
# Leftovers of a start that wrote nothing else: a folder holding only these is taken as empty.
_NOTHING_YET = ("run.lock", ".write-test-*", "*.tmp*")


def _refusal(path: Path) -> str | None:
    """Why `path` is not the suite's run directory (None: it is, or it is empty or missing); see the module doc."""
    if not path.is_dir() or (path / MARKER).exists():
        return None
    names = sorted(p.name for p in path.iterdir())
    foreign = [n for n in names if not any(fnmatch.fnmatchcase(n, pattern) for pattern in SUITE_NAMES)]
    if foreign:
        return f"holds files the suite did not write ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''})"
    if all(any(fnmatch.fnmatchcase(n, pattern) for pattern in _NOTHING_YET) for n in names):
        return None
    earlier_run = {"config.json", "config.yaml", "run.log"} <= set(names)
    earlier_seeds = "config.json" in names and any(fnmatch.fnmatchcase(n, "seed*") for n in names)
    if earlier_run or earlier_seeds:
        return None
    return f"holds {', '.join(names[:3])}{', ...' if len(names) > 3 else ''} but no run the suite started there"


def check_ours(path: Path) -> None:
    """Refuse (one line) a folder that is not the suite's run directory (`_refusal`)."""
    refusal = _refusal(Path(path))
    if refusal:
        raise UserError(f"run directory {path} {refusal}: it is not the suite's, so nothing in it is touched; "
                        "pass a new or empty --run-dir")


def own_dir(path: Path) -> None:
    """Make `path` a run directory of the suite: refused (one line, nothing written) when it is someone else's;
    else created when missing, and marked (`MARKER`)."""
    path = Path(path)
    check_ours(path)
    make_dir(path)
    if not (path / MARKER).exists():
        with writing(f"run directory {path}", folder=path):
            (path / MARKER).write_text("a run directory of hybridvision (see hybridvision.common.run.rundir)\n")


# ---- run directories and their locks ----------------------------------------
class DirLock:
    """An exclusive `flock` on `<dir>/run.lock` for the life of the process (released on close or exit)."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / "run.lock"
        self.file = None

    def acquire(self) -> bool:
        if fcntl is None:
            return True
        with writing(f"run directory {self.path.parent}", folder=self.path.parent):
            f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        with writing(f"run directory {self.path.parent}", folder=self.path.parent):
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
        if not cfg_file.exists() or (candidate / "metrics.json").exists() or _refusal(candidate):
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


def claim_run_dir(app: str, config, root: str | Path = "runs") -> tuple[Path, DirLock]:
    """The run directory of `config` and its lock, held: the one loop that picks a run directory.

    `config.run_dir` when given (refused when it holds a finished run or another process holds
    it); else the newest unfinished run of the same settings under `<root>/<app>` that no other
    process holds; else a new folder `<root>/<app>/<timestamp>`, created here so that two
    processes starting at once never share it.
    """
    if getattr(config, "run_dir", None):
        path = Path(config.run_dir)
        if (path / "metrics.json").exists():
            raise FileExistsError(
                f"run directory {path} already holds a finished run (metrics.json); "
                "pass a new --run-dir or delete that folder"
            )
        check_ours(path)  # before anything is written or locked
        make_dir(path)
        lock = DirLock(path)
        if not lock.acquire():
            raise UserError(f"run directory {path} is in use by another training ({lock.holder()}); wait for it "
                            "to finish or pass another --run-dir")
        try:
            _check_writable(path)
            own_dir(path)
        except UserError:
            lock.release()
            raise
        return path, lock
    app_root = Path(root) / app
    for candidate in _unfinished_candidates(app_root, config):
        lock = DirLock(candidate)
        if lock.acquire():
            if (candidate / "metrics.json").exists():  # finished while we looked
                lock.release()
                continue
            own_dir(candidate)
            log.info("resuming the unfinished run in %s", candidate)
            return candidate, lock
        log.info("not resuming %s: in use by %s", candidate, lock.holder())
    while True:
        path = _new_run_dir(app_root)
        make_dir(path.parent)
        try:
            path.mkdir()
        except FileExistsError:  # another process took that name a moment ago
            continue
        except OSError as err:
            raise UserError(f"cannot create run directory {path}: {err.strerror or err}; "
                            "pass a writable --run-dir") from None
        lock = DirLock(path)
        if lock.acquire():
            try:
                own_dir(path)
            except UserError:
                lock.release()
                raise
            return path, lock


def resolve_run_dir(app: str, config, root: str | Path = "runs") -> Path:
    """The run directory `claim_run_dir` picks, its lock released: for a caller whose `Run`s take it later.

    `config.run_dir` as given (made the suite's: `own_dir`); else an unfinished run of the same
    settings not in use, else a new folder (created).
    """
    if getattr(config, "run_dir", None):
        own_dir(Path(config.run_dir))
        return Path(config.run_dir)
    path, lock = claim_run_dir(app, config, root)
    lock.release()
    return path


def make_dir(path: Path) -> None:
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

