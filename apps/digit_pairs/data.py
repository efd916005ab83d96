"""Pairs of MNIST digits, built the way the exercise builds them.

Each pair is two random digits, 2x2 average-pooled to 14x14 and stacked as
two channels (N x 14 x 14 x 2, channels last, values in [0, 1]). The target
is 1 when the first digit is <= the second (so about 55% ones: 55 of the 100
ordered class pairs), and the two digit classes are the auxiliary labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from hybridvision.common.data.mnist import load_mnist

log = logging.getLogger("hybridvision")


@dataclass
class PairSet:
    """`x` (N, S, S, 2) float32, `target` (N,) int32, `classes` (N, 2) int32."""

    x: np.ndarray
    target: np.ndarray
    classes: np.ndarray

    def __len__(self):
        return len(self.target)

    def take(self, index) -> PairSet:
        return PairSet(self.x[index], self.target[index], self.classes[index])


def pool_digits(images: np.ndarray, size: int = 14) -> np.ndarray:
    """Average-pools uint8 (N, 28, 28) digits to (N, size, size) floats in [0, 1]."""
    n, h, w = images.shape
    if h % size or w % size:
        raise ValueError(f"--image-size {size} must divide the digits' size {h}x{w}")
    f = h // size
    pooled = images.reshape(n, size, f, size, f).astype(np.float32).mean(axis=(2, 4))
    return pooled / 255.0


def make_pairs(images: np.ndarray, labels: np.ndarray, n_pairs: int, rng: np.random.Generator, size: int = 14) -> PairSet:
    """Draws `n_pairs` pairs of distinct random digits from `images`/`labels`.

    When the pool holds fewer than 2 * n_pairs digits (the small demo data),
    digits are reused, each at most once per pass over the pool.
    """
    if n_pairs < 1:
        raise ValueError(f"--pairs must be at least 1, got {n_pairs}")
    pool = len(labels)
    if pool < 2:
        raise ValueError(f"need at least 2 digits to make pairs, got {pool}")
    passes = -(-2 * n_pairs // pool)
    if passes > 1:
        log.warning("only %d digits for %d pairs: digits are reused (%d passes)", pool, n_pairs, passes)
    index = np.concatenate([rng.permutation(pool) for _ in range(passes)])[: 2 * n_pairs].reshape(n_pairs, 2)
    digits = pool_digits(images[index.reshape(-1)], size).reshape(n_pairs, 2, size, size)
    classes = labels[index].astype(np.int32)
    target = (classes[:, 0] <= classes[:, 1]).astype(np.int32)
    return PairSet(np.ascontiguousarray(digits.transpose(0, 2, 3, 1)), target, classes)


def load_pair_splits(data_dir: str | Path, n_pairs: int, val_fraction: float, seed: int, size: int = 14):
    """Train/val/test pair sets from MNIST at `data_dir`, and notes on how they were made.

    With both MNIST splits, train pairs come from the train digits and test
    pairs from the test digits. With only one split (the shared real sample
    has only t10k), train pairs come from its first half and test pairs from
    its second half, so no digit image is in both.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    digits = load_mnist(data_dir)
    notes = {}
    if "train" in digits and "test" in digits:
        train_pool, test_pool = digits["train"], digits["test"]
        notes["pair_source"] = "train pairs from MNIST train, test pairs from MNIST test"
    else:
        (split, (images, labels)), = digits.items()
        half = len(labels) // 2
        train_pool, test_pool = (images[:half], labels[:half]), (images[half:], labels[half:])
        notes["pair_source"] = (
            f"only the MNIST {split} split was found: train pairs from its first {half} digits, "
            f"test pairs from its last {len(labels) - half}"
        )
        log.warning("%s", notes["pair_source"])
    rng = np.random.default_rng(seed)
    train_all = make_pairs(*train_pool, n_pairs, rng, size)
    test = make_pairs(*test_pool, n_pairs, rng, size)
    n_val = round(n_pairs * val_fraction)
    if n_val < 1 or n_val >= n_pairs:
        raise ValueError(f"--val-fraction {val_fraction} of {n_pairs} pairs leaves an empty train or val split")
    splits = {"train": train_all.take(slice(0, n_pairs - n_val)), "val": train_all.take(slice(n_pairs - n_val, None)), "test": test}
    notes["pairs"] = {name: len(s) for name, s in splits.items()}
    notes["share_of_ones"] = {name: round(float(s.target.mean()), 3) for name, s in splits.items()}
    return splits, notes


def targets(pairs: PairSet, with_digits: bool) -> dict:
    """The label dict for a model: the comparison, plus the two digit classes for aux models."""
    y = {"compare": pairs.target}
    if with_digits:
        y.update(digit_a=pairs.classes[:, 0], digit_b=pairs.classes[:, 1])
    return y


def _random_shift(x, max_shift: int, seed: int):
    # Each digit (channel) moves on its own, as two independent handwritten digits would.
    size = x.shape[0]
    padded = tf.pad(x, [[max_shift, max_shift], [max_shift, max_shift], [0, 0]])
    channels = [
        tf.image.stateless_random_crop(padded[..., c : c + 1], (size, size, 1), seed=seed + c)
        for c in range(x.shape[-1])
    ]
    return tf.concat(channels, axis=-1)


def make_dataset(pairs: PairSet, with_digits: bool, batch_size: int, shuffle: bool = False, seed: int = 0, shift: int = 0):
    """A batched tf.data pipeline of (pairs, label dict); shuffled and shifted for training."""
    ds = tf.data.Dataset.from_tensor_slices((pairs.x, targets(pairs, with_digits)))
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if shift > 0:
        # A counter gives every example of every epoch its own stateless seed.
        counter = tf.data.Dataset.counter(start=seed * 1_000_003)
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda xy, k: (_random_shift(xy[0], shift, tf.stack([k, k * 7 + 1])), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
