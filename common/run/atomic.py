"""Crash-safe writes: a file is written completely under a temporary name, flushed to disk, then renamed.

A kill at any instant leaves either the old file or the new one, never half of
one; out-of-space and read-only errors become one line (`writing`), and model
saves are refused before they start when the disk cannot hold them
(`ensure_space`: h5py can crash the process on a full disk).
"""

from __future__ import annotations

import contextlib
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
def writing(what: str, *leftovers: Path):
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


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with writing(str(path), tmp):
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
    needed = int(needed * 1.2) + (1 << 20)
    if free < needed:
        raise UserError(f"not enough disk space in {folder} for {what}: about {needed / 1e6:.1f} MB needed, "
                        f"{free / 1e6:.1f} MB free; free some space (the run resumes from its last finished epoch)")


def save_model_file(model, path: Path, tmp: Path, epoch: int | None = None) -> None:
    """`model.save` into `tmp`, flushed to disk (the caller renames it)."""
    ensure_space(path.parent, model_bytes(model), path.name)
    with writing(str(path), tmp):
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
    with writing(str(path), tmp):
        model.save_weights(tmp, overwrite=True)
        fsync_file(tmp)
        os.replace(tmp, path)


def atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    ensure_space(dst.parent, Path(src).stat().st_size, str(dst))
    with writing(str(dst), tmp):
        shutil.copyfile(src, tmp)
        fsync_file(tmp)
        os.replace(tmp, dst)
    fsync_dir(dst.parent)
