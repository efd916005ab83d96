"""Label whole image folders with a saved classifier: a streaming, resumable CSV writer.

    names = read_class_names("saved_models/orientation_light/orientation_from_scratch.keras")
    summary = label_folder("saved_models/orientation_light/orientation_from_scratch.keras",
                           "img_align_celeba", "labels.csv", names)
    save_prediction_grid("labels.csv", "img_align_celeba", "grid.png")

`label_folder` writes `file,label,p_<class>,...` (file relative to the image
folder, `/`-separated). Images stream through tf.data in batches, so memory
stays flat however many images there are; rows are appended and flushed
every chunk. Files that cannot be decoded go to `<out>.errors.csv`
(`file,reason`) and do not stop the run. Running the same command again
skips every file already in either CSV, so an interrupted run resumes
without redoing or duplicating rows; a half-written last line left by a kill
is dropped first. Delete the errors CSV to retry the files listed there.

The model must take images with values 0..255 (its preprocessing inside),
as the apps' models do; the image size comes from the model's input.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hybridvision.common.cli import UserError
from hybridvision.common.data.images import (
    IMAGE_EXTENSIONS,
    NOT_UTF8,
    decode_image_bytes,
    is_utf8_name,
    shown_name,
    validate_images,
)
from hybridvision.common.model_card import read_card

log = logging.getLogger("hybridvision")

CLASSES_SUFFIX = ".classes.json"
ERRORS_SUFFIX = ".errors.csv"


def class_names_path(model_path) -> Path:
    """Where the class names of a saved model live: `<model>.classes.json` beside it."""
    return Path(model_path).with_suffix(CLASSES_SUFFIX)


def write_class_names(model_path, class_names, **info) -> Path:
    """Write `<model>.classes.json` (class names in output order, plus any `info`)."""
    path = class_names_path(model_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"class_names": list(class_names), **info}, indent=2) + "\n")
    return path


def read_class_names(model_path) -> list[str]:
    """The class names saved beside a model (`<model>.classes.json`, else `classes.json` there), else those of its
    model card (an export is enough on its own)."""
    model_path = Path(model_path)
    for path in (class_names_path(model_path), model_path.parent / "classes.json"):
        if path.is_file():
            try:
                names = json.loads(path.read_text())["class_names"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path}: expected JSON with a 'class_names' list; fix or delete the file") from None
            return [str(n) for n in names]
    card = read_card(model_path) if model_path.is_file() else {}
    if card.get("class_names"):
        return [str(n) for n in card["class_names"]]
    raise FileNotFoundError(
        f"no class names for {model_path}: {class_names_path(model_path)} is missing; "
        "pass them in output order, e.g. --classes left,center,right"
    )


def _image_size(model) -> tuple[int, int]:
    """The size images are decoded to: the model's fixed input size, else (an export taking any size)
    the training size its model card records, so each batch holds one size and the model's resize is exact."""
    fixed = model.input_shape[1:3]
    if None not in fixed:
        return tuple(int(v) for v in fixed)
    size = read_card(model).get("image_size")
    if not size:
        raise ValueError(f"the model takes images of any size and records no training size; "
                         f"pass a model with a fixed input size or one exported by hybridvision (input {fixed})")
    return tuple(int(v) for v in size)


def errors_path(out_csv) -> Path:
    """`labels.csv` -> `labels.errors.csv`."""
    out_csv = Path(out_csv)
    return out_csv.with_name(out_csv.stem + ERRORS_SUFFIX)


