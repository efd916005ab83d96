"""One predict for every app: label images (folders, or CSVs listing them) with a saved model, into a CSV.

    spec = PredictSpec(app="orientation_light", kind="single")
    model, spec = resolve_spec(spec, "saved_models/orientation_light/latest.keras")
    summary = predict_items(model, spec, folder_items("img_align_celeba"), "labels.csv")
    label_folder(model, "img_align_celeba", "labels.csv", ["left", "center", "right"])  # the same, classic API

What a model takes and gives is described by a `PredictSpec` (each app's
`predict.py` passes its own) and completed from the model's card
(`hybridvision.common.model_card.read_card`, when the model has one), the
`<model>.classes.json` sidecar and the command's flags:

- `single`: one image, softmax over classes -> `label`, `p_<class>`...
- `binary`: one image and, if the model takes them, yes/no covariates; one
  sigmoid -> `label` (`<target>` or `not_<target>`), `p_<target>`.
- `multilabel`: one image, one sigmoid per class -> `labels` (the classes at
  or above their thresholds, `;`-separated), `p_<class>`...
- `pair`: two images stacked as channels (`first`, `second`), a `compare`
  softmax plus, when the model has them, the digit outputs.

The output CSV starts with the input columns (image files as given, then the
covariates as written), so a row says what it was made from. Inputs stream
through tf.data in batches, so memory stays flat; rows are appended and
flushed every chunk. Inputs that cannot be read go to `<out>.errors.csv`
(the input columns, `reason`) and do not stop the run. Running the same
command again skips every input already in either CSV, so an interrupted run
resumes without redoing or duplicating rows; a half-written last line left
by a kill is dropped first. Delete the errors CSV to retry what it lists.
`<out>.model.json` records the model file and its sha256 (when predict is
given a file): a CSV another model wrote is refused, not extended.

Models take images with values 0..255 (their preprocessing inside), times
`spec.scale` (digit_pairs: 1/255); the image size comes from the model's
input, or from its card when the model resizes inside.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hybridvision.common.cli import DECODER_NOISE, UserError, stderr_filtered
from hybridvision.common.config import check_range
from hybridvision.common.data.images import IMAGE_EXTENSIONS, NOT_UTF8, is_utf8_name, shown_name, validate_images
from hybridvision.common.model_card import read_card
from hybridvision.common.predict_io import (  # noqa: F401 - re-exported: the public API of this module
    CLASSES_SUFFIX,
    ERRORS_SUFFIX,
    claim_output,
    class_names_path,
    covariate_value,
    errors_path,
    flush,
    list_images,
    load_model_file,
    open_resumable,
    read_class_names,
    read_input_csv,
    write_class_names,
)

log = logging.getLogger("hybridvision")

KINDS = ("single", "binary", "multilabel", "pair")


@dataclasses.dataclass
class PredictSpec:
    """What a model takes and gives, as predict needs it (an app's defaults, completed by `resolve_spec`).

    Attributes:
        app: the app whose models these are (None: any).
        kind: one of `KINDS` (see the module docstring).
        class_names: names of the outputs in order (binary: `[not_<target>, <target>]`).
        image_columns: input CSV columns naming image files (pair: two).
        covariates: names of the yes/no covariates the model takes, in order.
        thresholds: per class, for `multilabel` and `binary` (default 0.5).
        scale: the 0..255 pixels are multiplied by this.
        resize: `tf.image.resize` method (digit_pairs pools its digits: "area").
        round_pixels: round resized pixels to 8 bits, as the training pipelines' JPEG/PNG decoding does.
        output: the output to label from, for models with several (a dict key).
        takes_covariates: the app's models may take a vector input besides the image (named by
            `covariates`): attractiveness' covariates, cross_modal's per-modality one-hot.
        extra_outputs: `{output key: column}`: more outputs written as their argmax (digit_pairs' digits).
        column_help: how to write the input CSV, for errors about its columns.
        image_size: the card's training size, for a model that resizes inside (any input size).
        coding: the card's covariate columns (`hybridvision.common.covariate_coding`) for a model that codes
            its covariates inside: it takes each one's raw value (a number or a category) by name.
    """

    app: str | None = None
    kind: str = "single"
    class_names: list | None = None
    image_columns: tuple = ("file",)
    covariates: tuple = ()
    thresholds: list | None = None
    scale: float = 1.0
    resize: str = "bilinear"
    round_pixels: bool = True
    output: str | None = None
    takes_covariates: bool = False
    extra_outputs: dict = dataclasses.field(default_factory=dict)
    column_help: str = ""
    image_size: tuple | None = None  # from the card, for a model that resizes inside (any input size)
    coding: list | None = None  # from the card: covariates coded inside the model, given raw

    def header(self) -> list[str]:
        """The output CSV's columns: the inputs, the label(s), the extra outputs, the probabilities."""
        label = "labels" if self.kind == "multilabel" else "label"
        probabilities = [self.class_names[-1]] if self.kind == "binary" else self.class_names
        return [*self.image_columns, *self.covariates, label, *self.extra_outputs.values(),
                *(f"p_{name}" for name in probabilities)]

    @property
    def key_width(self) -> int:
        return len(self.image_columns) + len(self.covariates)


def read_model_card(model) -> dict:
    """The card inside a model (app, class names, covariates, ...), or {} for a model exported before cards."""
    return dict(read_card(model) or {})


def _image_inputs(model):
    return [t for t in model.inputs if len(t.shape) == 4]


def _describe(model) -> str:
    inputs = ", ".join(f"{t.name.split(':')[0]} {tuple(t.shape[1:])}" for t in model.inputs)
    outputs = keras.tree.map_structure(lambda t: tuple(t.shape[1:]), model.output)
    return f"it takes {inputs} and gives {outputs}"


def refuse_other_apps(spec: PredictSpec, card: dict, shown: str, tool: str = "predict") -> None:
    """A one-line `UserError` when the model's card (or sidecar) names another app than `spec.app`."""
    if spec.app and card.get("app") and card["app"] != spec.app:
        raise UserError(f"{shown} is a model of the {card['app']} app, not of {spec.app}; "
                        f"use `hybridvision {card['app']} {tool}`")


def resolve_spec(spec: PredictSpec, model, classes=None, covariates=None, thresholds=None, target=None,
                 tool: str = "predict"):
    """Load the model (a path or a `keras.Model`) and complete `spec` from its card, sidecar and the flags.

    Flags win over the card, the card over the sidecar, the sidecar over the
    app's defaults. Returns `(model, spec)`; raises a one-line `UserError`
    when the model is not one of `spec.app`'s or its names are missing
    (`tool`: the command those errors point to).
    """
    path = model if isinstance(model, (str, os.PathLike)) else None
    shown = f"--model {path}" if path is not None else f"model '{model.name}'"
    if path is not None:
        # The card (or the sidecar of a run's model) is read from the file first: another app's model is named
        # as such before anything else is said about it.
        refuse_other_apps(spec, read_card(path) if zipfile.is_zipfile(path) else {}, shown, tool)
        model = load_model_file(path)
    card = read_model_card(model)
    refuse_other_apps(spec, card, shown, tool)
    spec = dataclasses.replace(spec)
    wrong_app = (f"{shown} does not look like a model of the {spec.app or 'supported'} app ({_describe(model)}); "
                 f"pass a model trained by `hybridvision {spec.app or '<app>'} train`")

    # Covariates coded inside the model: one raw input per covariate, named by the card (and its image column).
    coded = card.get("covariate_columns") or []
    if card.get("image_column") and len(spec.image_columns) == 1:
        spec.image_columns = (str(card["image_column"]),)
    spec.coding = list(coded) or None
    coded_inputs = {c["input"] for c in coded}
    if coded and covariates is not None and list(covariates) != [c["name"] for c in coded]:
        raise UserError(f"{shown} takes the covariates {','.join(c['name'] for c in coded)} (its card); "
                        "leave --covariates out or name exactly those")
    # Covariates: the model's vector input, named by the flag, the card, or not at all.
    vectors = [t for t in model.inputs if len(t.shape) == 2 and t.name not in coded_inputs]
    if coded:
        spec.covariates = tuple(c["name"] for c in coded)
        if vectors:
            raise UserError(wrong_app)
    elif covariates is not None:
        spec.covariates = tuple(covariates)
    elif card.get("covariates") is not None:
        spec.covariates = tuple(str(c) for c in card["covariates"])
    if len(vectors) > 1 or (vectors and not spec.takes_covariates):
        raise UserError(wrong_app)
    if vectors:
        width = int(vectors[0].shape[-1])
        if not spec.covariates:
            raise UserError(f"{shown} takes {width} covariate(s) but their names are unknown (the model has no card); "
                            "pass them in training order, e.g. --covariates Male,Smiling")
        if len(spec.covariates) != width:
            raise UserError(f"{shown} takes {width} covariate(s) but {len(spec.covariates)} were named "
                            f"({','.join(spec.covariates)}); pass its covariates in training order")
    elif spec.covariates and not coded:
        if covariates is not None:
            log.warning("the model takes no covariates: --covariates %s is ignored", ",".join(spec.covariates))
        spec.covariates = ()

    # Images: one image input whose channels hold the image columns (RGB, or gray for pairs).
    images = _image_inputs(model)
    if len(images) != 1 or images[0].shape[-1] not in (3 * len(spec.image_columns), len(spec.image_columns)):
        raise UserError(wrong_app)

    # Outputs: the one to label from, and its width.
    shapes = keras.tree.map_structure(lambda t: tuple(t.shape), model.output)
    if isinstance(shapes, dict):
        if spec.output not in shapes:
            raise UserError(wrong_app)
        spec.extra_outputs = {k: v for k, v in spec.extra_outputs.items() if k in shapes}
        width = shapes[spec.output][-1]
    elif isinstance(shapes, tuple) and spec.output is None:
        spec.extra_outputs = {}
        width = shapes[-1]
    else:
        raise UserError(wrong_app)

    # Class names, in output order.
    if classes:
        names = list(classes)
    elif card.get("class_names"):
        names = [str(n) for n in card["class_names"]]
    elif path is not None and (Path(path).with_suffix(CLASSES_SUFFIX).is_file()
                               or (Path(path).parent / "classes.json").is_file()):
        names = read_class_names(path)
    else:
        names = list(spec.class_names or [])
    if spec.kind == "binary" and width > 1 and len(card.get("class_names") or []) == width:
        spec.kind = "single"  # a table's model of several classes: a softmax
    if spec.kind == "binary":
        if width != 1:
            raise UserError(wrong_app)
        target = target or card.get("target") or (names[-1] if names else None)
        if not target:
            raise UserError(f"no target name for {shown}; pass --target, e.g. --target Attractive")
        names = names if len(names) == 2 and not classes and card.get("class_names") else [f"not_{target}", target]
    elif not names:
        raise UserError(f"no class names for {shown} (it has no model card, nor a {CLASSES_SUFFIX} file beside it); "
                        "pass them in output order, e.g. --classes left,center,right")
    elif len(names) != width:
        raise UserError(f"the model has {width} outputs but {len(names)} class names were given "
                        f"({','.join(names)}); pass one name per output, in order")
    spec.class_names = names

    # Thresholds (multi-label and binary): the flag's, the card's, else 0.5 each.
    count = 1 if spec.kind == "binary" else len(names)
    chosen = thresholds if thresholds is not None else card.get("thresholds")
    if isinstance(chosen, dict):  # {class: threshold} in a card
        chosen = [float(chosen.get(n, 0.5)) for n in (names[-1:] if spec.kind == "binary" else names)]
    chosen = list(chosen) if chosen is not None else [0.5] * count
    if len(chosen) == 1 and count > 1:
        chosen = chosen * count
    if len(chosen) != count or not all(0.0 <= float(t) <= 1.0 for t in chosen):
        raise UserError(f"--thresholds: expected 1 or {count} values in [0, 1], got {','.join(map(str, chosen))}")
    spec.thresholds = [float(t) for t in chosen]

    if card.get("image_size") and images[0].shape[1] is None:
        spec.image_size = tuple(int(v) for v in np.broadcast_to(card["image_size"], 2))
    return model, spec


def folder_items(images_dir) -> tuple[list[tuple[str]], Path]:
    """`(items, base)`: one item `(relative path,)` per image under the folder."""
    return [(rel,) for rel in list_images(images_dir)], Path(images_dir)


def csv_items(spec: PredictSpec, csv_path, images_dir=None) -> tuple[list[list[str]], Path]:
    """`(items, base)`: the input columns of each CSV row; relative files are under `images_dir` or the CSV's folder."""
    rows = read_input_csv(csv_path, spec.image_columns, spec.covariates, spec.column_help)
    return rows, Path(images_dir) if images_dir is not None else Path(csv_path).parent


def _image_size(model, spec):
    image = _image_inputs(model)[0]
    if image.shape[1] is not None and image.shape[2] is not None:
        return int(image.shape[1]), int(image.shape[2])
    if getattr(spec, "image_size", None):
        return spec.image_size
    raise UserError(f"model '{model.name}' takes images of any size and its card gives no training image size; "
                    "re-export it with `hybridvision <app> train`")


PATH_CHUNK = 4096  # inputs whose file paths are built at a time


class _FilePaths:
    """The image files (`base / file`) of each item, made a slice at a time: never all of them at once."""

    def __init__(self, items, base: Path, n_images: int):
        self.items, self.base, self.n_images = items, base, n_images

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, part: slice) -> list[list[str]]:
        return [[str(self.base / f) for f in item[:self.n_images]] for item in self.items[part]]


