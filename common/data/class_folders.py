"""Class-folder datasets: `<root>/<class>/*.jpg` -> table -> tf.data pipeline.

`read_class_folders` turns a folder tree into a table (path, label,
class_name); `split_table` splits it reproducibly; `make_dataset` is the one
tf.data builder for any table of image paths (parallel decode, optional
cache, augmentation after the cache, prefetch: the tail of
`hybridvision.common.data.pipeline`). `image_dataset_from_folders` wires the
three together with the names of `keras.utils.image_dataset_from_directory`.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from hybridvision.common.data.affine_augment import AffineAugmentation
from hybridvision.common.data.images import IMAGE_EXTENSIONS, decode_image, drop_unreadable, file_table, image_files
from hybridvision.common.data.pipeline import cached_images, path_column

SPLITS = ("train", "val", "test")
LAYOUT = "<root>/<class>/*.jpg (or <root>/{train,val,test}/<class>/*.jpg with split=)"


def read_class_folders(root, split=None):
    """Lists the images of a class-folder tree as a table.

    Args:
        root: folder holding one subfolder per class (images are searched
            recursively inside each class folder).
        split: None, or "train" / "val" / "test" to read `<root>/<split>/`.

    Returns:
        `pandas.DataFrame` with columns `path`, `label` (int, index into the
        sorted class names) and `class_name`; `table.attrs["class_names"]`
        holds all class names, also those a later split may lose.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Image folder {str(root)!r} does not exist; expected the layout {LAYOUT}."
        )
    folder = root
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"`split` must be one of {SPLITS} or None; got {split!r}.")
        folder = root / split
        if not folder.is_dir():
            present = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise FileNotFoundError(
                f"Split folder {str(folder)!r} does not exist (found {present}); "
                f"expected <root>/{{train,val,test}}/<class>/*.jpg, or pass split=None."
            )
    class_names = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not class_names:
        raise ValueError(f"No class folders in {str(folder)!r}; expected the layout {LAYOUT}.")
    paths, counts = [], []
    for name in class_names:
        found = image_files(folder / name)
        if not found:
            raise ValueError(
                f"Class folder {str(folder / name)!r} holds no images "
                f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder."
            )
        paths += found
        counts.append(len(found))
    # As columns, not one tuple per image.
    columns = {"path": paths, "label": np.repeat(np.arange(len(class_names)), counts),
               "class_name": np.repeat(np.array(class_names, dtype=object), counts)}
    table = file_table(columns, ["path", "label", "class_name"], text=("path", "class_name"))
    table.attrs["class_names"] = class_names
    return table


def split_table(table, validation_split, seed=0, stratify=True):
    """Splits a table into (train, validation), reproducibly for a seed.

    With `stratify=True` each label keeps its share: `round(n * split)` rows
    of every label go to validation. Row order within each part is the
    original order.
    """
    if not 0.0 < validation_split < 1.0:
        raise ValueError(
            f"`validation_split` must be between 0 and 1 (exclusive); got {validation_split!r}."
        )
    if stratify and "label" not in table.columns:
        raise ValueError("split_table(stratify=True) needs a `label` column; pass stratify=False.")
    rng = np.random.default_rng(seed)
    groups = (
        table.groupby("label", sort=True).indices.values() if stratify else [np.arange(len(table))]
    )
    val_positions = []
    for positions in groups:
        count = round(len(positions) * validation_split)
        val_positions.extend(rng.permutation(positions)[:count])
    is_val = np.zeros(len(table), dtype=bool)
    is_val[np.asarray(val_positions, dtype=int)] = True
    train, val = table[~is_val].reset_index(drop=True), table[is_val].reset_index(drop=True)
    train.attrs, val.attrs = dict(table.attrs), dict(table.attrs)
    return train, val