def list_images(root) -> list[str]:
    """Image files under `root` (recursive, hidden ones left out), relative and `/`-separated, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--images {root}: no such folder; pass the folder holding the images")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append((rel / name).as_posix())
    return sorted(found)


def _open_resumable(path: Path, header: list[str]) -> tuple[set, object]:
    """Open a CSV for appending; returns (first-column values already there, file)."""
    done = set()
    if path.exists() and path.stat().st_size:
        with open(path, "r+b") as f:
            data = f.read()
            if not data.endswith(b"\n"):
                # A kill mid-write leaves a partial last row: drop it, it is redone.
                keep = data.rfind(b"\n") + 1
                f.truncate(keep)
                log.info("%s: dropped a partial last line left by an interrupted run", path)
        with open(path, newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            found = next(rows, None)
            if found is not None and found != header:
                raise ValueError(
                    f"{path} has columns {','.join(found)} but this run writes {','.join(header)}; "
                    "pass another --out or delete the file"
                )
            done = {row[0] for row in rows if row}
        if found is not None:
            return done, open(path, "a", newline="", encoding="utf-8")
    f = open(path, "w", newline="", encoding="utf-8")
    csv.writer(f).writerow(header)
    return done, f


def _flush(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def load_model_file(path, flag: str = "--model", **kwargs):
    """`keras.models.load_model(path)`, with one-line errors naming the file for what is not a model.

    (Keras reports a `.keras` file that is not a zip archive as "File not found".)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {path}: no such file; pass a saved .keras model")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise UserError(f"{flag} {path} is not a Keras model (a .keras file is a zip archive, this one is not); "
                        "pass a model saved by train.py")
    try:
        return keras.models.load_model(path, **kwargs)
    except (ValueError, TypeError, OSError, KeyError, zipfile.BadZipFile) as err:
        first = " ".join(str(err).split())[:300]
        raise UserError(f"{flag} {path} does not load as a Keras model ({first}); pass a model saved by train.py") \
            from err


def _load_model(model):
    if isinstance(model, (str, os.PathLike)):
        return load_model_file(model)
    return model


def _dataset(paths, image_size, channels, batch_size):
    """(index, image) batches; files that fail to decode are dropped (their index never comes out)."""

    def load(index, path):
        image = decode_image_bytes(tf.io.read_file(path), image_size, channels)
        # Rounded to 8 bits as the training pipelines do, so labels match evaluation exactly.
        return index, tf.cast(tf.saturate_cast(tf.round(image), tf.uint8), tf.float32)

    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), tf.constant(paths)))
    # Deterministic order: a missing index between two delivered ones is a failed file.
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def label_folder(model, images_dir, out_csv, class_names, batch_size: int = 64, chunk_size: int = 1024,
                 progress: bool = True) -> dict:
    """Label every image under `images_dir` into `out_csv`; resumes an interrupted run.

    Args:
        model: a `keras.Model` or the path of a saved `.keras` model taking
            0..255 images and returning class probabilities.
        images_dir: folder searched recursively for images.
        out_csv: the labels CSV (`file,label,p_<class>,...`); errors go to
            `errors_path(out_csv)`.
        class_names: names of the model's outputs, in order.
        batch_size: images per forward pass.
        chunk_size: rows appended (and flushed to disk) at a time.
        progress: show a progress bar with images/s.

    Returns:
        dict with `images` (found), `already_done`, `labelled`, `errors` (new
        this run), `seconds`, `images_per_second`, `csv`, `errors_csv`.
    """
    model = _load_model(model)
    class_names = [str(n) for n in class_names]
    outputs = model.output_shape[-1]
    if outputs != len(class_names):
        raise ValueError(f"the model has {outputs} outputs but {len(class_names)} class names were given "
                         f"({','.join(class_names)}); pass one name per output, in order")
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"--batch-size {batch_size} and chunk size {chunk_size} must be at least 1")
    image_size = _image_size(model)
    channels = int(model.input_shape[-1])
    images_dir, out_csv = Path(images_dir), Path(out_csv)
    files = list_images(images_dir)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    header = ["file", "label", *(f"p_{name}" for name in class_names)]
    done, rows_file = _open_resumable(out_csv, header)
    failed, errors_file = _open_resumable(errors_path(out_csv), ["file", "reason"])
    pending = [f for f in files if f not in done and f not in failed]
    rows_writer, errors_writer = csv.writer(rows_file), csv.writer(errors_file)
    summary = {"images": len(files), "already_done": len(files) - len(pending), "labelled": 0, "errors": 0,
               "csv": str(out_csv), "errors_csv": str(errors_path(out_csv))}
    if summary["already_done"]:
        log.info("%s: %d of %d images already done; labelling the other %d",
                 out_csv, summary["already_done"], len(files), len(pending))

    def record_errors(rel_paths):
        for rel, (_, reason) in zip(rel_paths, _reasons(images_dir, rel_paths)):
            errors_writer.writerow([rel, reason])
        summary["errors"] += len(rel_paths)

    # A newline in a name would break the line-based resume; such files are listed, not labelled.
    odd = [f for f in pending if "\n" in f or "\r" in f]
    if odd:
        for rel in odd:
            errors_writer.writerow([rel, "file name contains a line break; rename it"])
        summary["errors"] += len(odd)
        odd = set(odd)
        pending = [f for f in pending if f not in odd]
    # Nor can a name that is not valid UTF-8 go into the UTF-8 CSV (or TensorFlow): listed by its bytes.
    undecodable = [f for f in pending if not is_utf8_name(f)]
    if undecodable:
        new = [shown_name(rel) for rel in undecodable if shown_name(rel) not in failed]
        for shown in new:
            errors_writer.writerow([shown, NOT_UTF8])
        summary["errors"] += len(new)
        log.warning("skipped %d file(s) whose names are not valid UTF-8 (rename them): %s%s", len(undecodable),
                    ", ".join(shown_name(f) for f in undecodable[:5]), " ..." if len(undecodable) > 5 else "")
        pending = [f for f in pending if is_utf8_name(f)]
    bar = None
    if progress and pending:
        # In a log file (no terminal) one progress line every 10 s is plenty.
        interval = 0.05 if sys.stdout.isatty() else 10.0
        bar = keras.utils.Progbar(len(pending), unit_name="image", stateful_metrics=["images/s"], interval=interval)
    start, next_index, buffered = time.time(), 0, 0
    try:
        dataset = _dataset([str(images_dir / f) for f in pending], image_size, channels, batch_size) if pending else []
        for indices, images in dataset:
            probabilities = np.asarray(model.predict_on_batch(images), dtype="float64")
            indices = indices.numpy()
            for index, p in zip(indices, probabilities):
                if index > next_index:
                    record_errors(pending[next_index:index])
                rows_writer.writerow([pending[index], class_names[int(p.argmax())], *(f"{v:.6f}" for v in p)])
                next_index = index + 1
            summary["labelled"] += len(indices)
            buffered += len(indices)
            if buffered >= chunk_size:
                _flush(errors_file)
                _flush(rows_file)
                buffered = 0
            if bar is not None:
                bar.update(next_index, [("images/s", summary["labelled"] / max(time.time() - start, 1e-9))])
        if next_index < len(pending):
            record_errors(pending[next_index:])
        if bar is not None and next_index < len(pending):
            bar.update(len(pending), finalize=True)
    finally:
        _flush(errors_file)
        _flush(rows_file)
        errors_file.close()
        rows_file.close()
    seconds = time.time() - start
    summary.update(seconds=seconds, images_per_second=summary["labelled"] / seconds if seconds else 0.0)
    if summary["errors"]:
        log.warning("%d image(s) could not be decoded; listed in %s", summary["errors"], summary["errors_csv"])
    return summary


