"""Pascal VOC (VOCdevkit layout): XML annotations -> tables -> tf.data pipelines.

The layout, as in `VOCdevkit/VOC2012/`:

    JPEGImages/<id>.jpg
    Annotations/<id>.xml
    ImageSets/Main/{train,val}.txt      one image id per line

`read_voc(root, split)` parses the XML of a split's ids into two tables:

- images: `image_id, path, width, height` and one 0/1 column per class of
  `VOC_CLASSES` (the multi-hot labels; `label_matrix(images)` stacks them);
- boxes: `image_id, path, class_name, label, xmin, ymin, xmax, ymax,
  difficult, truncated`, VOC's 1-based inclusive pixel coordinates.

Problems are found per file and reported with its name: a missing
annotation or image, malformed XML or a missing/zero `<size>` (the image is
left out), an unknown class name (the object is left out), a box outside the
image or degenerate (the object still counts for the image's labels, since
the annotator saw it, but gives no box). `on_error="fail"` raises on the
first; `"skip"` leaves them out, logs the count and keeps the messages in
`images.attrs["problems"]`. Boxes may start at 0 (some converters write
0-based boxes) and end at the image's width/height.

`patch_table(boxes, min_size)` keeps the boxes of at least `min_size`
pixels a side (the patches, one label each); `cache_patches` crops them
once into JPEG files under a cache folder keyed by the data and the minimum
size, so later epochs and runs only read small files. `full_dataset` and
`patch_dataset` are the tf.data builders (FullSet: image and multi-hot
labels; PatchSet: resized crop and its class id); `positive_weights` gives
the per-class weights of positives for a weighted binary cross-entropy.

Patches that keep their shape: `patch_sizes(patches, max_side, step)` gives
each patch the size it is resized to, its aspect ratio kept within the
rounding to `step` (`patch_sizes` says the bounds), and
`bucketed_patch_dataset` batches patches of one size together (one batch
holds one `(height, width)` bucket), for a fully convolutional backbone with
spatial pyramid pooling.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import tensorflow as tf

from hybridvision.common.data.images import decode_image, drop_unreadable, file_table, log_skipped
from hybridvision.common.data.names import PATCH_SHAPES, VOC_CLASSES  # noqa: F401 - PATCH_SHAPES re-exported
from hybridvision.common.data.pipeline import cached_images

log = logging.getLogger("hybridvision")

LAYOUT = "<root>/JPEGImages/<id>.jpg, <root>/Annotations/<id>.xml, <root>/ImageSets/Main/<split>.txt"
BOX_COLUMNS = ["image_id", "path", "class_name", "label", "xmin", "ymin", "xmax", "ymax", "difficult", "truncated"]
ON_ERROR = ("skip", "fail")
DEFAULT_PATCH_CACHE = Path(".cache") / "voc_patches"
_COMPLETE = ".complete"


class _Bad(Exception):
    """A problem with one annotation file (the message names the file)."""


def split_file(root, split) -> Path:
    return Path(root) / "ImageSets" / "Main" / f"{split}.txt"


def has_split(root, split) -> bool:
    """True when `ImageSets/Main/<split>.txt` exists under `root`."""
    return split_file(root, split).is_file()


def read_split_ids(root, split):
    """The image ids listed in `ImageSets/Main/<split>.txt` (blank lines ignored)."""
    root = Path(root)
    if not (root / "Annotations").is_dir():
        raise FileNotFoundError(
            f"{root / 'Annotations'} does not exist; pass the VOC2012 folder itself as the root ({LAYOUT})"
        )
    path = split_file(root, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; the split files are {LAYOUT}")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{path} lists no image ids; write one id per line")
    return ids


def _int(element, tag, where):
    node = element.find(tag)
    if node is None or node.text is None:
        raise _Bad(f"{where}: no <{tag}>")
    try:
        return int(round(float(node.text)))
    except ValueError:
        raise _Bad(f"{where}: <{tag}> is {node.text.strip()!r}, not a number") from None


def _flag(element, tag, where):
    # Optional 0/1 tags; absent means 0 as in the VOC devkit.
    return _int(element, tag, where) if element.find(tag) is not None else 0


def _parse_annotation(xml_path, image_dir, image_id, report):
    """(image row, object rows) of one file; file-level problems raise `_Bad`."""
    name = xml_path.name
    if not xml_path.is_file():
        raise _Bad(f"{xml_path}: annotation file missing")
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as err:
        raise _Bad(f"{name}: malformed XML ({err})") from None
    ann = tree.getroot()
    size = ann.find("size")
    if size is None:
        raise _Bad(f"{name}: no <size>")
    width, height = _int(size, "width", name), _int(size, "height", name)
    if width <= 0 or height <= 0:
        raise _Bad(f"{name}: image size {width}x{height} is not positive")
    image_path = image_dir / f"{image_id}.jpg"
    if not image_path.is_file():
        filename = ann.findtext("filename", default="").strip()
        if filename and (image_dir / filename).is_file():
            image_path = image_dir / filename
        else:
            raise _Bad(f"{name}: image {image_path} missing")
    objects = []
    for k, obj in enumerate(ann.findall("object")):
        where = f"{name} object {k + 1}"
        class_name = (obj.findtext("name") or "").strip()
        if class_name not in VOC_CLASSES:
            report(f"{where}: unknown class name {class_name!r} (not one of the 20 VOC classes)")
            continue
        box = obj.find("bndbox")
        if box is None:
            raise _Bad(f"{where}: no <bndbox>")
        xmin, ymin, xmax, ymax = (_int(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
        row = {
            "class_name": class_name,
            "difficult": _flag(obj, "difficult", where),
            "truncated": _flag(obj, "truncated", where),
            "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax, "box_ok": True,
        }  # fmt: skip
        if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
            report(f"{where}: box ({xmin},{ymin},{xmax},{ymax}) outside the {width}x{height} image", "box left out")
            row["box_ok"] = False
        elif xmax <= xmin or ymax <= ymin:
            report(f"{where}: degenerate box ({xmin},{ymin},{xmax},{ymax})", "box left out")
            row["box_ok"] = False
        objects.append(row)
    image = {"image_id": image_id, "path": str(image_path), "width": width, "height": height}
    return image, objects


def read_voc(root, split="train", on_error="skip", exclude_difficult=False, ids=None):
    """Parses the annotations of one split into (images, boxes) tables.

    Args:
        root: the VOC folder holding `JPEGImages/`, `Annotations/` and
            `ImageSets/Main/` (e.g. `VOCdevkit/VOC2012`).
        split: the `ImageSets/Main/<split>.txt` to read (ignored with `ids`).
        on_error: "skip" (leave bad files/objects out, log them) or "fail"
            (raise ValueError naming the file).
        exclude_difficult: leave objects marked `<difficult>1` out of labels
            and boxes (kept by default).
        ids: image ids to read instead of a split file.

    Returns:
        `(images, boxes)` DataFrames (see the module docstring);
        `images.attrs["problems"]` lists the skipped files and objects.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"--on-bad-annotation {on_error!r} is not valid; choose one of: {', '.join(ON_ERROR)}")
    root = Path(root)
    ids = list(ids) if ids is not None else read_split_ids(root, split)
    problems = []

    def report(message, left_out="object left out"):
        if on_error == "fail":
            raise ValueError(f"{message}; fix the annotation or pass --on-bad-annotation skip")
        problems.append(f"{message} ({left_out})")

    images, boxes = [], []
    for image_id in ids:
        try:
            image, objects = _parse_annotation(root / "Annotations" / f"{image_id}.xml", root / "JPEGImages", image_id, report)
        except _Bad as err:
            report(str(err), left_out="image left out")
            continue
        if exclude_difficult:
            objects = [o for o in objects if not o["difficult"]]
        present = {o["class_name"] for o in objects}
        images.append({**image, **{c: int(c in present) for c in VOC_CLASSES}})
        for o in objects:
            if o.pop("box_ok"):
                boxes.append({"image_id": image_id, "path": image["path"], "label": VOC_CLASSES.index(o["class_name"]), **o})
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        log.warning("VOC %s: skipped %d bad annotation(s) in %s: %s", split, len(problems), root, shown)
    images = file_table(images, ["image_id", "path", "width", "height", *VOC_CLASSES])
    boxes = file_table(boxes, BOX_COLUMNS)
    if images.empty:
        raise ValueError(f"no usable annotations among the {len(ids)} ids of {root} ({split}); see the warnings above")
    images.attrs["problems"] = problems
    return images, boxes


