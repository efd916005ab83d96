"""The MNIST IDX / .npz reader: formats, file finding and clear errors on bad files."""

import gzip
import logging
import struct

import numpy as np
import pytest

from hybridvision.common.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, load_mnist, read_idx


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def _digits(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def _write(folder, prefix, images, labels, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array, magic, rank in (("images", images, IMAGES_MAGIC, 3), ("labels", labels, LABELS_MAGIC, 1)):
        data = _idx_bytes(array, magic)
        name = f"{prefix}-{kind}-idx{rank}-ubyte"
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    images, labels = _digits()
    _write(tmp_path, "t10k", images, labels, gz=gz)
    suffix = ".gz" if gz else ""
    got_images = read_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", IMAGES_MAGIC)
    got_labels = read_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", LABELS_MAGIC)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_images.shape == (6, 28, 28)


def test_read_idx_big_endian_int32(tmp_path):
    values = np.array([[1, -2, 70000], [3, 4, 5]], dtype=">i4")
    path = tmp_path / "ints.idx"
    path.write_bytes(struct.pack(">III", 0x0C02, 2, 3) + values.tobytes())
    got = read_idx(path)
    np.testing.assert_array_equal(got, [[1, -2, 70000], [3, 4, 5]])
    assert got.dtype == np.int32 and got.dtype.isnative


def test_truncated_raw_file_names_file_and_expected_size(tmp_path):
    images, _ = _digits(4)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx_bytes(images, IMAGES_MAGIC)[:-100])
    expected = 16 + 4 * 28 * 28
    with pytest.raises(ValueError, match=rf"train-images-idx3-ubyte is truncated: expected {expected} bytes"):
        read_idx(path, IMAGES_MAGIC)


def test_truncated_gzip_stream(tmp_path):
    images, _ = _digits(4)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    compressed = gzip.compress(_idx_bytes(images, IMAGES_MAGIC))
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz.*truncated"):
        read_idx(path)


def test_gzip_of_truncated_data_reports_expected_bytes(tmp_path):
    images, _ = _digits(4)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(images, IMAGES_MAGIC)[:500]))
    with pytest.raises(ValueError, match=r"is truncated: expected 3152 bytes.*found 500"):
        read_idx(path)


def test_wrong_magic_and_swapped_files(tmp_path):
    _, labels = _digits()
    path = tmp_path / "labels"
    path.write_bytes(_idx_bytes(labels, LABELS_MAGIC))
    with pytest.raises(ValueError, match=r"magic number 2049, expected 2051"):
        read_idx(path, IMAGES_MAGIC)
    junk = tmp_path / "junk"
    junk.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(ValueError, match=r"junk: magic number \d+ is not an IDX header"):
        read_idx(junk)
    longer = tmp_path / "long"
    longer.write_bytes(_idx_bytes(labels, LABELS_MAGIC) + b"\x00\x00")
    with pytest.raises(ValueError, match=r"long: 16 bytes but its header"):
        read_idx(longer)


def test_load_mnist_finds_both_splits(tmp_path):
    train, test = _digits(6, 1), _digits(4, 2)
    _write(tmp_path, "train", *train, gz=True)
    _write(tmp_path, "t10k", *test, gz=False)  # mixed compression is fine
    splits = load_mnist(tmp_path)
    assert sorted(splits) == ["test", "train"]
    np.testing.assert_array_equal(splits["train"][0], train[0])
    np.testing.assert_array_equal(splits["test"][1], test[1])


def test_load_mnist_only_test_split_says_so(tmp_path, caplog):
    _write(tmp_path, "t10k", *_digits(4))
    with caplog.at_level(logging.WARNING, logger="hybridvision"):
        splits = load_mnist(tmp_path)
    assert list(splits) == ["test"]
    assert "only the test split" in caplog.text


def test_load_mnist_npz_file_and_folder(tmp_path):
    (x_train, y_train), (x_test, y_test) = _digits(5, 3), _digits(3, 4)
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    for source in (tmp_path / "mnist.npz", tmp_path):
        splits = load_mnist(source)
        np.testing.assert_array_equal(splits["train"][0], x_train)
        np.testing.assert_array_equal(splits["test"][1], y_test)
    np.savez(tmp_path / "other.npz", images=x_train)
    with pytest.raises(ValueError, match=r"other\.npz: expected the keys x_train"):
        load_mnist(tmp_path / "other.npz")


def test_load_mnist_missing_and_mismatched_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no MNIST files; expected train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no such folder"):
        load_mnist(tmp_path / "nope")
    images, labels = _digits(4)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images, IMAGES_MAGIC)))
    with pytest.raises(FileNotFoundError, match=r"not t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels[:3], LABELS_MAGIC)))
    with pytest.raises(ValueError, match=r"4 images but 3 labels"):
        load_mnist(tmp_path)


def test_load_mnist_reads_demo_data(tmp_path):
    from hybridvision.common.data.demo import generate

    folder = generate("mnist", tmp_path / "mnist", scale="tiny")
    splits = load_mnist(folder)
    assert splits["train"][0].shape == (40, 28, 28) and splits["test"][0].shape == (20, 28, 28)
    assert set(np.unique(splits["train"][1])) <= set(range(10))