def _dataset(paths, covariates, spec, image_size, channels_per_image, batch_size):
    """(index, images, covariates) batches; items that fail to load are dropped (their index never comes out).

    `paths`: a sequence (`len`, slices) of the image files of each input, e.g. a list of lists;
    it is sliced `PATH_CHUNK` inputs at a time (`_FilePaths` makes each slice when asked).
    """

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        if channels_per_image == 1:
            image = tf.image.rgb_to_grayscale(image)
        image = tf.image.resize(image, image_size, method=spec.resize)
        if spec.round_pixels:
            # Rounded to 8 bits as the training pipelines do, so labels match evaluation exactly.
            image = tf.cast(tf.saturate_cast(tf.round(image), tf.uint8), tf.float32)
        image = tf.cast(image, tf.float32) * spec.scale
        image.set_shape((*image_size, channels_per_image))
        return image

    def load(index, row_paths, row_covariates):
        images = [decode(row_paths[j]) for j in range(len(spec.image_columns))]
        return index, tf.concat(images, axis=-1), row_covariates

    if spec.coding:
        import pandas as pd

        from hybridvision.common.covariate_coding import CovariateCoding

        table = pd.DataFrame(np.asarray(covariates, dtype=object).reshape(len(paths), len(spec.covariates)),
                             columns=list(spec.covariates))
        values = CovariateCoding(spec.coding).raw_values(table)
    else:
        values = tf.constant(np.asarray(covariates, dtype="float32").reshape(len(paths), len(spec.covariates)))
    values = tf.nest.map_structure(tf.convert_to_tensor, values)
    width = len(spec.image_columns)

    def chunks():
        # The file paths are made PATH_CHUNK at a time: memory stays flat however many inputs there are.
        for start in range(0, len(paths), PATH_CHUNK):
            part = paths[start:start + PATH_CHUNK]
            yield (np.arange(start, start + len(part), dtype="int64"),
                   np.array([os.fsencode(p) for item in part for p in item], dtype=object).reshape(len(part), width))

    def gather(index, row_paths):
        return index, row_paths, tf.nest.map_structure(lambda v: tf.gather(v, index), values)

    ds = tf.data.Dataset.from_generator(chunks, output_signature=(
        tf.TensorSpec((None,), tf.int64), tf.TensorSpec((None, width), tf.string))).unbatch().map(gather)
    # Deterministic order: a missing index between two delivered ones is a failed item.
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _model_inputs(model, images, covariates):
    """The model's inputs in its own structure: the images alone, a list in input order, or a dict by name."""
    if len(model.inputs) == 1:
        return images
    if isinstance(model.input, dict):
        if isinstance(covariates, dict):  # raw covariates by input name (coded inside the model)
            return {key: images if len(t.shape) == 4 else covariates[key] for key, t in model.input.items()}
        return {key: images if len(t.shape) == 4 else covariates for key, t in model.input.items()}
    return [images if len(t.shape) == 4 else covariates for t in model.inputs]