def split_train_val(images, boxes, val_fraction=0.2, seed=0):
    """Splits one split's tables by image, reproducibly: ((images, boxes), (images, boxes)).

    For data without `val.txt` (e.g. a sample with only `train.txt`).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be between 0 and 1 (exclusive); got {val_fraction!r}")
    n_val = int(round(len(images) * val_fraction))
    if n_val < 1 or n_val >= len(images):
        raise ValueError(f"--val-fraction {val_fraction} of {len(images)} images leaves an empty train or val split")
    order = np.random.default_rng(seed).permutation(len(images))
    val_ids = set(images["image_id"].iloc[order[:n_val]])

    def part(is_val):
        im = images[images["image_id"].isin(val_ids) == is_val].reset_index(drop=True)
        bx = boxes[boxes["image_id"].isin(val_ids) == is_val].reset_index(drop=True)
        return im, bx

    return part(False), part(True)


def read_train_val(root, val_fraction=0.2, seed=0, on_error="skip", exclude_difficult=False):
    """`({"train": (images, boxes), "val": (images, boxes)}, note)` of a VOC folder.

    Reads `train.txt` and `val.txt`; without `val.txt` the train ids are
    split by `split_train_val` and `note` says so (else it is None).
    """
    kwargs = {"on_error": on_error, "exclude_difficult": exclude_difficult}
    train = read_voc(root, "train", **kwargs)
    if has_split(root, "val"):
        return {"train": train, "val": read_voc(root, "val", **kwargs)}, None
    train, val = split_train_val(*train, val_fraction=val_fraction, seed=seed)
    note = (
        f"{split_file(root, 'val')} is missing: val = {len(val[0])} of the {len(train[0]) + len(val[0])} "
        f"train ids, drawn with seed {seed} (--val-fraction {val_fraction})"
    )
    return {"train": train, "val": val}, note


def label_matrix(images):
    """The multi-hot labels of an images table, float32 `(n, 20)`."""
    return images[list(VOC_CLASSES)].to_numpy(dtype="float32")


def positive_weights(labels, max_weight=50.0):
    """Per-class weights of positives for a weighted binary cross-entropy.

    Each class gets `negatives / positives` of the training labels, so
    positives and negatives weigh alike in the loss (VOC is very imbalanced:
    unweighted, a model predicts all zeros). Clipped to
    `[1 / max_weight, max_weight]`; a class with no positives gets
    `max_weight` (its positives term is zero anyway).

    Args:
        labels: `(n, classes)` 0/1 array.
        max_weight: the clip bound.

    Returns:
        float32 array `(classes,)`.
    """
    labels = np.asarray(labels, dtype="float64")
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f"labels must be a non-empty (samples, classes) array; got shape {labels.shape}")
    if max_weight < 1:
        raise ValueError(f"max_weight must be at least 1; got {max_weight}")
    positives = labels.sum(axis=0)
    negatives = labels.shape[0] - positives
    weights = np.where(positives > 0, negatives / np.maximum(positives, 1), max_weight)
    return np.clip(weights, 1.0 / max_weight, max_weight).astype("float32")


def patch_table(boxes, min_size=64):
    """The boxes of at least `min_size` pixels a side: one patch (and label) each.

    Sizes count pixels of VOC's inclusive boxes: `xmax - xmin + 1`.
    """
    if min_size < 1:
        raise ValueError(f"--min-patch must be at least 1 pixel; got {min_size}")
    width = boxes["xmax"] - boxes["xmin"] + 1
    height = boxes["ymax"] - boxes["ymin"] + 1
    patches = boxes[(width >= min_size) & (height >= min_size)].reset_index(drop=True)
    patches.attrs = dict(boxes.attrs)
    return patches


def _cache_key(patches):
    digest = hashlib.sha1()
    for path, group in patches.groupby("path", sort=True):
        stat = os.stat(path)
        digest.update(f"{os.path.abspath(path)}|{stat.st_mtime_ns}|{stat.st_size}".encode())
        coords = group[["xmin", "ymin", "xmax", "ymax", "label"]].to_numpy(dtype="int64")
        digest.update(coords[np.lexsort(coords.T[::-1])].tobytes())
    return digest.hexdigest()[:16]


def _crop_name(row):
    return f"{row.image_id}_{row.label}_{row.xmin}_{row.ymin}_{row.xmax}_{row.ymax}.jpg"


def cache_patches(patches, cache_dir=None):
    """Crops every patch once into a JPEG file; returns the table with `patch_path`.

    The folder is `<cache_dir>/<key>` where the key hashes the source images
    (path, modification time, size) and the boxes, so a change of data or
    of the minimum size gives a new folder and an unchanged one is reused.
    An interrupted caching run is completed by the next call. Images that
    do not decode are skipped and logged.

    Args:
        patches: a `patch_table`.
        cache_dir: root of the cache (default `.cache/voc_patches`).
    """
    if patches.empty:
        return patches.assign(patch_path=pd.Series(dtype=str))
    folder = Path(cache_dir or DEFAULT_PATCH_CACHE) / _cache_key(patches)
    folder.mkdir(parents=True, exist_ok=True)
    names = [_crop_name(r) for r in patches.itertuples()]
    bad = {}
    if not (folder / _COMPLETE).exists():
        made = 0
        for path, group in patches.groupby("path", sort=False):
            todo = [r for r in group.itertuples() if not (folder / _crop_name(r)).exists()]
            if not todo:
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                bad[path] = "cannot decode"
                continue
            for r in todo:
                # VOC boxes are 1-based and inclusive; a 0 (0-based converters) maps to column 0.
                crop = image[max(r.ymin - 1, 0) : r.ymax, max(r.xmin - 1, 0) : r.xmax]
                target = folder / _crop_name(r)
                tmp = target.with_name(target.stem + ".tmp.jpg")
                cv2.imwrite(str(tmp), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
                os.replace(tmp, target)
                made += 1
        log.info("cached %d patch crops in %s", made, folder)
        if not bad:
            (folder / _COMPLETE).write_text(json.dumps({"patches": len(patches)}) + "\n")
    log_skipped(sorted(bad.items()), what="images (their patches)")
    table = patches.assign(patch_path=[str(folder / n) for n in names])
    table = table[~table["path"].isin(set(bad))].reset_index(drop=True)
    table.attrs = dict(patches.attrs)
    return table


def _to_float(flip: bool):
    """The map after the cache: float32 pixels, and a random horizontal flip per image with `flip`."""

    def convert(image, label):
        image = tf.cast(image, tf.float32)
        return (tf.image.random_flip_left_right(image) if flip else image), label

    return convert


def _pipeline(paths, labels, image_size, batch_size, shuffle, seed, cache, augment):
    def decode(path, label):
        # uint8: the form the cache holds (hybridvision.common.data.pipeline).
        image = decode_image(path, (image_size, image_size))
        return tf.saturate_cast(tf.round(image), tf.uint8), label

    return cached_images(tf.data.Dataset.from_tensor_slices((paths, labels)), decode, batch_size, shuffle=shuffle,
                         seed=seed, cache=cache, per_example=_to_float(augment))


def full_dataset(images, image_size, batch_size, shuffle=False, seed=0, cache=False, augment=False):
    """FullSet: batches of (image float32 0..255, multi-hot labels float32 (batch, 20)).

    The images are not normalised: the models do their backbone's preprocessing.

    Args:
        images: a `read_voc` images table.
        image_size: side of the square the images are resized to.
        batch_size: images per batch.
        shuffle: reshuffle every epoch (seeded).
        seed: shuffle and flip seed.
        cache: False, True (decoded images in memory) or a file path.
        augment: random horizontal flips.
    """
    images = drop_unreadable(images, "path", "images")
    if images.empty:
        raise ValueError("no readable images left to build the FullSet from")
    return _pipeline(images["path"].to_numpy(str), label_matrix(images), image_size, batch_size, shuffle, seed, cache, augment)


def patch_dataset(patches, image_size, batch_size, shuffle=False, seed=0, cache=False, augment=False):
    """PatchSet: batches of (crop resized to image_size, class id int32).

    Args:
        patches: a table from `cache_patches` (with `patch_path`).
        Others as `full_dataset`.
    """
    if "patch_path" not in patches.columns:
        raise ValueError("the patch table has no `patch_path`; pass it through cache_patches(...) first")
    if patches.empty:
        raise ValueError("no patches to build the PatchSet from; lower --min-patch or check the boxes")
    labels = patches["label"].to_numpy("int32")
    return _pipeline(patches["patch_path"].to_numpy(str), labels, image_size, batch_size, shuffle, seed, cache, augment)


def patch_sizes(patches, max_side, step=32):
    """`(heights, widths)` int arrays: the size each patch keeps (bucketed).

    A patch is scaled by `min(1, max_side / longest side)`: never enlarged,
    shrunk so that its longest side fits `max_side`. Each side is then
    rounded to the nearest multiple of `step` (halves up) and clipped to
    `[step, cap]`, `cap` being `max_side` rounded down to a multiple of
    `step` (at least `step`). So every patch lies in one of at most
    `(cap / step)^2` size buckets, its aspect ratio is kept up to the
    rounding, and is bounded to `cap / step` (5:1 with 160 and 32; a longer
    box is widened on its short side). `step` = 32, the stride of the
    EfficientNet / VGG backbones, makes every feature map a whole number of
    cells with no padding.

    Args:
        patches: a `patch_table` (boxes in VOC's inclusive pixel coordinates).
        max_side: the longest side a patch may have (`--image-size`).
        step: the bucket grid in pixels (`--patch-bucket`).
    """
    if step < 1 or max_side < 1:
        raise ValueError(f"max_side and step must be positive; got max_side={max_side}, step={step}")
    width = (patches["xmax"] - patches["xmin"] + 1).to_numpy("float64")
    height = (patches["ymax"] - patches["ymin"] + 1).to_numpy("float64")
    scale = np.minimum(1.0, max_side / np.maximum(np.maximum(width, height), 1.0))
    cap = max(step, (max_side // step) * step)

    def snap(side):
        return np.clip(np.floor(side * scale / step + 0.5) * step, step, cap).astype("int32")

    return snap(height), snap(width)


def _bucket_key(step):
    def key(image, label):
        shape = tf.shape(image, out_type=tf.int64)
        return (shape[0] // step) * 4096 + shape[1] // step

    return key


def bucketed_patch_dataset(
    patches, max_side, batch_size, step=32, shuffle=False, seed=0, cache=False, augment=False
):
    """PatchSet with patches at their own size: batches of one `(height, width)` bucket each.

    Each patch is resized to its `patch_sizes` size (aspect ratio kept up to
    the `step` rounding), then `tf.data.Dataset.group_by_window` collects
    patches of one size into batches of up to `batch_size` (a bucket's last
    batch of an epoch may be smaller: every patch is seen once per epoch).
    With `shuffle`, the patch order and so the batches change every epoch.

    Args:
        patches: a table from `cache_patches` (with `patch_path`).
        max_side: longest side of a patch (`--image-size`).
        batch_size: patches per batch at most.
        step: the bucket grid (see `patch_sizes`).
        Others as `full_dataset`.
    """
    if "patch_path" not in patches.columns:
        raise ValueError("the patch table has no `patch_path`; pass it through cache_patches(...) first")
    if patches.empty:
        raise ValueError("no patches to build the PatchSet from; lower --min-patch or check the boxes")
    heights, widths = patch_sizes(patches, max_side, step)
    paths = patches["patch_path"].to_numpy(str)
    labels = patches["label"].to_numpy("int32")

    def decode(path, label, height, width):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(image, tf.stack([height, width]), method="bilinear")
        return tf.saturate_cast(tf.round(image), tf.uint8), label

    # Each bucket gives ceil(count / batch_size) batches whatever the order: a known
    # length lets Keras show progress and not warn that the input ran out.
    _, counts = np.unique(heights.astype("int64") * 4096 + widths, return_counts=True)

    def batch(dataset):
        dataset = dataset.group_by_window(
            key_func=_bucket_key(step), reduce_func=lambda _, window: window.batch(batch_size), window_size=batch_size
        )
        return dataset.apply(tf.data.experimental.assert_cardinality(int(np.sum(-(-counts // batch_size)))))

    return cached_images(tf.data.Dataset.from_tensor_slices((paths, labels, heights, widths)), decode, batch,
                         shuffle=shuffle, seed=seed, cache=cache, per_example=_to_float(augment))
