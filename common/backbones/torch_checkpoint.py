"""Read a PyTorch checkpoint saved in the legacy (pre-1.6) format without torch.

Written by hand because no maintained library reads this format for Keras
without installing PyTorch itself (some GB). The format, as
`torch.save(..., _use_new_zipfile_serialization=False)` writes it, is five
parts one after another in one file:

1. a pickle of the magic number 0x1950a86a20f9469cfc6c,
2. a pickle of the protocol version (1001),
3. a pickle of a dict of system facts (byte order, int sizes),
4. a pickle of the object itself (here a state dict), in which every
   tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size,
   stride, ...)` and every storage a persistent id
   `("storage", <torch.FloatStorage>, key, location, numel)`,
5. a pickle of the list of storage keys, then, per key in that order, an
   int64 element count followed by the raw little-endian elements.

`load_state_dict(path)` returns `{name: numpy.ndarray}`; anything else in
the file (a zip-format checkpoint, a pickled module, unknown classes) raises
`CheckpointFormatError` with one line saying what was found.
"""

from __future__ import annotations

import collections
import pickle
import struct

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# torch storage classes -> NumPy dtypes (little-endian, as torch writes them).
_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class CheckpointFormatError(ValueError):
    """The file is not a legacy-format PyTorch state dict this reader understands."""


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype = np.dtype(dtype)
        self.numel = numel
        self.data = None


class _LazyTensor:
    """A tensor whose storage is read after the object pickle (part 5)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self):
        itemsize = self.storage.dtype.itemsize
        flat = self.storage.data
        if not self.size:
            return np.array(flat[self.offset])
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=tuple(s * itemsize for s in self.stride)
        )
        return np.array(view)  # a copy: the checkpoint's buffer can go


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _LazyTensor(storage, storage_offset, size, stride)


class _StorageType:
    def __init__(self, name):
        self.name = name


class _Unpickler(pickle.Unpickler):
    """Maps the few torch names a state dict uses to stand-ins; refuses all else."""

    def __init__(self, file, path):
        super().__init__(file)
        self.path = path
        self.storages = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointFormatError(
            f"{self.path}: holds {module}.{name}, not only tensors; this reader reads state dicts "
            "(torch.save(model.state_dict())) in the legacy format"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointFormatError(f"{self.path}: unknown persistent id {pid!r:.60}")
        storage_type, key, _location, numel = pid[1:5]
        if key not in self.storages:
            self.storages[key] = _Storage(_STORAGE_DTYPES[storage_type.name], numel)
        return self.storages[key]


def load_state_dict(path) -> dict[str, np.ndarray]:
    """`{name: array}` of the legacy-format PyTorch checkpoint at `path`."""
    path = str(path)
    with open(path, "rb") as file:
        head = file.read(4)
        if head.startswith(b"PK"):
            raise CheckpointFormatError(
                f"{path}: is a zip-format PyTorch checkpoint (torch >= 1.6); this reader reads the legacy "
                "format only (re-save it with torch.save(..., _use_new_zipfile_serialization=False))"
            )
        file.seek(0)
        try:
            magic = pickle.load(file)
            if magic != MAGIC_NUMBER:
                raise CheckpointFormatError(f"{path}: is not a PyTorch checkpoint (no magic number)")
            version = pickle.load(file)
            if version != PROTOCOL_VERSION:
                raise CheckpointFormatError(f"{path}: PyTorch protocol version {version}, expected 1001")
            sys_info = pickle.load(file)
            if not sys_info.get("little_endian", True):
                raise CheckpointFormatError(f"{path}: was written on a big-endian machine; not supported")
            unpickler = _Unpickler(file, path)
            state = unpickler.load()
            keys = pickle.load(file)
            for key in keys:
                storage = unpickler.storages[key]
                (count,) = struct.unpack("<q", file.read(8))
                raw = file.read(count * storage.dtype.itemsize)
                if len(raw) != count * storage.dtype.itemsize:
                    raise CheckpointFormatError(f"{path}: is truncated (storage {key} is short)")
                storage.data = np.frombuffer(raw, dtype=storage.dtype)
        except CheckpointFormatError:
            raise
        except (pickle.UnpicklingError, EOFError, KeyError, struct.error, AttributeError, TypeError) as err:
            raise CheckpointFormatError(f"{path}: is not a readable legacy PyTorch checkpoint ({err})") from err
    if not isinstance(state, dict):
        raise CheckpointFormatError(f"{path}: holds a {type(state).__name__}, not a state dict")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    arrays = {}
    for name, value in state.items():
        if isinstance(value, _LazyTensor):
            arrays[name] = value.to_numpy()
        elif isinstance(value, (int, float)):
            arrays[name] = np.asarray(value)
        else:
            raise CheckpointFormatError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
    return arrays