def _rows(spec: PredictSpec, items, outputs) -> list[list]:
    """Output rows for a batch: the item's input columns, the label(s), the extra outputs, probabilities."""
    if isinstance(outputs, dict):
        probabilities = np.asarray(outputs[spec.output], dtype="float64")
        extras = [np.asarray(outputs[k]).argmax(-1) for k in spec.extra_outputs]
    else:
        probabilities, extras = np.asarray(outputs, dtype="float64"), []
    rows = []
    for i, (item, p) in enumerate(zip(items, probabilities)):
        if spec.kind == "binary":
            label = spec.class_names[int(p[0] >= spec.thresholds[0])]
        elif spec.kind == "multilabel":
            label = ";".join(n for n, v, t in zip(spec.class_names, p, spec.thresholds) if v >= t)
        else:
            label = spec.class_names[int(p.argmax())]
        rows.append([*item, label, *(int(e[i]) for e in extras), *(f"{v:.6f}" for v in p)])
    return rows


def predict_items(model, spec: PredictSpec, items, out_csv, base=None, batch_size: int = 64,
                  chunk_size: int = 1024, progress: bool = True, model_file=None) -> dict:
    """Predict every item into `out_csv`; resumes an interrupted run.

    Args:
        model: a `keras.Model` (completed `spec` from `resolve_spec`).
        spec: what the model takes and gives.
        items: one list of strings per input: the image files (relative to
            `base` unless absolute), then the covariates as written.
        out_csv: the output CSV (`spec.header()`); failures go to `errors_path(out_csv)`.
        base: folder relative image files are under.
        batch_size: inputs per forward pass.
        chunk_size: rows appended (and flushed to disk) at a time.
        progress: show a progress bar with images/s.
        model_file: the file `model` was loaded from: recorded (path, sha256)
            in `<out>.model.json`, and a CSV another model wrote is refused.

    Returns:
        dict with `images` (inputs found), `already_done`, `labelled`,
        `errors` (new this run), `rows` (labelled rows of these inputs in the
        CSV, old and new), `seconds`, `images_per_second`, `csv`, `errors_csv`.
    """
    if batch_size < 1 or chunk_size < 1:
        raise UserError(f"--batch-size {batch_size} and chunk size {chunk_size} must be at least 1")
    base = Path(base) if base is not None else Path(".")
    n_images = len(spec.image_columns)
    image_size = _image_size(model, spec)
    channels_per_image = int(_image_inputs(model)[0].shape[-1]) // n_images
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    items = [tuple(item) for item in items]
    if model_file is not None:
        claim_output(out_csv, model_file)
    done, rows_file = open_resumable(out_csv, spec.header(), spec.key_width)
    failed, errors_file = open_resumable(errors_path(out_csv), [*spec.header()[:spec.key_width], "reason"],
                                         spec.key_width)
    pending = [item for item in items if item not in done and item not in failed]
    rows_writer, errors_writer = csv.writer(rows_file), csv.writer(errors_file)
    summary = {"images": len(items), "already_done": len(items) - len(pending), "labelled": 0, "errors": 0,
               "rows": sum(item in done for item in items), "csv": str(out_csv), "errors_csv": str(errors_path(out_csv))}
    if summary["already_done"]:
        log.info("%s: %d of %d inputs already done; predicting the other %d",
                 out_csv, summary["already_done"], len(items), len(pending))

    def list_error(item, reason):
        errors_writer.writerow([*item, reason])
        summary["errors"] += 1

    # What cannot go through the model is listed, not predicted: names with line breaks (they would break
    # the line-based resume), names that are not UTF-8 (listed by their bytes), unreadable covariates.
    ready, covariates = [], []
    for item in pending:
        files, values = item[:n_images], item[n_images:]
        if any("\n" in f or "\r" in f for f in files):
            list_error(item, "file name contains a line break; rename it")
        elif not all(is_utf8_name(f) for f in files):
            shown = tuple(shown_name(f) for f in files) + values
            if shown not in failed:
                list_error(shown, NOT_UTF8)
            log.warning("skipped %s: its name is not valid UTF-8 (rename it)", ", ".join(shown[:n_images]))
        elif any(not f for f in files):
            list_error(item, f"no image file named in column '{spec.image_columns[files.index('')]}'")
        elif spec.coding:  # raw values, coded inside the model (an empty cell: missing)
            ready.append(item)
            covariates.append(values)
        else:
            coded = tuple(covariate_value(v) for v in values)  # () for none: one shared object, not one per item
            if None in coded:
                column = spec.covariates[coded.index(None)]
                list_error(item, f"covariate {column}={values[coded.index(None)]!r} is not yes/no; write 1 or 0")
            else:
                ready.append(item)
                covariates.append(coded)
    bar = None
    if progress and ready:
        # In a log file (no terminal) one progress line every 10 s is plenty.
        interval = 0.05 if sys.stdout.isatty() else 10.0
        bar = keras.utils.Progbar(len(ready), unit_name="image", stateful_metrics=["images/s"], interval=interval)
    start, next_index, buffered = time.time(), 0, 0

    def record_failures(failures):
        for item, reason in zip(failures, _reasons(base, spec, failures)):
            list_error(item, reason)

    try:
        paths = _FilePaths(ready, base, n_images)
        # libjpeg's lines about corrupt files stay off the console: the files go to the errors CSV.
        with stderr_filtered(DECODER_NOISE):
            dataset = _dataset(paths, covariates, spec, image_size, channels_per_image, batch_size) if ready else []
            for indices, images, values in dataset:
                outputs = model.predict_on_batch(_model_inputs(model, images, values))
                indices = indices.numpy()
                rows = _rows(spec, [ready[i] for i in indices], outputs)
                for index, row in zip(indices, rows):
                    if index > next_index:
                        record_failures(ready[next_index:index])
                    rows_writer.writerow(row)
                    next_index = index + 1
                summary["labelled"] += len(indices)
                summary["rows"] += len(indices)
                buffered += len(indices)
                if buffered >= chunk_size:
                    flush(errors_file)
                    flush(rows_file)
                    buffered = 0
                if bar is not None:
                    bar.update(next_index, [("images/s", summary["labelled"] / max(time.time() - start, 1e-9))])
            if next_index < len(ready):
                record_failures(ready[next_index:])
            if bar is not None and next_index < len(ready):
                bar.update(len(ready), finalize=True)
    finally:
        flush(errors_file)
        flush(rows_file)
        errors_file.close()
        rows_file.close()
    seconds = time.time() - start
    summary.update(seconds=seconds, images_per_second=summary["labelled"] / seconds if seconds else 0.0)
    if summary["errors"]:
        log.warning("%d input(s) could not be read; listed in %s", summary["errors"], summary["errors_csv"])
    return summary


