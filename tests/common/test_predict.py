"""hybridvision.common.predict: the streaming, resumable folder labeller and its grid."""

import csv
import json

import cv2
import keras
import numpy as np
import pytest

from hybridvision.common.predict import (
    errors_path,
    label_folder,
    list_images,
    read_class_names,
    save_prediction_grid,
    write_class_names,
)

NAMES = ["left", "center", "right"]


def _model(size=8):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(7):
        sub = root / ("a" if i < 4 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{i}.png"), rng.integers(0, 255, (10, 12, 3), dtype=np.uint8))
    (root / "broken.jpg").write_bytes(b"not an image at all")
    (root / "notes.txt").write_text("ignored")
    return root


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_labels_every_image_and_lists_the_corrupt_one(folder, tmp_path):
    model = _model()
    out = tmp_path / "out" / "labels.csv"
    summary = label_folder(model, folder, out, NAMES, batch_size=3, progress=False)
    assert summary["images"] == 8 and summary["labelled"] == 7 and summary["errors"] == 1
    rows = _rows(out)
    assert list(rows[0]) == ["file", "label", "p_left", "p_center", "p_right"]
    assert sorted(r["file"] for r in rows) == sorted(["a/0.png", "a/1.png", "a/2.png", "a/3.png",
                                                      "b/c/4.png", "b/c/5.png", "b/c/6.png"])
    # Probabilities and labels match the model run directly on the same images.
    for row in rows:
        p = np.array([float(row[f"p_{n}"]) for n in NAMES])
        assert p.sum() == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == NAMES[int(p.argmax())]
        image = cv2.cvtColor(cv2.imread(str(folder / row["file"])), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype("float32")
        direct = model.predict_on_batch(image[None])[0]
        np.testing.assert_allclose(p, direct, atol=0.02)
    errors = _rows(errors_path(out))
    assert [e["file"] for e in errors] == ["broken.jpg"] and errors[0]["reason"]


def test_resume_after_interruption_has_no_duplicates(folder, tmp_path):
    model = _model()
    out = tmp_path / "labels.csv"
    label_folder(model, folder, out, NAMES, batch_size=2, progress=False)
    full = {r["file"]: r for r in _rows(out)}
    # Simulate a kill: keep the header and two rows, plus half of a third line.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:5])
    errors_path(out).unlink()
    summary = label_folder(model, folder, out, NAMES, batch_size=2, progress=False)
    assert summary["already_done"] == 2 and summary["labelled"] == 5 and summary["errors"] == 1
    rows = _rows(out)
    assert len(rows) == 7 and len({r["file"] for r in rows}) == 7
    for r in rows:
        assert r["label"] == full[r["file"]]["label"]
    # A finished run again: nothing new, nothing duplicated.
    again = label_folder(model, folder, out, NAMES, progress=False)
    assert again["labelled"] == 0 and again["errors"] == 0 and again["already_done"] == 8
    assert len(_rows(out)) == 7 and len(_rows(errors_path(out))) == 1


def test_saved_model_class_names_and_grid(folder, tmp_path):
    path = tmp_path / "m.keras"
    _model().save(path)
    write_class_names(path, NAMES, task="orientation")
    assert json.loads(path.with_suffix(".classes.json").read_text())["task"] == "orientation"
    assert read_class_names(path) == NAMES
    out = tmp_path / "labels.csv"
    label_folder(str(path), folder, out, read_class_names(path), progress=True)
    png = save_prediction_grid(out, folder, tmp_path / "grid.png")
    assert cv2.imread(str(png)) is not None


def test_clear_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="--images"):
        list_images(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="classes.json"):
        read_class_names(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="3 outputs but 2 class names"):
        label_folder(_model(), folder, tmp_path / "x.csv", ["a", "b"], progress=False)
    out = tmp_path / "other.csv"
    out.write_text("file,label,p_x\n")
    with pytest.raises(ValueError, match="another --out"):
        label_folder(_model(), folder, out, NAMES, progress=False)
