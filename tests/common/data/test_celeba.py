"""CelebA reader: attribute/partition/landmark parsing, errors, fallback split, and CelebA through the image-table
pipeline (`from_celeba`)."""

import logging

import numpy as np
import pytest

from hybridvision.common.data.celeba import (
    attribute_names,
    check_attributes,
    read_attributes,
    read_celeba,
    read_partition,
    split_partitions,
)
from hybridvision.common.data.demo import generate
from hybridvision.common.data.image_table import from_celeba, make_dataset
from hybridvision.common.data.names import CELEBA_ATTRIBUTE_NAMES as CELEBA_ATTRIBUTES


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    return generate("celeba", tmp_path_factory.mktemp("celeba"), scale="tiny")


def _write_layout(root, rows, partitions, names=("Attractive", "Male", "Smiling"), images=None):
    """A hand-written CelebA layout: rows of (file, values), partition codes, and which images exist."""
    import cv2

    (root / "img_align_celeba").mkdir(parents=True)
    lines = [str(len(rows)), " ".join(names)]
    lines += [f"{f} " + " ".join(f"{v:2d}" for v in values) for f, values in rows]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for (f, _), p in zip(rows, partitions)))
    for f, _ in rows if images is None else [(f, None) for f in images]:
        cv2.imwrite(str(root / "img_align_celeba" / f), np.full((12, 10, 3), 128, np.uint8))
    return root


def _rows(n):
    rng = np.random.default_rng(0)
    return [(f"{i + 1:06d}.jpg", list(rng.choice([1, -1], size=3))) for i in range(n)]


def test_attributes_and_partition_are_parsed(tmp_path):
    rows = [("000001.jpg", [1, -1, 1]), ("000002.jpg", [-1, 1, -1]), ("000003.jpg", [-1, -1, 1])]
    root = _write_layout(tmp_path, rows, [0, 1, 2])
    attrs = read_attributes(root / "list_attr_celeba.txt")
    assert list(attrs.columns) == ["file", "Attractive", "Male", "Smiling"]
    np.testing.assert_array_equal(attrs[["Attractive", "Male", "Smiling"]].to_numpy(), [[1, 0, 1], [0, 1, 0], [0, 0, 1]])
    assert list(read_partition(root / "list_eval_partition.txt")["partition"]) == ["train", "val", "test"]
    table = read_celeba(root)
    assert list(table.columns[:3]) == ["path", "file", "partition"]
    assert table["path"].iloc[1].endswith("img_align_celeba/000002.jpg")
    assert table.attrs["attribute_names"] == ["Attractive", "Male", "Smiling"]
    assert attribute_names(root) == ["Attractive", "Male", "Smiling"] == attribute_names(table)


def test_official_files_with_landmarks(celeba_root):
    table = read_celeba(celeba_root, landmarks=True)
    assert table.attrs["attribute_names"] == list(CELEBA_ATTRIBUTES)
    assert table.attrs["landmark_names"][:2] == ["lefteye_x", "lefteye_y"]
    assert set(table[list(CELEBA_ATTRIBUTES)].stack().unique()) <= {0, 1}
    # The generator's partition is 70/15/15 of 20 images.
    assert table["partition"].value_counts().to_dict() == {"train": 14, "val": 3, "test": 3}
    raw = (celeba_root / "list_attr_celeba.txt").read_text().splitlines()[2].split()
    col = list(CELEBA_ATTRIBUTES).index("Attractive") + 1
    assert table["Attractive"].iloc[0] == (1 if raw[col] == "1" else 0)
    tables, note = split_partitions(table)
    assert note is None and [len(tables[s]) for s in ("train", "val", "test")] == [14, 3, 3]