def _reasons(base: Path, spec: PredictSpec, failures) -> list[str]:
    """Why each failed item did not load: its first unreadable file, by column (only called for failures)."""
    paths = sorted({str(base / f) for item in failures for f in item[:len(spec.image_columns)]})
    _, bad = validate_images(paths)
    reasons = dict(bad)
    out = []
    for item in failures:
        found = [(column, reasons[str(base / f)]) for column, f in zip(spec.image_columns, item)
                 if str(base / f) in reasons]
        if not found:
            out.append("cannot decode")
        elif len(spec.image_columns) == 1:
            out.append(found[0][1])
        else:
            out.append(f"{found[0][0]}: {found[0][1]}")
    return out


def label_folder(model, images_dir, out_csv, class_names, batch_size: int = 64, chunk_size: int = 1024,
                 progress: bool = True) -> dict:
    """Label every image under `images_dir` with a softmax classifier into `out_csv` (`file,label,p_<class>,...`).

    `model` is a `keras.Model` or the path of a saved `.keras` model taking
    0..255 images; the rest as for `predict_items`, which this calls.
    """
    model_file = model if isinstance(model, (str, os.PathLike)) else None
    model, spec = resolve_spec(PredictSpec(kind="single", class_names=[str(n) for n in class_names]), model,
                               classes=[str(n) for n in class_names])
    items, base = folder_items(images_dir)
    return predict_items(model, spec, items, out_csv, base, batch_size=batch_size, chunk_size=chunk_size,
                         progress=progress, model_file=model_file)


