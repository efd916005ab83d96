"""A table of images and columns (a CSV) -> train/val/test tables -> tf.data; CelebA's layout as one more reader.

The table (`labels.csv`, or any CSV named by `--labels`) has one row per image::

    image,malignant,age,sex,site,split
    images/0001.jpg,1,65,male,upper extremity,train
    images/0002.jpg,0,,female,trunk,test

- the image column: a path relative to the table's folder (or absolute);
- the target column: two classes (0/1, yes/no, any two strings) or more;
- covariate columns, chosen by name: numbers or categories (inferred per
  column, or forced), an empty cell for a missing value;
- an optional `split` column (train / val / test), else a seeded split
  stratified by the target.

Every cell is read as text and kept as it is (a covariate's coding is
fitted on the training split later, `hybridvision.common.covariate_coding`,
and lives in the model), so the same file name or category comes out
whatever string storage pandas uses. Problems a user can fix (a missing
column or file, a target with one class, a covariate that is also the
target, text in a numeric column, too many unreadable images) are one-line
errors naming the row or the column and the fix.

    data = read_image_table("data/lesions/labels.csv", target="malignant", covariates=["age", "sex"])
    tables, note = split_table(data.table, "malignant", seed=0)
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hybridvision.common.cli import UserError
from hybridvision.common.covariate_coding import KINDS, YES_NO, as_number, is_missing
from hybridvision.common.data.images import drop_unreadable, validate_images

LOGGER = logging.getLogger("hybridvision")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
NUMERIC_SHARE = 0.9  # a column whose non-empty cells are at least this share numbers is numeric


@dataclasses.dataclass
class TableData:
    """What a reader gives the covariate app.

    Attributes:
        table: one row per image: `path` (absolute), `label` (class index), `partition` (train/val/test,
            or "" where the table gives none) and the covariate columns as text.
        target: the target's column name; `class_names`: the classes in label order (binary: negative first).
        covariates: covariate column names, in order; `kinds`: `{column: "numeric" | "categorical"}` forced.
        source: the file read, for messages.
    """

    table: pd.DataFrame
    target: str
    class_names: list
    covariates: list
    kinds: dict
    source: str


def _line(row: int) -> str:
    return f"line {row + 2}"  # the header is line 1


def _columns_hint(columns) -> str:
    return ", ".join(map(str, columns)) or "none"


def _class_names(cells) -> list:
    """The target's classes in label order: numbers in numeric order, else sorted text; 0/1 stays 0, 1."""
    values = sorted(set(cells))
    try:
        return [str(v) for _, v in sorted((float(v), v) for v in values)]
    except ValueError:
        return values


def check_column_kinds(table, covariates, kinds, source) -> dict:
    """The kind of every covariate (forced or inferred); one line for text in a numeric column."""
    out = {}
    for name in covariates:
        cells = table[name].to_numpy(dtype=object)
        present = [(row, v) for row, v in enumerate(cells) if not is_missing(v)]
        text = []
        for row, v in present:
            try:
                as_number(v)
            except ValueError:
                text.append((row, v))
        kind = kinds.get(name)
        if kind is None:
            kind = "numeric" if present and len(text) <= (1 - NUMERIC_SHARE) * len(present) else "categorical"
        if kind == "numeric" and text:
            row, value = text[0]
            raise UserError(f"{source}: covariate '{name}' is numeric but holds {str(value)!r} at {_line(row)}"
                            f"{f' (and {len(text) - 1} more)' if len(text) > 1 else ''}; empty the cell (missing) "
                            f"or pass --categorical {name}")
        out[name] = kind
    return out