def test_missing_files_and_bad_headers_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_celeba(tmp_path / "nowhere")
    root = _write_layout(tmp_path / "a", _rows(3), [0, 0, 0])
    (root / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt"):
        read_celeba(root)
    root = _write_layout(tmp_path / "b", _rows(3), [0, 0, 0])
    text = (root / "list_attr_celeba.txt").read_text().splitlines()
    (root / "list_attr_celeba.txt").write_text("\n".join(text[1:]) + "\n")  # count line dropped
    with pytest.raises(ValueError, match="line 1 must be the image count"):
        read_celeba(root)
    root = _write_layout(tmp_path / "c", _rows(3), [0, 0, 0], names=("Attractive", "Male"))
    with pytest.raises(ValueError, match="header names 2 columns but rows have 3"):
        read_celeba(root)
    root = _write_layout(tmp_path / "d", [("000001.jpg", [1, 0, 1])], [0])
    with pytest.raises(ValueError, match="must be 1 or -1; row 3 \\(000001.jpg\\) has 0 for Male$"):
        read_celeba(root)
    root = _write_layout(tmp_path / "e", _rows(2), [0, 7])
    with pytest.raises(ValueError, match="0 \\(train\\), 1 \\(val\\) or 2 \\(test\\); line 2 \\(000002.jpg\\) has 7$"):
        read_celeba(root)


def test_files_longer_than_a_chunk_read_whole_and_name_the_first_bad_value(tmp_path, monkeypatch):
    from hybridvision.common.data import celeba_files

    monkeypatch.setattr(celeba_files, "READ_CHUNK_ROWS", 2)  # 7 rows: four chunks
    rows = _rows(7)
    root = _write_layout(tmp_path / "a", rows, [0, 0, 0, 1, 1, 2, 2])
    table = read_celeba(root)
    assert list(table["file"]) == [f for f, _ in rows]
    np.testing.assert_array_equal(table[["Attractive", "Male", "Smiling"]].to_numpy(),
                                  (np.array([v for _, v in rows]) > 0).astype(int))
    assert list(table["partition"]) == ["train"] * 3 + ["val"] * 2 + ["test"] * 2
    # The first bad value in reading order (row, then column), whichever column and chunk it is in.
    bad = rows[:4] + [(rows[4][0], [1, -1, 0]), (rows[5][0], [5, 1, 1]), rows[6]]
    root = _write_layout(tmp_path / "b", bad, [0] * 7)
    with pytest.raises(ValueError, match="must be 1 or -1; row 7 \\(000005.jpg\\) has 0 for Smiling$"):
        read_celeba(root)
    root = _write_layout(tmp_path / "c", rows, [0] * 7)
    text = (root / "list_attr_celeba.txt").read_text().replace("000006.jpg  1", "000006.jpg  x").replace(
        "000006.jpg -1", "000006.jpg  x")
    (root / "list_attr_celeba.txt").write_text(text)
    with pytest.raises(ValueError, match="row 8 \\(000006.jpg\\) has 'x' for Attractive$"):
        read_celeba(root)
    with open(root / "list_eval_partition.txt", "a") as f:  # a repeat in another chunk is still found
        f.write("000001.jpg 1\n")
    with pytest.raises(ValueError, match=r"000001.jpg \(lines 1, 8\)"):
        read_partition(root / "list_eval_partition.txt")


def test_images_listed_twice_are_refused_with_their_lines(tmp_path, string_storage):
    rows = _rows(6)
    twice = rows + [(rows[1][0], [-v for v in rows[1][1]]), rows[4]]  # 000002.jpg again with every value flipped
    root = _write_layout(tmp_path / "a", twice, [0] * 8)
    with pytest.raises(ValueError) as err:
        read_celeba(root)
    assert str(err.value) == (f"{root / 'list_attr_celeba.txt'} lists 2 image(s) more than once: 000002.jpg (lines 4, 9), "
                              "000005.jpg (lines 7, 10); keep one row per image")
    root = _write_layout(tmp_path / "b", rows, [0] * 6)
    with open(root / "list_eval_partition.txt", "a") as f:
        f.write("000003.jpg 2\n")
    with pytest.raises(ValueError, match=r"list_eval_partition.txt lists 1 image\(s\) more than once: 000003.jpg "
                       r"\(lines 3, 7\); keep one row per image"):
        read_celeba(root)


def test_a_typo_in_the_names_line_blames_the_file_not_the_flag(tmp_path):
    names = list(CELEBA_ATTRIBUTES)
    names[names.index("Attractive")] = "Atractive"
    with pytest.raises(ValueError) as err:
        check_attributes(["Attractive"], names, flag="--target")
    message = str(err.value)
    assert message.startswith("list_attr_celeba.txt: its names line (line 2) holds 39 of CelebA's 40 attribute names "
                              "and 1 other ('Atractive'), so Attractive is missing; check line 2 for a typo"), message
    assert "--target" not in message
    # A file of one's own attributes (none of CelebA's) still lists what it has for the flag.
    with pytest.raises(ValueError, match="--target: unknown CelebA attribute"):
        check_attributes(["Pretty"], names, flag="--target")


def test_unknown_attribute_lists_the_valid_names(celeba_root):
    table = read_celeba(celeba_root)
    with pytest.raises(ValueError) as err:
        check_attributes(["Male", "Handsome"], attribute_names(table))
    message = str(err.value)
    assert "--covariates" in message and "Handsome" in message and "valid names (40)" in message
    assert all(name in message for name in CELEBA_ATTRIBUTES)
    with pytest.raises(ValueError, match="--target: unknown CelebA attribute"):
        from_celeba(celeba_root, "Pretty", ["Male"])


def test_missing_images_are_counted_and_reported(tmp_path, caplog):
    rows = _rows(5)
    root = _write_layout(tmp_path, rows, [0] * 5, images=["000001.jpg", "000003.jpg", "000004.jpg"])
    with caplog.at_level(logging.WARNING, logger="hybridvision"):
        table = read_celeba(root)
    assert len(table) == 3 and table.attrs["missing_images"] == 2
    assert "2 of the 5 images" in caplog.text and "000002.jpg" in caplog.text


def test_fallback_split_of_train_rows(tmp_path, caplog):
    root = _write_layout(tmp_path, _rows(40), [0] * 40)
    table = read_celeba(root)
    with caplog.at_level(logging.WARNING, logger="hybridvision"):
        tables, note = split_partitions(table, seed=3)
    sizes = [len(tables[s]) for s in ("train", "val", "test")]
    assert sizes == [28, 6, 6]
    assert "no val or test rows" in note and "28/6/6" in note and "seed 3" in note
    assert "fallback split" in caplog.text
    files = [set(tables[s]["file"]) for s in ("train", "val", "test")]
    assert set().union(*files) == set(table["file"]) and sum(map(len, files)) == 40
    again, _ = split_partitions(table, seed=3)
    other, _ = split_partitions(table, seed=4)
    assert set(again["test"]["file"]) == files[2] and set(other["test"]["file"]) != files[2]
    # Only the lacking part is drawn from train: official val rows stay.
    root = _write_layout(tmp_path / "val_only", _rows(20), [0] * 16 + [1] * 4)
    tables, note = split_partitions(read_celeba(root))
    assert "no test rows" in note and len(tables["val"]) == 4 and len(tables["test"]) == 2


def test_dataset_yields_images_raw_covariates_and_target(celeba_root):
    from hybridvision.common.covariate_coding import fit_coding

    tables, _, data = from_celeba(celeba_root, "Attractive", ["Male", "Smiling"])
    coding = fit_coding(tables["train"], ["Male", "Smiling"], data.kinds)
    ds = make_dataset(tables["train"], coding, 2, (16, 12), 4, shuffle=False)
    inputs, target = next(iter(ds))
    images = inputs["image"]
    assert images.shape == (4, 16, 12, 3) and target.shape == (4, 1)
    # Raw 8-bit pixel values: normalising is the model's job.
    pixels = images.numpy()
    assert 0.0 <= float(pixels.min()) and float(pixels.max()) <= 255.0 and float(pixels.max()) > 1.0
    np.testing.assert_array_equal(pixels, np.round(pixels))
    # The covariates as the file's yes/no values, the target as 0/1.
    table = read_celeba(celeba_root).set_index("path")
    paths = tables["train"]["path"][:4]
    for name in ("Male", "Smiling"):
        np.testing.assert_array_equal(np.asarray(inputs[name]).astype(float).ravel(), table.loc[paths, name].to_numpy())
    np.testing.assert_array_equal(target.numpy()[:, 0], table.loc[paths, "Attractive"].to_numpy())
    x, y = next(iter(make_dataset(tables["val"], None, 2, (8, 8), 2, shuffle=False)))
    assert x.shape == (2, 8, 8, 3) and y.shape == (2, 1)


def test_corrupt_images_are_skipped_and_logged(tmp_path, caplog):
    root = _write_layout(tmp_path, _rows(4), [0] * 4)
    (root / "img_align_celeba" / "000002.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with caplog.at_level(logging.WARNING, logger="hybridvision"):
        tables, _, _ = from_celeba(root, "Attractive", ["Male"], val_fraction=0.25, test_fraction=0.25)
    assert sum(len(t) for t in tables.values()) == 3
    assert all("000002.jpg" not in p for t in tables.values() for p in t["path"])
    assert "skipped 1 unreadable" in caplog.text and "000002.jpg" in caplog.text