def run_predict(spec: PredictSpec, args) -> dict:
    """The `hybridvision <app> predict` tool, shared by the apps: parsed flags in, summary out (and printed)."""
    check_range("--batch-size", args.batch_size, {"min": 1})
    classes = [n.strip() for n in args.classes.split(",") if n.strip()] if getattr(args, "classes", None) else None
    covariates = getattr(args, "covariates", None)
    covariates = [c.strip() for c in covariates.split(",") if c.strip()] if covariates else None
    thresholds = getattr(args, "thresholds", None)
    if thresholds:
        try:
            thresholds = [float(t) for t in thresholds.split(",")]
        except ValueError:
            raise UserError(f"--thresholds {thresholds}: expected numbers, e.g. 0.5 or 0.4,0.6,...") from None
    model, spec = resolve_spec(spec, args.model, classes=classes, covariates=covariates, thresholds=thresholds,
                               target=getattr(args, "target", None))
    if args.csv:
        items, base = csv_items(spec, args.csv, args.images)
    elif spec.key_width > 1:
        columns = ",".join(spec.image_columns + spec.covariates)
        raise UserError(f"this model takes {columns} per input, which a folder cannot give; "
                        f"pass --csv FILE with the columns {columns}")
    elif not args.images:
        raise UserError("nothing to predict: pass --images DIR (a folder of images) or --csv FILE (a list of them)")
    else:
        items, base = folder_items(args.images)
    summary = predict_items(model, spec, items, args.out, base, batch_size=args.batch_size,
                            progress=not args.quiet, model_file=args.model)
    print(f"{spec.app} predict: {summary['labelled']} labelled now, {summary['already_done']} done before, "
          f"{summary['errors']} unreadable (listed in {summary['errors_csv']}), "
          f"{summary['images_per_second']:.1f} images/s -> {summary['csv']}")
    if not summary["rows"]:
        where = f"--csv {args.csv}" if args.csv else f"--images {args.images}"
        what = (f"none of its {len(items)} input(s) could be read (listed in {summary['errors_csv']})" if items
                else "it lists no inputs" if args.csv else f"it holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        raise UserError(f"nothing labelled: {where}: {what}")
    return summary


def save_prediction_grid(labels_csv, images_dir, out_png, n: int = 9, seed: int = 0, ncols: int = 3) -> Path:
    """A grid (3x3 by default) of randomly chosen labelled images, titled `label (confidence)`.

    Args:
        labels_csv: a CSV written by `label_folder` (single-label, `file` column).
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
