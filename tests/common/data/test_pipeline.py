"""hybridvision.common.data.pipeline: the shared tail of the image pipelines (shuffle, decode, cache, augment, batch)."""

import numpy as np
import pytest
import tensorflow as tf

from hybridvision.common.data.pipeline import cached_images


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
