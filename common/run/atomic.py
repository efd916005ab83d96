"""Crash-safe writes: a file is written completely under a temporary name, flushed to disk, then renamed.

A kill at any instant leaves either the old file or the new one, never half of
one; out-of-space and read-only errors become one line (`writing`), and model
saves are refused before they start when the disk cannot hold them
(`ensure_space`: h5py can crash the process on a full disk).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

import numpy as np

from hybridvision.common.cli import UserError, environment_error
from hybridvision.common.run.commit_points import commit_point


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def writing(what: str, *leftovers: Path, folder: Path | None = None, needed: int = 0):
    """Turn out-of-space / read-only errors while writing `what` into one line; remove `leftovers`.

    A full disk (wherever it is met: Python, h5py, a TensorFlow op) is named as such with `folder`
    (default: `what`'s parent, `what` being a path) and about the space `needed` (bytes), by `disk_full`.
    """
    try:
        yield
    except Exception as err:
        for path in leftovers:
            with contextlib.suppress(OSError):
                path.unlink()
        if isinstance(err, UserError):
            raise
        if _no_space(err):
            raise disk_full(Path(folder) if folder is not None else Path(what).parent, needed, what) from err
        if environment_error(err):
            reason = getattr(err, "strerror", None) or " ".join(str(err).split())[:200]
            raise UserError(f"cannot write {what}: {reason}; free some space or make it writable "
                            "(a run resumes from its last finished epoch)") from err
        raise


def _no_space(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(s in str(err) for s in ("No space left on device", "Disk quota exceeded", "errno = 28", "errno = 122"))


def disk_full(folder: Path, needed: int, what: str) -> UserError:
    """The one line of a disk too full for `what` (about `needed` bytes, plus a margin) in `folder`."""
    needed = int(needed * 1.2) + (1 << 20)
    try:
        free = f"{shutil.disk_usage(folder).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return UserError(f"not enough disk space in {folder} for {what}: about {needed / 1e6:.1f} MB needed, {free}; "
                     "free some space (the run resumes from its last finished epoch)")


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with writing(str(path), tmp, needed=len(text)):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def model_bytes(model) -> int:
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


def ensure_space(folder: Path, needed: int, what: str) -> None:
    """Refuse (one line) before a write that would not fit: h5py can crash the process on a full disk."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < int(needed * 1.2) + (1 << 20):
        raise disk_full(folder, needed, what)


def save_model_file(model, path: Path, tmp: Path, epoch: int | None = None) -> None:
    """`model.save` into `tmp`, flushed to disk (the caller renames it)."""
    ensure_space(path.parent, model_bytes(model), path.name)
    with writing(str(path), tmp, needed=model_bytes(model)):
        model.save(tmp)
        commit_point("mid_checkpoint", epoch, truncate=tmp)
        fsync_file(tmp)


def _build_optimizer(model) -> None:
    """Build a compiled model's unused optimizer, so its saved state matches what loading builds.

    (A model whose parts were trained separately, e.g. a head on cached features, has an
    optimizer that never ran; saved that way, loading warns about skipped optimizer variables.)
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        with contextlib.suppress(Exception):
            optimizer.build(model.trainable_variables)


def atomic_save_model(model, path: Path) -> None:
    # A kill during model.save must never leave a half-written model behind.
    _build_optimizer(model)
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    save_model_file(model, path, tmp)
    os.replace(tmp, path)


def atomic_save_weights(model, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name.replace(".weights.h5", ".tmp.weights.h5"))
    ensure_space(path.parent, model_bytes(model), path.name)
    with writing(str(path), tmp, needed=model_bytes(model)):
        model.save_weights(tmp, overwrite=True)
        fsync_file(tmp)
        os.replace(tmp, path)


def atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    ensure_space(dst.parent, Path(src).stat().st_size, str(dst))
    with writing(str(dst), tmp, needed=Path(src).stat().st_size):
        shutil.copyfile(src, tmp)
        fsync_file(tmp)
        os.replace(tmp, dst)
    fsync_dir(dst.parent)