def _reasons(images_dir: Path, rel_paths):
    """(path, reason) per file that failed to load (only called for the failures)."""
    paths = [str(images_dir / rel) for rel in rel_paths]
    _, bad = validate_images(paths)
    reasons = dict(bad)
    return [(p, reasons.get(p, "cannot decode")) for p in paths]


def save_prediction_grid(labels_csv, images_dir, out_png, n: int = 9, seed: int = 0, ncols: int = 3) -> Path:
    """A grid (3x3 by default) of randomly chosen labelled images, titled `label (confidence)`.

    Args:
        labels_csv: a CSV written by `label_folder`.
        images_dir: the folder its `file` column is relative to.
        out_png: where the PNG goes.
        n: how many images (fewer if the CSV has fewer rows).
        seed: which images are drawn.
        ncols: images per grid row.
    """
    import cv2

    from hybridvision.common.plots import plot_image_grid

    with open(labels_csv, newline="", encoding="utf-8") as f:
        rows = [row for row in csv.DictReader(f)]
    if not rows:
        raise ValueError(f"{labels_csv} holds no labelled images; nothing to show in a grid")
    chosen = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
    images, titles = [], []
    for i in sorted(chosen):
        row = rows[i]
        image = cv2.imread(str(Path(images_dir) / row["file"]), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"{Path(images_dir) / row['file']} (row of {labels_csv}) cannot be read; "
                                    "pass the same --images folder the CSV was made from")
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        titles.append(f"{row['label']} ({float(row['p_' + row['label']]):.2f})\n{Path(row['file']).name}")
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    return plot_image_grid(images, titles, out_png, ncols=ncols)
