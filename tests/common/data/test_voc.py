"""VOC reader: XML -> multi-hot labels and boxes, bad files, patches, weights, pipelines."""

import logging
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from hybridvision.common.data.demo import generate
from hybridvision.common.data.voc import (
    VOC_CLASSES,
    cache_patches,
    full_dataset,
    label_matrix,
    patch_dataset,
    patch_table,
    positive_weights,
    read_train_val,
    read_voc,
    split_train_val,
)  # fmt: skip


def _xml(image_id, width, height, objects):
    """VOC XML text; objects are (name, xmin, ymin, xmax, ymax[, difficult])."""
    rows = []
    for obj in objects:
        name, x0, y0, x1, y1, *rest = obj
        difficult = rest[0] if rest else 0
        rows.append(
            f"<object><name>{name}</name><difficult>{difficult}</difficult>"
            f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        )
    return (
        f"<annotation><filename>{image_id}.jpg</filename>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>{''.join(rows)}</annotation>"
    )


def _voc_tree(root, annotations, split="train", size=(100, 80)):
    """A VOC folder whose images are a horizontal ramp (pixel value = column), one per id."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    width, height = size
    ramp = np.repeat(np.tile(np.arange(width, dtype=np.uint8)[None, :], (height, 1))[..., None], 3, axis=2)
    for image_id, text in annotations.items():
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), ramp, [cv2.IMWRITE_JPEG_QUALITY, 100])
        (root / "Annotations" / f"{image_id}.xml").write_text(text)
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(annotations) + "\n")
    return root


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    return generate("voc", tmp_path_factory.mktemp("voc"), scale="tiny") / "VOC2012"


def test_read_voc_matches_the_xml_of_generated_data(tiny_voc):
    images, boxes = read_voc(tiny_voc, "train")
    ids = (tiny_voc / "ImageSets/Main/train.txt").read_text().split()
    assert list(images["image_id"]) == ids
    assert images.attrs["problems"] == []
    for image_id in ids:
        root = ET.parse(tiny_voc / "Annotations" / f"{image_id}.xml").getroot()
        names = {o.findtext("name") for o in root.findall("object")}
        row = images[images["image_id"] == image_id].iloc[0]
        assert {c for c in VOC_CLASSES if row[c] == 1} == names
        assert len(boxes[boxes["image_id"] == image_id]) == len(root.findall("object"))
    assert label_matrix(images).shape == (len(ids), 20)
    assert (boxes["label"] == [VOC_CLASSES.index(c) for c in boxes["class_name"]]).all()


def test_multi_hot_and_boxes_of_a_hand_written_file(tmp_path):
    text = _xml("a", 100, 80, [("dog", 1, 1, 64, 64), ("person", 10, 5, 30, 70), ("dog", 50, 2, 90, 40, 1)])
    images, boxes = read_voc(_voc_tree(tmp_path, {"a": text}), "train")
    row = images.iloc[0]
    assert (row["width"], row["height"]) == (100, 80)
    assert {c for c in VOC_CLASSES if row[c]} == {"dog", "person"}
    assert list(boxes["class_name"]) == ["dog", "person", "dog"]
    assert list(boxes["difficult"]) == [0, 0, 1]
    assert boxes.iloc[1][["xmin", "ymin", "xmax", "ymax"]].tolist() == [10, 5, 30, 70]
    # Difficult objects can be left out of both labels and boxes.
    images, boxes = read_voc(tmp_path, "train", exclude_difficult=True)
    assert len(boxes) == 2 and images.iloc[0]["dog"] == 1


BAD = {
    "good": _xml("good", 100, 80, [("cat", 1, 1, 50, 50)]),
    "broken": "<annotation><size><width>100</wid",
    "nosize": "<annotation><object><name>cat</name></object></annotation>",
    "outside": _xml("outside", 100, 80, [("cat", 1, 1, 50, 50), ("dog", 20, 20, 150, 60)]),
    "unknown": _xml("unknown", 100, 80, [("unicorn", 1, 1, 50, 50), ("bird", 1, 1, 40, 40)]),
}


def test_bad_files_are_skipped_and_named(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hybridvision"):
        images, boxes = read_voc(_voc_tree(tmp_path, BAD), "train", on_error="skip")
    problems = images.attrs["problems"]
    assert len(problems) == 4
    assert any("broken.xml" in p and "malformed XML" in p for p in problems)
    assert any("nosize.xml" in p and "<size>" in p for p in problems)
    assert any("outside.xml" in p and "outside the 100x80 image" in p for p in problems)
    assert any("unknown.xml" in p and "'unicorn'" in p for p in problems)
    assert "skipped 4 bad annotation(s)" in caplog.text
    # Malformed files drop the image; a bad object drops only itself (a box
    # outside the image keeps its label: the annotator saw the object).
    assert list(images["image_id"]) == ["good", "outside", "unknown"]
    outside = images[images["image_id"] == "outside"].iloc[0]
    assert outside["dog"] == 1 and outside["cat"] == 1
    assert set(boxes[boxes["image_id"] == "outside"]["class_name"]) == {"cat"}
    unknown = images[images["image_id"] == "unknown"].iloc[0]
    assert {c for c in VOC_CLASSES if unknown[c]} == {"bird"}


@pytest.mark.parametrize("bad_id, message", [("broken", "malformed XML"), ("outside", "outside"), ("unknown", "unknown class")])
def test_fail_mode_raises_with_the_file_name(tmp_path, bad_id, message):
    root = _voc_tree(tmp_path, {"good": BAD["good"], bad_id: BAD[bad_id]})
    with pytest.raises(ValueError, match=rf"{bad_id}\.xml.*{message}.*--on-bad-annotation skip"):
        read_voc(root, "train", on_error="fail")


def test_missing_layout_and_bad_flag_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Annotations"):
        read_voc(tmp_path, "train")
    root = _voc_tree(tmp_path / "v", {"good": BAD["good"]})
    with pytest.raises(FileNotFoundError, match="val.txt"):
        read_voc(root, "val")
    with pytest.raises(ValueError, match="--on-bad-annotation"):
        read_voc(root, "train", on_error="ignore")
    (root / "JPEGImages" / "good.jpg").unlink()
    with pytest.raises(ValueError, match="no usable annotations"):
        read_voc(root, "train")


def test_train_val_split_without_val_txt_is_seeded_and_noted(tmp_path):
    ids = {f"i{k}": _xml(f"i{k}", 100, 80, [("cat", 1, 1, 70, 70)]) for k in range(10)}
    root = _voc_tree(tmp_path, ids)
    splits, note = read_train_val(root, val_fraction=0.3, seed=3)
    train, val = splits["train"][0], splits["val"][0]
    assert len(val) == 3 and len(train) == 7 and not set(train["image_id"]) & set(val["image_id"])
    assert "val.txt is missing" in note and "seed 3" in note
    again, _ = read_train_val(root, val_fraction=0.3, seed=3)
    assert list(again["val"][0]["image_id"]) == list(val["image_id"])
    assert set(splits["val"][1]["image_id"]) <= set(val["image_id"])
    with pytest.raises(ValueError, match="--val-fraction"):
        split_train_val(*read_voc(root, "train"), val_fraction=1.5)


def test_read_train_val_uses_val_txt_when_there(tiny_voc):
    splits, note = read_train_val(tiny_voc)
    assert note is None
    assert list(splits["val"][0]["image_id"]) == (tiny_voc / "ImageSets/Main/val.txt").read_text().split()


def test_positive_weights_are_negatives_over_positives_clipped():
    labels = np.zeros((10, 4))
    labels[:5, 0] = 1  # 5 pos / 5 neg -> 1
    labels[:1, 1] = 1  # 1 / 9 -> 9
    labels[:, 2] = 1  # 10 / 0 -> 0, clipped to 1 / max
    weights = positive_weights(labels, max_weight=5.0)
    np.testing.assert_allclose(weights, [1.0, 5.0, 0.2, 5.0])  # class 3: no positives -> max
    np.testing.assert_allclose(positive_weights(labels, max_weight=50.0)[:3], [1.0, 9.0, 1 / 50])
    with pytest.raises(ValueError, match="non-empty"):
        positive_weights(np.zeros((0, 20)))


def test_patch_table_keeps_boxes_of_min_size_with_their_labels(tmp_path):
    # Inclusive VOC boxes: 1..64 is 64 px; 1..63 is 63 px.
    objects = [("dog", 1, 1, 64, 64), ("cat", 1, 1, 63, 80), ("car", 10, 2, 90, 64), ("bus", 30, 10, 100, 80)]
    _, boxes = read_voc(_voc_tree(tmp_path, {"a": _xml("a", 100, 80, objects)}), "train")
    patches = patch_table(boxes, min_size=64)
    assert list(patches["class_name"]) == ["dog", "bus"]
    assert list(patches["label"]) == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("bus")]
    assert len(patch_table(boxes, min_size=63)) == 4
    with pytest.raises(ValueError, match="--min-patch"):
        patch_table(boxes, min_size=0)


def test_cache_patches_crops_the_boxes_once(tmp_path):
    objects = [("dog", 1, 1, 64, 64), ("bus", 31, 11, 100, 80)]
    _, boxes = read_voc(_voc_tree(tmp_path / "voc", {"a": _xml("a", 100, 80, objects)}), "train")
    cache = tmp_path / "cache"
    patches = cache_patches(patch_table(boxes, 64), cache)
    crops = [cv2.imread(p) for p in patches["patch_path"]]
    assert [c.shape[:2] for c in crops] == [(64, 64), (70, 70)]
    # The ramp image's pixel value is its column: the bus crop starts at column 30 (xmin 31, 1-based).
    assert abs(int(crops[1][35, 0, 0]) - 30) <= 2 and abs(int(crops[1][35, -1, 0]) - 99) <= 2
    # A second call reuses the files (a marked crop survives); another min size gets its own folder.
    marked = patches["patch_path"][0]
    cv2.imwrite(marked, np.zeros((5, 5, 3), np.uint8))
    again = cache_patches(patch_table(boxes, 64), cache)
    assert list(again["patch_path"]) == list(patches["patch_path"])
    assert cv2.imread(marked).shape[:2] == (5, 5)
    other = cache_patches(patch_table(boxes, 65), cache)
    assert len(other) == 1 and other["patch_path"][0] not in set(patches["patch_path"])


def test_full_and_patch_datasets_give_the_right_batches(tiny_voc, tmp_path):
    images, boxes = read_voc(tiny_voc, "train")
    x, y = next(iter(full_dataset(images, 32, 2, shuffle=True, seed=1, augment=True)))
    assert x.shape == (2, 32, 32, 3) and x.dtype == "float32" and y.shape == (2, 20)
    ordered = np.concatenate([np.asarray(b[1]) for b in full_dataset(images, 32, 4)])
    np.testing.assert_array_equal(ordered, label_matrix(images))
    patches = cache_patches(patch_table(boxes, 32), tmp_path / "cache")
    labels = np.concatenate([np.asarray(b[1]) for b in patch_dataset(patches, 32, 4)])
    np.testing.assert_array_equal(labels, patches["label"].to_numpy())
    with pytest.raises(ValueError, match="cache_patches"):
        patch_dataset(patch_table(boxes, 32), 32, 4)