def make_dataset(
    table,
    image_size,
    batch_size,
    shuffle=True,
    seed=0,
    augment=None,
    cache=False,
    label_mode="int",
    num_classes=None,
    drop_remainder=False,
    extra_columns=None,
    validate=True,
):
    """Builds a batched tf.data pipeline from a table with `path` and `label`.

    Files that do not decode are dropped first and logged as a warning on
    the "hybridvision" logger (`validate=False` skips the check).

    Args:
        table: DataFrame with a `path` column and, unless `label_mode=None`,
            a `label` column of ints.
        image_size: `(height, width)`.
        batch_size: images per batch.
        shuffle: reshuffle every epoch (seeded).
        seed: shuffle seed.
        augment: an `AffineAugmentation` (or any layer taking a batch and
            `training=True`), or a list of them applied in order, after the
            cache; None for none. An `AffineAugmentation` warps with OpenCV
            here (`use_opencv=True`).
        cache: False, True (in memory) or a file path for `Dataset.cache`.
        label_mode: "int" (int32 labels), "categorical" (one-hot float32) or
            None (images only).
        num_classes: one-hot depth; default from `table.attrs` or the labels.
        drop_remainder: drop the last incomplete batch.
        extra_columns: numeric columns (e.g. covariates) to deliver as a
            second input: elements become `((images, extras), labels)` with
            `extras` float32 `(batch, len(extra_columns))`.
        validate: check that every file decodes before building.

    Returns:
        `tf.data.Dataset` of `(images, labels)`, images float32 in 0..255
        (or as `augment` leaves them, e.g. rescaled).
    """
    if "path" not in table.columns:
        raise ValueError(f"The table needs a `path` column; it has {list(table.columns)}.")
    if label_mode not in ("int", "categorical", None):
        raise ValueError(f"`label_mode` must be 'int', 'categorical' or None; got {label_mode!r}.")
    if label_mode is not None and "label" not in table.columns:
        raise ValueError("The table needs a `label` column, or pass label_mode=None.")
    extra_columns = list(extra_columns or [])
    missing = [c for c in extra_columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"`extra_columns` {missing} are not in the table (columns: {list(table.columns)})."
        )
    image_size = tuple(image_size)
    class_names = table.attrs.get("class_names")

    if validate:
        table = drop_unreadable(table)
    if len(table) == 0:
        raise ValueError("No readable images left to build a dataset from.")

    columns = {"path": path_column(table["path"])}
    if label_mode is not None:
        columns["label"] = table["label"].to_numpy().astype("int32")
    if extra_columns:
        columns["extras"] = table[extra_columns].to_numpy().astype("float32")
    depth = None
    if label_mode == "categorical":
        depth = num_classes or (len(class_names) if class_names else int(table["label"].max()) + 1)

    def decode(row):
        row = dict(row)
        image = decode_image(row.pop("path"), image_size)
        # uint8: the form the cache holds (hybridvision.common.data.pipeline).
        row["image"] = tf.saturate_cast(tf.round(image), tf.uint8)
        return row

    def finish(row):
        images = tf.cast(row["image"], tf.float32)
        for step in augment if isinstance(augment, (list, tuple)) else [augment]:
            if isinstance(step, AffineAugmentation):
                # OpenCV warps about 3x faster than the TF kernel on CPU.
                images = step(images, training=True, use_opencv=True)
            elif step is not None:
                images = step(images, training=True)
        inputs = (images, row["extras"]) if extra_columns else images
        if label_mode is None:
            return inputs
        labels = row["label"]
        if label_mode == "categorical":
            labels = tf.one_hot(labels, depth, dtype=tf.float32)
        return inputs, labels

    dataset = cached_images(columns, decode, batch_size, shuffle=shuffle,
                            seed=seed, cache=cache, drop_remainder=drop_remainder, per_batch=finish)
    if class_names is not None:
        dataset.class_names = list(class_names)
    return dataset


def image_dataset_from_folders(
    root,
    image_size,
    batch_size=32,
    validation_split=None,
    subset=None,
    seed=0,
    augment=None,
    label_mode="int",
    cache=False,
    split=None,
):
    """Class-folder dataset(s), named after `keras.utils.image_dataset_from_directory`.

    `augment` is applied to the training data with `training=True`; the
    validation data goes through it with `training=False`, so a `rescale`
    reaches both (as with ImageDataGenerator).

    Args:
        root: `<root>/<class>/*.jpg` (or the split layout with `split=`).
        image_size: `(height, width)`.
        batch_size: images per batch.
        validation_split: fraction held out (stratified, seeded), or None.
        subset: "training", "validation" or "both" (the default when
            `validation_split` is set) -> `(train, val)`.
        seed: seed of the split and the shuffling.
        augment: an `AffineAugmentation` or None.
        label_mode: "int" or "categorical".
        cache: as in `make_dataset`.
        split: None or "train" / "val" / "test" subfolder.

    Returns:
        One `tf.data.Dataset`, or `(train, val)` for subset "both".
    """
    table = read_class_folders(root, split=split)
    # Drop unreadable files before splitting so both parts keep their shares.
    table = drop_unreadable(table)
    common = {
        "image_size": image_size,
        "batch_size": batch_size,
        "seed": seed,
        "label_mode": label_mode,
        "cache": cache,
    }
    if not validation_split:
        if subset is not None:
            raise ValueError(f"subset={subset!r} needs a validation_split.")
        return make_dataset(table, shuffle=True, augment=augment, **common)
    subset = subset or "both"
    if subset not in ("training", "validation", "both"):
        raise ValueError(f"`subset` must be 'training', 'validation' or 'both'; got {subset!r}.")
    train_table, val_table = split_table(table, validation_split, seed=seed)
    val_augment = None
    if augment is not None:
        # Only the deterministic part (rescale) of the augmentation applies to validation.
        def val_augment(images, training=True):
            return augment(images, training=False)

    if subset == "training":
        return make_dataset(train_table, shuffle=True, augment=augment, **common)
    val = make_dataset(val_table, shuffle=False, augment=val_augment, **common)
    if subset == "validation":
        return val
    return make_dataset(train_table, shuffle=True, augment=augment, **common), val
