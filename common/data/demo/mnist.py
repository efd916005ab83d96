"""MNIST IDX files drawn from scikit-learn's bundled 8x8 digits: the `mnist` demo dataset."""

import gzip
import struct

import cv2
import numpy as np

from hybridvision.common.data.demo.primitives import COUNTS


def generate_mnist(out, rng, scale):
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = rng.permutation(len(digits.target))
    n_src_train = int(len(order) * 0.67)
    pools = {"train": order[:n_src_train], "t10k": order[n_src_train:]}
    n_train, n_test = COUNTS[scale]["mnist"]
    for prefix, count in (("train", n_train), ("t10k", n_test)):
        pool = pools[prefix]
        picks = np.concatenate([rng.permutation(pool) for _ in range(count // len(pool) + 1)])
        picks = picks[:count]
        images = np.empty((count, 28, 28), np.uint8)
        for i, src in enumerate(picks):
            images[i] = _mnist_digit(rng, digits.images[src])
        labels = digits.target[picks].astype(np.uint8)
        header = struct.pack(">IIII", 2051, count, 28, 28)
        _write_gz(out / f"{prefix}-images-idx3-ubyte.gz", header + images.tobytes())
        _write_gz(
            out / f"{prefix}-labels-idx1-ubyte.gz",
            struct.pack(">II", 2049, count) + labels.tobytes(),
        )
    return (
        "MNIST IDX files (gzipped) with 28x28 digits: scikit-learn's bundled 8x8 digits\n"
        "(load_digits, no download) upsampled to 20x20, centred in 28x28, randomly shifted\n"
        f"and rotated a little. {n_train} train / {n_test} test; train and test digits come\n"
        "from disjoint source digits."
    )


def _mnist_digit(rng, src8):
    d = cv2.resize(src8.astype(np.float32) / 16.0, (20, 20), interpolation=cv2.INTER_CUBIC)
    d = np.clip(d * 1.4 - 0.1, 0, 1)  # MNIST strokes are saturated, the background black
    angle = rng.uniform(-8, 8)
    zoom = rng.uniform(0.9, 1.1)
    m = cv2.getRotationMatrix2D((9.5, 9.5), angle, zoom)
    m[:, 2] += (14 - 9.5 + rng.uniform(-1.5, 1.5), 14 - 9.5 + rng.uniform(-1.5, 1.5))
    out = cv2.warpAffine(d, m, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.clip(out * 255, 0, 255).astype(np.uint8)


def _write_gz(path, data):
    # mtime=0 and no file name in the header keep the bytes reproducible.
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as f,
    ):
        f.write(data)
