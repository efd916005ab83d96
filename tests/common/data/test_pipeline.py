"""hybridvision.common.data.pipeline: the shared tail of the image pipelines (shuffle, decode, cache, augment, batch)."""

import numpy as np
import pytest
import tensorflow as tf

from hybridvision.common.data.pipeline import cached_images, path_column


def _epochs(dataset, n=2):
    return [np.concatenate([np.ravel(b) for b in dataset.as_numpy_iterator()]) for _ in range(n)]


@pytest.mark.parametrize("cache", [False, True, "file"])
def test_every_epoch_reshuffles_with_or_without_a_cache(cache, tmp_path):
    cache = str(tmp_path / "cache") if cache == "file" else cache
    dataset = cached_images(tf.data.Dataset.range(20), lambda x: x * 2, 4, shuffle=True, seed=1, cache=cache)
    first, second = _epochs(dataset)
    assert sorted(first) == sorted(second) == list(range(0, 40, 2))
    assert not np.array_equal(first, second)
    plain_cache = f"{cache}-plain" if isinstance(cache, str) else cache
    unshuffled = cached_images(tf.data.Dataset.range(20), lambda x: x * 2, 4, cache=plain_cache)
    assert _epochs(unshuffled)[0].tolist() == list(range(0, 40, 2))


@pytest.mark.parametrize("cache", [False, True])
def test_decode_runs_once_with_a_cache_and_augmentation_after_it_every_epoch(cache):
    decoded = []

    def decode(x):
        return tf.py_function(lambda v: (decoded.append(int(v)), v)[1], [x], tf.int64)

    def per_example(x):
        return tf.cast(x, tf.float32)

    generator = tf.random.Generator.from_seed(1)  # its state lives on across epochs, as a Keras layer's seed does

    def per_batch(x):
        return x + generator.uniform(tf.shape(x))  # a random augmentation

    dataset = cached_images(tf.data.Dataset.range(6), decode, 3, cache=cache, per_example=per_example,
                            per_batch=per_batch)
    first, second = _epochs(dataset)
    assert len(decoded) == (6 if cache else 12)
    assert first.dtype == np.float32 and np.array_equal(np.floor(first), np.arange(6))
    assert not np.array_equal(first, second)


def test_batching_by_number_with_drop_remainder_or_by_a_function():
    sizes = [len(b) for b in cached_images(tf.data.Dataset.range(12), tf.identity, 5, drop_remainder=True)]
    assert sizes == [5, 5]
    assert [len(b) for b in cached_images(tf.data.Dataset.range(12), tf.identity, 5)] == [5, 5, 2]
    by_parity = cached_images(tf.data.Dataset.range(8), tf.identity, lambda d: d.group_by_window(
        key_func=lambda x: x % 2, reduce_func=lambda _, window: window.batch(4), window_size=4))
    assert sorted(sorted(b.tolist()) for b in by_parity.as_numpy_iterator()) == [[0, 2, 4, 6], [1, 3, 5, 7]]


def test_a_dataset_of_unknown_length_is_refused():
    with pytest.raises(ValueError, match="known length"):
        cached_images(tf.data.Dataset.range(5).filter(lambda x: x > 1), tf.identity, 2, shuffle=True)


def test_an_in_memory_cache_that_would_not_fit_is_refused_before_anything_runs(tmp_path, monkeypatch):
    from PIL import Image

    from hybridvision.common.cli import UserError
    from hybridvision.common.data import pipeline
    from hybridvision.common.data.class_folders import make_dataset, read_class_folders

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / name / f"{i}.png")
    table = read_class_folders(tmp_path)
    needed = 10 * (32 * 32 * 3 + 4)  # 10 images of 32x32x3 uint8 and their int32 labels
    monkeypatch.setattr(pipeline, "available_memory", lambda: 2 * needed - 1)
    with pytest.raises(UserError, match=r"^--cache: 10 decoded images \(32x32x3 each\) need 0.0 MiB in memory, more than 50% of the 0.1 MiB available; .*--no-cache") as error:
        make_dataset(table, (32, 32), 4, cache=True)
    assert "\n" not in str(error.value)
    monkeypatch.setattr(pipeline, "available_memory", lambda: 2 * needed)  # exactly half: fits
    assert sum(len(b) for b, _ in make_dataset(table, (32, 32), 4, cache=True)) == 10
    monkeypatch.setattr(pipeline, "available_memory", lambda: 1)  # no cache, or a cache file: no limit
    make_dataset(table, (32, 32), 4, cache=False)
    make_dataset(table, (32, 32), 4, cache=str(tmp_path / "cache"))
    monkeypatch.setattr(pipeline, "available_memory", lambda: None)  # unknown: not refused
    make_dataset(table, (32, 32), 4, cache=True)