def read_image_table(path, target: str | None, covariates=None, image_column: str = "image",
                     categorical=(), numeric=(), split_column: str = "split", max_unreadable: float = 0.05) -> TableData:
    """Read and check a CSV of images and columns.

    Args:
        path: the CSV; image paths are relative to its folder.
        target: the column to predict (two or more classes); rows with an empty target are left out (logged).
        covariates: columns given to the model; None: every column but the image, target and split ones.
        image_column: the column of image paths.
        categorical, numeric: columns whose kind is forced (else inferred: numeric when at least 90% of
            the non-empty cells are numbers, and then every non-empty cell must be).
        split_column: optional column of train / val / test.
        max_unreadable: the share of images that may be missing or unreadable (left out, logged) before
            the table is refused.

    Returns:
        A `TableData`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--labels {path}: no such file; pass a CSV with one row per image (e.g. labels.csv)")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"--labels {path} is not a readable CSV ({str(error).splitlines()[0]}); "
                        "save it as comma-separated UTF-8 with a header row") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    columns = list(frame.columns)
    if image_column not in columns:
        raise UserError(f"{path} has no '{image_column}' column (its columns: {_columns_hint(columns)}); "
                        "pass --image-column NAME")
    if not target:
        raise UserError(f"no --target for {path}; pass the column to predict (its columns: {_columns_hint(columns)})")
    if target not in columns:
        raise UserError(f"--target {target} is not a column of {path} (its columns: {_columns_hint(columns)})")
    if target == image_column:
        raise UserError(f"--target {target} is the image column; pass the column to predict")
    if covariates is None:
        covariates = [c for c in columns if c not in (image_column, target, split_column)]
    covariates = list(covariates)
    for name in covariates:
        if name not in columns:
            raise UserError(f"--covariates {name} is not a column of {path} (its columns: {_columns_hint(columns)})")
        if name == target:
            raise UserError(f"--covariates holds the target {target}; leave it out (the task would be trivial)")
        if name in (image_column, split_column):
            raise UserError(f"--covariates {name} is the {'image' if name == image_column else 'split'} column; "
                            "leave it out")
    if len(set(covariates)) < len(covariates):
        raise UserError(f"--covariates names a column twice ({','.join(covariates)})")
    forced = {**{c: "numeric" for c in numeric}, **{c: "categorical" for c in categorical}}
    for name in forced:
        if name not in covariates:
            raise UserError(f"--{forced[name]} {name} is not one of the covariates ({','.join(covariates) or 'none'})")
    both = set(numeric) & set(categorical)
    if both:
        raise UserError(f"{', '.join(sorted(both))} is both --numeric and --categorical; choose one")

    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise UserError(f"{path} has a header but no rows")
    empty_image = [i for i, v in enumerate(frame[image_column]) if is_missing(v)]
    if empty_image:
        raise UserError(f"{path}: the '{image_column}' cell is empty at {_line(empty_image[0])}; "
                        "give every row its image file")
    names = frame[image_column].str.strip()
    duplicates = names[names.duplicated(keep=False)]
    if len(duplicates):
        first = duplicates.index[duplicates == duplicates.iloc[0]]
        raise UserError(f"{path}: image {duplicates.iloc[0]!r} is listed twice ({', '.join(_line(i) for i in first[:2])}"
                        f"{f' and {len(duplicates.unique()) - 1} more images too' if len(duplicates.unique()) > 1 else ''}"
                        "); keep one row per image")
    unlabelled = [i for i, v in enumerate(frame[target]) if is_missing(v)]
    if unlabelled:
        LOGGER.warning("%d rows of %s have no %s (e.g. %s); they are left out", len(unlabelled), path, target,
                       _line(unlabelled[0]))
        frame = frame.drop(index=unlabelled)

    base = path.parent
    frame["path"] = [str(p if p.is_absolute() else base / p) for p in map(Path, names[frame.index])]
    _check_images(frame, path, image_column, max_unreadable)
    frame = frame.reset_index(drop=True)

    targets = [str(v).strip() for v in frame[target]]
    class_names = _class_names(targets)
    if len(class_names) < 2:
        raise UserError(f"--target {target} has one class ({class_names[0]!r}) in {path}; a classifier needs two or more")
    index = {name: i for i, name in enumerate(class_names)}
    partition = [""] * len(frame)
    if split_column in columns:
        partition = []
        for row, v in zip(frame.index, frame[split_column]):
            name = SPLIT_NAMES.get(str(v).strip().lower())
            if name is None:
                raise UserError(f"{path}: the '{split_column}' column holds {str(v)!r} at row {row + 1}; "
                                "use train, val or test (or drop the column for a seeded split)")
            partition.append(name)
    kinds = check_column_kinds(frame, covariates, forced, path)
    table = pd.DataFrame({
        "path": pd.Series(frame["path"].to_numpy(dtype=object), dtype=object),
        "label": np.array([index[v] for v in targets], "int64"),
        "partition": pd.Series(partition, dtype=object),
    })
    for name in covariates:
        table[name] = pd.Series([str(v).strip() for v in frame[name]], dtype=object)
    return TableData(table, target, class_names, covariates, kinds, str(path))


def _check_images(frame, path, image_column, max_unreadable):
    """Leave out (logged) the rows whose image is missing or does not decode; refuse above `max_unreadable`."""
    good, bad = validate_images(frame["path"])
    if not bad:
        return
    share = len(bad) / len(frame)
    reasons = dict(bad)
    rows = [i for i, p in zip(frame.index, frame["path"]) if p in reasons]
    example = f"{frame.loc[rows[0], image_column]} at {_line(rows[0])} ({reasons[frame.loc[rows[0], 'path']]})"
    if share > max_unreadable:
        raise UserError(f"{path}: {len(bad)} of {len(frame)} images are missing or unreadable, e.g. {example}; "
                        f"fix the '{image_column}' column (paths are relative to {path.parent}) or raise "
                        f"--max-unreadable (now {max_unreadable:g})")
    LOGGER.warning("left out %d of %d images of %s that are missing or unreadable, e.g. %s", len(bad), len(frame),
                   path, example)
    frame.drop(index=rows, inplace=True)


def split_table(data: TableData, seed: int = 0, val_fraction: float = 0.15, test_fraction: float = 0.15):
    """`({"train", "val", "test"} tables, note)`: the table's own split, or a seeded stratified one.

    Where the table has no split (or lacks val or test rows), those rows are drawn from the train rows,
    stratified by the target, and `note` says so in one line (None when the table's split is used as is).
    """
    from sklearn.model_selection import train_test_split

    table = data.table
    parts = {name: table[table["partition"] == name] for name in ("train", "val", "test")}
    if not (table["partition"] == "").all() and parts["train"].empty:
        raise UserError(f"{data.source}: the split column has no train rows")
    pool = table[table["partition"].isin(["", "train"])]
    lacking = [name for name in ("val", "test") if parts[name].empty]
    note = None
    if lacking:
        fractions = {"val": val_fraction, "test": test_fraction}
        rest, drawn = pool, {}
        total = len(pool)
        for name in lacking:
            count = max(1, round(total * fractions[name]))
            stratify = rest["label"] if rest["label"].value_counts().min() >= 2 else None
            if count >= len(rest):
                raise UserError(f"{data.source}: {len(pool)} rows are too few to split off {' and '.join(lacking)}")
            rest, drawn[name] = train_test_split(rest, test_size=count, random_state=seed, stratify=stratify)
        parts.update(drawn)
        parts["train"] = rest.sort_index()
        sizes = "/".join(str(len(parts[n])) for n in ("train", "val", "test"))
        note = (f"{data.source} gives no {' or '.join(lacking)} rows: split {total} rows into train/val/test = {sizes}, "
                f"stratified by {data.target} (seed {seed})")
        LOGGER.info("split: %s", note)
    return {name: part.sort_index().reset_index(drop=True) for name, part in parts.items()}, note


def from_celeba(root, target: str, covariates, seed: int = 0, val_fraction: float = 0.15,
                test_fraction: float = 0.15):
    """CelebA's official layout as a `TableData` split like `split_table`: `({split: table}, note, data)`.

    The attributes become 0/1 text cells (yes/no covariates: 1/0, and 1/-1 at predict time) and the target a
    two-class label
    (`not_<target>`, `<target>`); CelebA's own partition file (or its fallback split) is kept.
    """
    from hybridvision.common.data.celeba import attribute_names, check_attributes, read_celeba, split_partitions

    table = read_celeba(root)
    valid = attribute_names(table)
    check_attributes([target], valid, flag="--target")
    check_attributes(covariates, valid)
    if target in covariates:
        raise UserError(f"--covariates holds the target {target}; leave it out (the task would be trivial)")
    table = table[list(dict.fromkeys(["path", "partition", target, *covariates]))]  # the splits copy only these
    splits, note = split_partitions(table, seed, val_fraction, test_fraction)
    # After the split, as CelebA's own builder did: a corrupt file does not move the fallback split.
    splits = {name: drop_unreadable(part) for name, part in splits.items()}
    if len(splits["train"]) == 0:
        raise UserError(f"{root}: no readable training images in img_align_celeba/; check the folder's files")
    tables = {}
    for name, part in splits.items():
        out = pd.DataFrame({"path": pd.Series(part["path"].to_numpy(dtype=object), dtype=object),
                            "label": part[target].to_numpy().astype("int64"),
                            "partition": pd.Series([name] * len(part), dtype=object)})
        for c in covariates:
            out[c] = pd.Series([str(int(v)) for v in part[c]], dtype=object)
        tables[name] = out
    data = TableData(pd.concat(tables.values(), ignore_index=True), target, [f"not_{target}", target],
                     list(covariates), {c: YES_NO for c in covariates}, str(Path(root)))
    return tables, note, data


def make_dataset(table, coding=None, num_classes: int = 2, image_size=(64, 64), batch_size: int = 32,
                 shuffle: bool = True, seed: int = 0, cache=False, augment=None):
    """Batched tf.data of `({"image": images, <raw covariates>}, target)`, or `(images, target)` without coding.

    Images are float32 0..255 (the model preprocesses them); the raw covariates are what
    `coding.raw_values` gives (the model codes them); the target is float32 `(batch, 1)` for two
    classes (1 = the second class) and one-hot `(batch, num_classes)` for more. `cache`, `augment`:
    as `hybridvision.common.data.pipeline.cached_images`.
    """
    import tensorflow as tf

    from hybridvision.common.covariate_coding import IMAGE_INPUT
    from hybridvision.common.data.images import decode_image
    from hybridvision.common.data.pipeline import cached_images, path_column

    if len(table) == 0:
        raise UserError("no images left to build a dataset from")
    labels = table["label"].to_numpy().astype("int64")
    if num_classes == 2:
        target = labels.astype("float32").reshape(-1, 1)
    else:
        target = np.eye(num_classes, dtype="float32")[labels]
    columns = {"path": path_column(table["path"]), "target": target}
    raw = coding.raw_values(table) if coding is not None else {}
    columns.update({f"raw:{key}": value for key, value in raw.items()})
    image_size = tuple(image_size)

    def decode(row):
        row = dict(row)
        # uint8: the form the cache holds (hybridvision.common.data.pipeline).
        row["image"] = tf.saturate_cast(tf.round(decode_image(row.pop("path"), image_size)), tf.uint8)
        return row

    def finish(row):
        images = tf.cast(row["image"], tf.float32)
        for step in augment if isinstance(augment, (list, tuple)) else [augment]:
            if step is not None:
                images = step(images, training=True)
        if not raw:
            return images, row["target"]
        return {IMAGE_INPUT: images, **{key: row[f"raw:{key}"] for key in raw}}, row["target"]

    return cached_images(columns, decode, batch_size, shuffle=shuffle, seed=seed,
                         cache=cache, per_batch=finish)


__all__ = ["KINDS", "TableData", "from_celeba", "make_dataset", "read_image_table", "split_table"]
