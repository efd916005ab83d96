"""Checks shared by the apps' predict/explain tests: labels equal the model's own, resume, errors."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from hybridvision.common.model_card import read_card


def export_of(app: str, root: Path) -> Path:
    """The model a training run under `root` exported for `app` (not the latest.keras copy)."""
    found = [p for p in sorted((root / "saved_models").rglob("*.keras")) if p.parent.name == app
             and p.name != "latest.keras"]
    assert found, f"no export of {app} under {root / 'saved_models'}"
    return found[0]


def rows_of(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path, header, rows) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def copy_images(files, folder: Path, broken: str = "broken.jpg") -> Path:
    """A folder of new images (copies of `files`) and one that is not an image."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files):
        shutil.copy(f, folder / f"{i}{Path(f).suffix}")
    (folder / broken).write_bytes(b"not an image")
    return folder


def load_images(files, model, channels=3, method="bilinear", scale=1.0, round_pixels=True) -> np.ndarray:
    """The images as the model was trained on them: decoded, resized to the training size, 8-bit, scaled."""
    size = read_card(model).get("image_size") or model.inputs[0].shape[1:3]
    out = []
    for f in files:
        image = tf.io.decode_image(tf.io.read_file(str(f)), channels=3, expand_animations=False)
        if channels == 1:
            image = tf.image.rgb_to_grayscale(image)
        image = tf.image.resize(image, size, method=method)
        if round_pixels:
            image = tf.round(image)
        out.append(image.numpy() * scale)
    return np.stack(out).astype("float32")


def check_resume(main, argv, out: Path, keys) -> list[dict]:
    """Kill mid-line after one row (and lose the errors file's last row): a rerun redoes only what is missing."""
    before = {tuple(r[k] for k in keys): r for r in rows_of(out)}
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    summary = main(argv)
    rows = rows_of(out)
    assert summary["labelled"] == len(before) - 1 and summary["errors"] == 0
    assert len(rows) == len(before) == len({tuple(r[k] for k in keys) for r in rows})
    for row in rows:
        assert row == before[tuple(row[k] for k in keys)]
    again = main(argv)  # finished: nothing new, nothing duplicated
    assert again["labelled"] == 0 and len(rows_of(out)) == len(before)
    return rows