def test_available_memory_reads_the_machine():
    from hybridvision.common.data.pipeline import available_memory, element_bytes

    assert available_memory() is None or available_memory() > 0
    spec = {"image": tf.TensorSpec((16, 16, 3), tf.uint8), "label": tf.TensorSpec((), tf.int32),
            "path": tf.TensorSpec((), tf.string)}
    assert element_bytes(spec) == 16 * 16 * 3 + 4


@pytest.mark.parametrize("cache", [False, True])
def test_columns_are_shuffled_by_a_permutation_per_epoch_the_same_for_a_seed(cache):
    columns = {"x": np.arange(50, dtype="int64"), "name": np.array([f"row{i}" for i in range(50)])}

    def build(seed):
        return cached_images(columns, lambda row: row, 8, shuffle=True, seed=seed, cache=cache)

    def epochs(dataset):
        out = []
        for _ in range(2):
            rows = [(int(x), n.decode()) for b in dataset.as_numpy_iterator() for x, n in zip(b["x"], b["name"])]
            out.append(rows)
        return out

    first, second = epochs(build(3))
    assert all(name == f"row{x}" for x, name in first + second)  # the columns stay aligned
    assert sorted(x for x, _ in first) == sorted(x for x, _ in second) == list(range(50))
    assert first != second  # reshuffled (with a cache: by the buffer after it)
    assert epochs(build(3)) == [first, second]  # the same for the same seed
    assert epochs(build(4))[0] != first
    plain = cached_images(columns, lambda row: row, 8, cache=cache)
    assert [int(x) for b in plain.as_numpy_iterator() for x in b["x"]] == list(range(50))
    assert int(plain.cardinality()) == 7


def test_path_column_is_an_object_array_of_str_whatever_the_paths_are():
    import pathlib

    import pandas as pd

    for paths in (["/a/1.jpg", "/b/ü.jpg"], pd.Series(["/a/1.jpg", "/b/ü.jpg"]), [pathlib.Path("/a/1.jpg"), "/b/ü.jpg"],
                  pd.Series(["/a/1.jpg", "/b/ü.jpg"], dtype="string")):
        column = path_column(paths)
        assert column.dtype == object and list(column) == ["/a/1.jpg", "/b/ü.jpg"]
        assert all(type(p) is str for p in column)
        assert tf.convert_to_tensor(column).dtype == tf.string



def test_deterministic_draws_the_augmentation_of_the_parallel_map_in_order():
    """`--deterministic` (`seed_everything`, as `Run` calls it): a seeded Keras flip in the parallel map after
    the cache draws in order, so two builds give the same epochs. Without it the flips are drawn in thread
    order and a rebuild can differ (not asserted: it depends on the threads). In a fresh process: op
    determinism, once on, stays on for the process."""
    script = """
import types
import keras
import numpy as np
import tensorflow as tf
from hybridvision.common.data.pipeline import cached_images
from hybridvision.common.run import seed_everything

images = np.random.default_rng(0).integers(0, 256, (800, 8, 8, 3)).astype("uint8")
seed_everything(types.SimpleNamespace(seed=0, deterministic=True))

def epochs():
    flip = keras.layers.RandomFlip("horizontal", seed=0)
    dataset = cached_images({"i": np.arange(len(images))}, lambda row: tf.gather(images, row["i"]), 16, shuffle=True,
                            seed=0, cache=True, per_batch=lambda x: flip(tf.cast(x, tf.float32), training=True))
    return [np.concatenate(list(dataset.as_numpy_iterator())) for _ in range(2)]

first, again = epochs(), epochs()
print(all(np.array_equal(a, b) for a, b in zip(first, again)), np.array_equal(first[0], first[1]))
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]  # every build the same epochs; the two epochs differ
