"""The tail every image pipeline shares: shuffle, decode, cache, augment after the cache, batch, prefetch.

    columns = {"path": paths, "label": labels}  # or a tf.data.Dataset of known length
    dataset = cached_images(columns, decode, batch_size, shuffle=True, seed=0, cache=True, per_batch=augment)

The order is what makes a cache cheap and still random:

- the undecoded elements (paths, labels) are shuffled first, all of them (cheap: given as
  columns, one permutation of row numbers, 8 bytes per image);
  without a cache every epoch reshuffles them, with one only the first pass
  happens here (the cache then replays that order);
- `decode` gives uint8 images, the form that is cached: 4x less memory than
  float32, and the source pixels were 8-bit anyway;
- after the cache a buffer of `CACHED_SHUFFLE_BUFFER` elements reshuffles every
  epoch, without holding a second copy of the whole dataset;
- augmentation runs after the cache (`per_example` before batching,
  `per_batch` after it), so every epoch draws new random transforms.

An in-memory cache is sized before anything runs: N x (the decoded element's
bytes, e.g. H x W x 3 for uint8 images); more than `CACHE_MEMORY_SHARE` of
the memory available is refused with a one-line `UserError`, so a run that
would be killed mid-epoch (or swap) stops before training starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from hybridvision.common.cli import UserError

# With a cache the order is fixed by the first pass; this buffer reshuffles it every epoch.
CACHED_SHUFFLE_BUFFER = 1024
# An in-memory cache may take at most this share of the memory available when the dataset is built.
CACHE_MEMORY_SHARE = 0.5


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (psutil, else /proc/meminfo's MemAvailable); None if unknown."""
    try:
        import psutil
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def element_bytes(spec) -> int:
    """Bytes of one element of fixed-shape tensors (strings and unknown dimensions count 0)."""
    total = 0
    for leaf in tf.nest.flatten(spec):
        shape = getattr(leaf, "shape", None)
        if shape is None or not shape.is_fully_defined() or leaf.dtype == tf.string:
            continue
        total += int(np.prod(shape.as_list(), dtype=np.int64)) * leaf.dtype.size
    return total


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def check_cache_fits(count: int, spec) -> None:
    """Raises a one-line `UserError` when `count` cached elements of `spec` would not fit in memory."""
    needed, available = count * element_bytes(spec), available_memory()
    if available is None or needed <= CACHE_MEMORY_SHARE * available:
        return
    shapes = ", ".join("x".join(map(str, leaf.shape)) for leaf in tf.nest.flatten(spec)
                       if getattr(leaf, "shape", None) is not None and (leaf.shape.rank or 0) >= 2)
    raise UserError(
        f"--cache: {count} decoded images ({shapes} each) need {_size(needed)} in memory, more than "
        f"{CACHE_MEMORY_SHARE:.0%} of the {_size(available)} available; train without the in-memory "
        "cache (--no-cache: images are decoded every epoch) or with a smaller --image-size"
    )


def path_column(paths) -> np.ndarray:
    """File paths (a column of str or path-like) as an object array of str, the form `cached_images` takes.

    Not `.astype(str)`: a fixed-width NumPy unicode array takes 4 bytes per character of the
    longest path for every row (~70 MB for 200,000 paths of 90 characters), however short the rest.
    """
    values = paths.to_numpy(dtype=object) if hasattr(paths, "to_numpy") else np.asarray(paths, dtype=object)
    if all(type(p) is str for p in values):
        return values
    return np.array([str(p) for p in values], dtype=object).reshape(values.shape)


def _rows_in_order(columns, shuffle: bool, seed: int, reshuffle: bool):
    """`(dataset of the rows of `columns`, row count)`, shuffled by one permutation of row numbers per epoch.

    A shuffle buffer of all N elements holds N sets of tensors (a string tensor per path, one per
    label...); here the columns are held once and each epoch draws one int64 permutation, so the
    memory of a shuffle is 8 bytes per row.
    """
    columns = tf.nest.map_structure(tf.convert_to_tensor, columns)
    counts = {int(c.shape[0]) for c in tf.nest.flatten(columns)}
    if len(counts) != 1:
        raise ValueError(f"cached_images: the columns have different lengths {sorted(counts)}")
    count = counts.pop()
    if shuffle:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=reshuffle).take(1)
        order = seeds.map(lambda s: tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([s, tf.constant(seed, tf.int64)]))).unbatch()
    else:
        order = tf.data.Dataset.range(count)
    rows = order.map(lambda i: tf.nest.map_structure(lambda c: tf.gather(c, i), columns))
    return rows.apply(tf.data.experimental.assert_cardinality(count)), count


def cached_images(
    dataset: tf.data.Dataset,
    decode: Callable,
    batch: int | Callable[[tf.data.Dataset], tf.data.Dataset],
    shuffle: bool = False,
    seed: int = 0,
    cache=False,
    drop_remainder: bool = False,
    per_example: Callable | None = None,
    per_batch: Callable | None = None,
) -> tf.data.Dataset:
    """`dataset` decoded, cached, augmented, batched and prefetched (the order in the module docstring).

    Args:
        dataset: the undecoded elements (paths, labels, ...): columns (a dict
            or tuple of arrays, one row per image; shuffled by a permutation
            of row numbers, see `_rows_in_order`), or a dataset of known length
            (e.g. `Dataset.from_tensor_slices`, shuffled in a buffer of all of it).
        decode: maps an element to the element to cache (images uint8).
        batch: images per batch, or a function that batches the dataset
            (e.g. into buckets of one image size).
        shuffle: reshuffle every epoch (seeded).
        seed: shuffle seed.
        cache: False, True (in memory: refused when it would not fit, see
            `check_cache_fits`) or a file path for `Dataset.cache`.
        drop_remainder: drop the last incomplete batch (with `batch` a number).
        per_example: a map after the cache, before batching (e.g. a random flip per image).
        per_batch: a map after batching (e.g. float conversion, augmentation layers,
            the model's inputs).
    """
    if isinstance(dataset, tf.data.Dataset):
        count = int(dataset.cardinality())
        if count < 0:
            raise ValueError("cached_images needs a dataset of known length (the shuffle buffer holds all of it)")
        if shuffle:
            dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=not cache)
    else:
        dataset, count = _rows_in_order(dataset, shuffle, seed, reshuffle=not cache)
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    if cache is True:
        check_cache_fits(count, dataset.element_spec)
    if cache:
        dataset = dataset.cache("" if cache is True else os.fspath(cache))
        if shuffle:
            dataset = dataset.shuffle(min(count, CACHED_SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    if per_example is not None:
        dataset = dataset.map(per_example, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch, drop_remainder=drop_remainder) if isinstance(batch, int) else batch(dataset)
    if per_batch is not None:
        dataset = dataset.map(per_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
