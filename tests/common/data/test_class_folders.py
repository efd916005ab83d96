import io
import logging
import zlib

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from hybridvision.common.data.affine_augment import AffineAugmentation
from hybridvision.common.data.class_folders import (
    image_dataset_from_folders,
    make_dataset,
    read_class_folders,
    split_table,
)

SIZE = (8, 10)


def save(path, mode="RGB", fmt=None, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = rng.integers(0, 256, (12, 14, channels), dtype=np.uint8) if value is None else None
    if value is not None:
        array = np.full((12, 14, channels), value, np.uint8)
    image = Image.fromarray(array[..., 0] if mode == "L" else array, mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt or path.suffix[1:].upper().replace("JPG", "JPEG"))
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture
def tree(tmp_path):
    """cat: 3 jpg, RGBA png, 2 broken jpg; dog: png, gray png, nested bmp; fish: gif, 2 jpg."""
    root = tmp_path / "images"
    for i in range(3):
        jpeg = save(root / "cat" / f"c{i}.jpg", value=10 + i)
    save(root / "cat" / "c_rgba.png", "RGBA")
    (root / "cat" / "zero.jpg").write_bytes(b"")
    (root / "cat" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "cat" / "notes.txt").write_text("not an image")
    save(root / "dog" / "d0.png")
    save(root / "dog" / "d1.png", "L")
    save(root / "dog" / "nested" / "d2.bmp")
    save(root / "fish" / "f0.gif")
    save(root / "fish" / "f1.jpg")
    save(root / "fish" / "f2.JPG")
    return root


def test_read_class_folders_builds_the_table(tree):
    table = read_class_folders(tree)
    assert list(table.columns) == ["path", "label", "class_name"]
    assert table.attrs["class_names"] == ["cat", "dog", "fish"]
    counts = table.groupby("class_name").size().to_dict()
    assert counts == {"cat": 6, "dog": 3, "fish": 3}  # txt ignored, nested and .JPG found
    assert (table["label"] == table["class_name"].map({"cat": 0, "dog": 1, "fish": 2})).all()
    assert any(p.endswith("nested/d2.bmp") for p in table["path"])


def test_read_class_folders_split_layout(tmp_path):
    for split in ("train", "val"):
        save(tmp_path / split / "a" / "x.png")
        save(tmp_path / split / "b" / "y.png")
    table = read_class_folders(tmp_path, split="val")
    assert table["class_name"].tolist() == ["a", "b"]
    assert all("/val/" in p for p in table["path"])
    with pytest.raises(FileNotFoundError, match=r"test.*found \['train', 'val'\]"):
        read_class_folders(tmp_path, split="test")
    with pytest.raises(ValueError, match="split"):
        read_class_folders(tmp_path, split="training")


def test_read_class_folders_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*<root>/<class>/\*\.jpg"):
        read_class_folders(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"No class folders in .*flat.*<root>/<class>"):
        read_class_folders(tmp_path / "flat")
    save(tmp_path / "root" / "full" / "a.png")
    (tmp_path / "root" / "hollow").mkdir()
    with pytest.raises(ValueError, match=r"Class folder .*hollow.* holds no images"):
        read_class_folders(tmp_path / "root")


def test_make_dataset_skips_and_logs_unreadable_images(tree, caplog):
    table = read_class_folders(tree)
    with caplog.at_level(logging.WARNING, logger="hybridvision"):
        dataset = make_dataset(table, SIZE, batch_size=4, shuffle=False)
    messages = [r.message for r in caplog.records if r.name == "hybridvision"]
    assert len(messages) == 1 and "skipped 2 unreadable images" in messages[0]
    assert "zero.jpg" in messages[0] and "truncated.jpg" in messages[0]
    batches = list(dataset)
    assert [tuple(x.shape) for x, _ in batches] == [(4, *SIZE, 3), (4, *SIZE, 3), (2, *SIZE, 3)]
    images = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert images.dtype == np.float32 and 0 <= images.min() and images.max() <= 255
    assert labels.dtype == np.int32 and labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    # The constant-valued JPEGs come back (nearly) at their value.
    np.testing.assert_allclose(images[:3].mean(axis=(1, 2, 3)), [10, 11, 12], atol=1.5)
    assert dataset.class_names == ["cat", "dog", "fish"]


def test_make_dataset_label_modes_extras_and_remainder(tree):
    table = read_class_folders(tree)
    table["age"] = np.arange(len(table), dtype=float)
    table["male"] = (np.arange(len(table)) % 2).astype(float)
    dataset = make_dataset(
        table,
        SIZE,
        3,
        shuffle=False,
        label_mode="categorical",
        extra_columns=["age", "male"],
        drop_remainder=True,
    )
    batches = list(dataset)
    assert len(batches) == 3  # 10 readable rows, last incomplete batch dropped
    (images, extras), labels = batches[0]
    assert tuple(images.shape) == (3, *SIZE, 3)
    assert extras.dtype == tf.float32 and extras.numpy().tolist() == [[0, 0], [1, 1], [2, 0]]
    np.testing.assert_array_equal(labels.numpy(), np.eye(3)[[0, 0, 0]])
    only_images = make_dataset(table, SIZE, 16, label_mode=None)
    assert tuple(next(iter(only_images)).shape) == (10, *SIZE, 3)
    with pytest.raises(ValueError, match=r"extra_columns.*\['height'\]"):
        make_dataset(table, SIZE, 2, extra_columns=["height"])
    with pytest.raises(ValueError, match="label_mode"):
        make_dataset(table, SIZE, 2, label_mode="binary")
    with pytest.raises(ValueError, match="`path` column"):
        make_dataset(table.drop(columns="path"), SIZE, 2)


def epoch_labels(dataset):
    return np.concatenate([y.numpy() for _, y in dataset]).tolist()


def test_make_dataset_shuffle_is_seeded_and_reshuffles(tree):
    table = read_class_folders(tree)
    first = make_dataset(table, SIZE, 4, seed=1)
    second = make_dataset(table, SIZE, 4, seed=1)
    assert epoch_labels(first) == epoch_labels(second)
    orders = [tuple(epoch_labels(first)) for _ in range(4)]
    assert len(set(orders)) > 1
    assert sorted(orders[0]) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_make_dataset_cache_and_augmentation_after_cache(tree, tmp_path):
    table = read_class_folders(tree)
    augment = AffineAugmentation(rotation_range=30, horizontal_flip=True, rescale=1 / 255, seed=0)
    for cache in (True, str(tmp_path / "cache")):
        dataset = make_dataset(table, SIZE, 4, cache=cache, augment=augment, seed=2)
        first, second = [np.concatenate([x.numpy() for x, _ in dataset]) for _ in range(2)]
        assert first.shape == (10, *SIZE, 3) and first.max() <= 1.0 + 1e-6
        # Cached decoded pixels, fresh augmentation every epoch.
        assert not np.allclose(np.sort(first.ravel()), np.sort(second.ravel()))
        assert sorted(epoch_labels(dataset)) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert list(tmp_path.glob("cache*"))


def test_split_table_is_seeded_stratified_and_disjoint():
    table = pd.DataFrame(
        {"path": [f"{i}.jpg" for i in range(100)], "label": [0] * 60 + [1] * 30 + [2] * 10}
    )
    table.attrs["class_names"] = ["a", "b", "c"]
    train, val = split_table(table, 0.2, seed=7)
    assert val["label"].value_counts().sort_index().tolist() == [12, 6, 2]
    assert set(train["path"]).isdisjoint(val["path"]) and len(train) + len(val) == 100
    assert train["path"].tolist() == sorted(train["path"], key=lambda p: int(p.split(".")[0]))
    _, again_val = split_table(table, 0.2, seed=7)
    pd.testing.assert_frame_equal(val, again_val)
    assert split_table(table, 0.2, seed=8)[1]["path"].tolist() != val["path"].tolist()
    assert val.attrs["class_names"] == ["a", "b", "c"]
    assert len(split_table(table, 0.3, seed=0, stratify=False)[1]) == 30
    with pytest.raises(ValueError, match="validation_split"):
        split_table(table, 1.0)


def test_image_dataset_from_folders_subsets(tree, caplog):
    augment = AffineAugmentation(rotation_range=20, rescale=1 / 255, seed=0)
    with caplog.at_level(logging.WARNING, logger="hybridvision"):
        train, val = image_dataset_from_folders(
            tree, SIZE, batch_size=2, validation_split=0.4, seed=3, augment=augment
        )
    assert sum("skipped 2 unreadable images" in r.message for r in caplog.records) == 1
    train_labels, val_labels = epoch_labels(train), epoch_labels(val)
    assert sorted(val_labels) == [0, 0, 1, 2]  # round(4 * .4), round(3 * .4) twice
    assert len(train_labels) == 6 and train.class_names == ["cat", "dog", "fish"]
    # Validation only gets the rescale, no random transform: the same every epoch.
    val_images = [np.concatenate([x.numpy() for x, _ in val]) for _ in range(2)]
    np.testing.assert_array_equal(*val_images)
    assert val_images[0].max() <= 1.0
    only_val = image_dataset_from_folders(
        tree, SIZE, 2, validation_split=0.4, subset="validation", seed=3
    )
    assert epoch_labels(only_val) == val_labels
    whole = image_dataset_from_folders(tree, SIZE, batch_size=4)
    assert len(epoch_labels(whole)) == 10
    with pytest.raises(ValueError, match="subset"):
        image_dataset_from_folders(tree, SIZE, 2, subset="training")
