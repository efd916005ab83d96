"""MNIST from its original IDX files (gzipped or raw) or from a `.npz`.

The IDX format (LeCun et al.) is a 4-byte magic number `0x00 0x00 <type>
<ndim>`, then `ndim` big-endian uint32 sizes, then the values, big-endian.
MNIST uses two kinds: images (magic 2051: uint8, 3 dims N x 28 x 28) and
labels (magic 2049: uint8, 1 dim N). `read_idx` reads any IDX file and
checks its size against its header, so a truncated download fails with a
message naming the file and the bytes expected instead of a reshape error.

`load_mnist(path)` finds the standard file names in a folder
(`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
`t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`, also the
`train-images.idx3-ubyte` spelling) or reads a `.npz` with the keys of
`keras.datasets.mnist` (`x_train, y_train, x_test, y_test`). It returns
only the splits it found; when the train files are missing it says so, and
the app decides how to make a training set from the test split.

Example:

    splits = load_mnist("data/mnist")        # {"train": (x, y), "test": (x, y)}
    images, labels = splits["test"]          # uint8 (N, 28, 28), uint8 (N,)
"""

from __future__ import annotations

import gzip
import logging
import struct
import zlib
from pathlib import Path

import numpy as np

log = logging.getLogger("hybridvision")

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
# IDX type byte -> big-endian NumPy dtype.
_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# (split name, file prefix) in the order the splits are reported.
_PREFIXES = (("train", "train"), ("test", "t10k"))
NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except EOFError:
        raise ValueError(
            f"{path}: the gzip stream ends early, so the file is truncated; download it again"
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as err:
        raise ValueError(f"{path}: not a valid gzip file ({err}); download it again or gunzip it") from None


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Reads one IDX file (raw or `.gz`) into a NumPy array in native byte order.

    Args:
        path: the file.
        expected_magic: 2051 (MNIST images) or 2049 (labels) to insist on
            that kind of file; None accepts any valid IDX magic.

    Returns:
        An array of the header's shape and type (uint8 for MNIST).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a bad magic number, or a file shorter or longer than its
            header says (a truncated download).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such IDX file")
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path} is truncated: {len(data)} bytes, not even the 4-byte IDX magic number")
    magic = struct.unpack(">I", data[:4])[0]
    zeros, type_code, ndim = magic >> 16, (magic >> 8) & 0xFF, magic & 0xFF
    if zeros != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise ValueError(
            f"{path}: magic number {magic} is not an IDX header (MNIST images have {IMAGES_MAGIC}, "
            f"labels {LABELS_MAGIC}); is this the right file?"
        )
    if expected_magic is not None and magic != expected_magic:
        kind = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}.get(expected_magic, "this kind of")
        raise ValueError(
            f"{path}: magic number {magic}, expected {expected_magic} for an MNIST {kind} file; "
            "are the images and labels files swapped?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} is truncated: expected a {header}-byte header, found {len(data)} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_TYPES[type_code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise ValueError(
            f"{path} is truncated: expected {expected} bytes for shape {shape} "
            f"({'gunzipped ' if path.suffix == '.gz' else ''}size), found {len(data)}; download it again"
        )
    if len(data) > expected:
        raise ValueError(
            f"{path}: {len(data)} bytes but its header (shape {shape}) says {expected}; "
            "the file is corrupt or not an IDX file"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)


def _check_pair(images: np.ndarray, labels: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim != 3:
        raise ValueError(f"{source}: images must be N x H x W, got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"{source}: labels must be a vector, got shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{source}: {len(images)} images but {len(labels)} labels; the files do not belong together")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{source}: labels must be digits 0..9, found {labels.min()}..{labels.max()}")
    return np.asarray(images, np.uint8), np.asarray(labels, np.uint8)


def _find(folder: Path, prefix: str, kind: str, rank: int) -> Path | None:
    for stem in (f"{prefix}-{kind}-idx{rank}-ubyte", f"{prefix}-{kind}.idx{rank}-ubyte"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def _load_npz(path: Path) -> dict:
    try:
        archive = np.load(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None
    with archive:
        splits = {}
        for split, (x_key, y_key) in NPZ_KEYS.items():
            if x_key in archive and y_key in archive:
                splits[split] = _check_pair(archive[x_key], archive[y_key], f"{path} [{x_key}, {y_key}]")
        if not splits:
            raise ValueError(
                f"{path}: expected the keys x_train, y_train and/or x_test, y_test "
                f"(as keras.datasets.mnist), found {', '.join(archive.files) or 'none'}"
            )
    return splits


def load_mnist(path: str | Path) -> dict:
    """Reads the MNIST splits found in a folder of IDX files or a `.npz`.

    Args:
        path: a folder with the standard IDX file names (gzipped or not)
            or a `mnist.npz`, or a `.npz` file itself.

    Returns:
        `{"train": (images, labels), "test": (images, labels)}` with uint8
        arrays (N, 28, 28) and (N,); only the splits present are returned.

    Raises:
        FileNotFoundError: no MNIST files at `path`, or a split's labels
            file without its images file (or the reverse).
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        splits = _load_npz(path)
    elif path.is_dir():
        splits = {}
        for split, prefix in _PREFIXES:
            images_file = _find(path, prefix, "images", 3)
            labels_file = _find(path, prefix, "labels", 1)
            if images_file is None and labels_file is None:
                continue
            if images_file is None or labels_file is None:
                missing = f"{prefix}-images-idx3-ubyte[.gz]" if images_file is None else f"{prefix}-labels-idx1-ubyte[.gz]"
                raise FileNotFoundError(f"{path}: found {(images_file or labels_file).name} but not {missing}; add it")
            images = read_idx(images_file, IMAGES_MAGIC)
            labels = read_idx(labels_file, LABELS_MAGIC)
            splits[split] = _check_pair(images, labels, f"{images_file.name} / {labels_file.name}")
        if not splits and (path / "mnist.npz").is_file():
            splits = _load_npz(path / "mnist.npz")
        if not splits:
            raise FileNotFoundError(
                f"{path}: no MNIST files; expected train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] or mnist.npz"
            )
    else:
        raise FileNotFoundError(f"{path}: no such folder or .npz file; pass the folder holding the MNIST IDX files")
    for split, (images, _) in splits.items():
        log.info("MNIST %s: %d digits of %dx%d from %s", split, len(images), images.shape[1], images.shape[2], path)
    if "train" not in splits:
        log.warning("MNIST at %s has only the test split (t10k); there is no train split", path)
    return splits
