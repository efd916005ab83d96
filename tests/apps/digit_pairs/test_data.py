"""Pair construction: shapes, pooling, the target rule, class balance, splits and shifts."""

import gzip
import struct

import numpy as np
import pytest

from hybridvision.apps.digit_pairs.data import (
    load_pair_splits,
    make_dataset,
    make_pairs,
    pool_digits,
    targets,
)


def _indexed_digits(n, seed=0):
    """Digits whose every pixel holds the digit's index (mod 256), so a pooled pair tells which digits it took."""
    rng = np.random.default_rng(seed)
    images = np.repeat((np.arange(n) % 256).astype(np.uint8), 28 * 28).reshape(n, 28, 28)
    return images, rng.integers(0, 10, n).astype(np.uint8)


def test_pool_digits_is_2x2_average():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28)).astype(np.uint8)
    pooled = pool_digits(images)
    assert pooled.shape == (3, 14, 14) and pooled.dtype == np.float32
    expected = (images[:, 0::2, 0::2].astype(float) + images[:, 1::2, 0::2] + images[:, 0::2, 1::2] + images[:, 1::2, 1::2]) / 4
    np.testing.assert_allclose(pooled, expected / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="--image-size 10"):
        pool_digits(images, 10)


def test_make_pairs_shapes_target_rule_and_distinct_digits():
    images, labels = _indexed_digits(200)
    pairs = make_pairs(images, labels, 60, np.random.default_rng(0))
    assert pairs.x.shape == (60, 14, 14, 2) and pairs.x.dtype == np.float32
    assert pairs.target.shape == (60,) and pairs.classes.shape == (60, 2)
    # Recover the source digit of each channel from its constant pixel value.
    index = np.rint(pairs.x[:, 0, 0, :] * 255).astype(int)
    assert np.all(pairs.x == pairs.x[:, :1, :1, :]), "a constant digit stays constant after pooling"
    np.testing.assert_array_equal(pairs.classes, labels[index])
    np.testing.assert_array_equal(pairs.target, (labels[index[:, 0]] <= labels[index[:, 1]]).astype(int))
    assert len(np.unique(index)) == 120, "with enough digits no digit is used twice"


def test_class_balance_is_about_55_percent_ones():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 20000).astype(np.uint8)
    images = np.zeros((20000, 28, 28), np.uint8)
    pairs = make_pairs(images, labels, 5000, np.random.default_rng(2))
    assert abs(pairs.target.mean() - 0.55) < 0.02
    # Ties (equal digits, about 10%) count as "first <= second".
    ties = pairs.classes[:, 0] == pairs.classes[:, 1]
    assert abs(ties.mean() - 0.10) < 0.015 and pairs.target[ties].all()


def test_small_pool_reuses_digits_evenly():
    images, labels = _indexed_digits(10)
    pairs = make_pairs(images, labels, 10, np.random.default_rng(0))
    index = np.rint(pairs.x[:, 0, 0, :] * 255).astype(int).ravel()
    np.testing.assert_array_equal(np.bincount(index, minlength=10), np.full(10, 2))
    with pytest.raises(ValueError, match="--pairs must be at least 1"):
        make_pairs(images, labels, 0, np.random.default_rng(0))


def _write_t10k(folder, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIII", 2051, len(images), 28, 28)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 2049, len(labels)) + labels.tobytes()))


def test_test_only_mnist_splits_into_halves(tmp_path):
    images, labels = _indexed_digits(240)
    _write_t10k(tmp_path, images, labels)
    splits, notes = load_pair_splits(tmp_path, n_pairs=50, val_fraction=0.2, seed=3)
    assert {k: len(v) for k, v in splits.items()} == {"train": 40, "val": 10, "test": 50}
    assert "first 120 digits" in notes["pair_source"] and "last 120" in notes["pair_source"]
    used = {k: np.rint(v.x[:, 0, 0, :] * 255).astype(int) for k, v in splits.items()}
    assert used["train"].max() < 120 and used["val"].max() < 120 and used["test"].min() >= 120
    # Train and val pairs come from one draw: no digit is in both.
    assert not set(used["train"].ravel()) & set(used["val"].ravel())
    again, _ = load_pair_splits(tmp_path, n_pairs=50, val_fraction=0.2, seed=3)
    other, _ = load_pair_splits(tmp_path, n_pairs=50, val_fraction=0.2, seed=4)
    np.testing.assert_array_equal(again["test"].x, splits["test"].x)
    assert not np.array_equal(other["test"].x, splits["test"].x)
    with pytest.raises(ValueError, match="--val-fraction"):
        load_pair_splits(tmp_path, n_pairs=50, val_fraction=1.5, seed=3)


def test_dataset_labels_and_independent_shifts():
    x = np.zeros((16, 14, 14, 2), np.float32)
    x[:, 7, 7, 0] = 1.0
    x[:, 4, 9, 1] = 1.0
    pairs = make_pairs(*_indexed_digits(40), 16, np.random.default_rng(0))
    pairs.x = x
    assert set(targets(pairs, with_digits=True)) == {"compare", "digit_a", "digit_b"}
    assert set(targets(pairs, with_digits=False)) == {"compare"}
    batch_x, batch_y = next(iter(make_dataset(pairs, True, 16, shuffle=True, seed=0, shift=2)))
    batch_x = batch_x.numpy()
    assert batch_x.shape == (16, 14, 14, 2) and batch_y["digit_a"].shape == (16,)
    np.testing.assert_allclose(batch_x.sum(axis=(1, 2)), 1.0)  # shifted, nothing cropped away
    moves = []
    for c, (r0, c0) in enumerate(((7, 7), (4, 9))):
        rows, cols = np.nonzero(batch_x[..., c])[1:]
        assert np.all(np.abs(rows - r0) <= 2) and np.all(np.abs(cols - c0) <= 2)
        moves.append(np.stack([rows - r0, cols - c0], 1))
    assert not np.array_equal(moves[0], moves[1]), "the two digits of a pair move independently"
    assert len({tuple(m) for m in moves[0]}) > 3, "examples get different shifts"
