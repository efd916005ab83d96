"""CelebA in its official layout: attribute, partition and landmark files -> table.

The layout (as published, and as `hybridvision.common.data.demo` writes it)::

    <root>/img_align_celeba/000001.jpg ...
    <root>/list_attr_celeba.txt             count line, names line, then `file v1 .. v40` (1 / -1)
    <root>/list_eval_partition.txt          `file 0|1|2` (train / val / test)
    <root>/list_landmarks_align_celeba.txt  optional: count line, names line, `file x1 y1 .. x5 y5`

`read_celeba` joins them into one table (`path`, `file`, `partition`, one 0/1
column per attribute, optionally the landmark columns); `split_partitions`
turns it into train/val/test tables, splitting the train rows itself
(seeded) when a sample of CelebA has no val or test rows. Any attribute can
be the target and any list of attributes the covariates: CelebA is one
reader of the image-table pipeline (`hybridvision.common.data.image_table.from_celeba`,
then its `make_dataset`), not a pipeline of its own.

    table = read_celeba("data/celeba")
    tables, note = split_partitions(table, seed=0)
"""

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from hybridvision.common.data.celeba_files import (  # noqa: F401 (re-exported: the file names and readers live there)
    ATTRIBUTE_FILE,
    IMAGE_FOLDER,
    LANDMARK_FILE,
    LAYOUT,
    PARTITION_FILE,
    PARTITIONS,
    plain_value,
    read_counted_table,
    read_landmarks,
    read_rows,
    refuse_duplicates,
    require_file,
)
from hybridvision.common.data.names import CELEBA_ATTRIBUTE_NAMES

LOGGER = logging.getLogger("hybridvision")


def read_attributes(path):
    """The attribute file as a table: `file` plus one int8 0/1 column per attribute (1 -> 1, -1 -> 0)."""
    table = read_counted_table(path, "attribute file", dtype="int8")
    values = table.iloc[:, 1:]
    first_bad = []  # (row, column) of each column's first value that is not 1 or -1
    for col, name in enumerate(values.columns):  # column by column: no N x 40 copy
        # As numbers: a column read as text (one cell of it is not a number) still has its "1" and "-1".
        bad = ~pd.to_numeric(values[name], errors="coerce").isin([1, -1]).to_numpy()
        if bad.any():
            first_bad.append((int(np.argmax(bad)), col))
    if first_bad:
        row, col = min(first_bad)
        raise ValueError(
            f"{path}: attribute values must be 1 or -1; row {row + 3} ({table['file'].iloc[row]}) "
            f"has {plain_value(values.iloc[row, col])!r} for {values.columns[col]}"
        )
    for name in values.columns:
        table[name] = (values[name].to_numpy() > 0).astype("int8")
    return table


def read_partition(path):
    """The partition file as a table: `file` and `partition` ("train", "val" or "test")."""
    require_file(path, "partition file")
    try:
        table = read_rows(path, {"file": str, "partition": "int8"}, {"file": str}, names=["file", "partition"])
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: rows must be `file 0|1|2` ({str(err).splitlines()[0]})") from None
    refuse_duplicates(table, path, first_line=1)
    codes = pd.to_numeric(table["partition"], errors="coerce")
    bad = ~codes.isin(list(PARTITIONS))
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise ValueError(
            f"{path}: partitions must be 0 (train), 1 (val) or 2 (test); line {row + 1} "
            f"({table['file'].iloc[row]}) has {plain_value(table['partition'].iloc[row])!r}"
        )
    table["partition"] = codes.astype(int).map(PARTITIONS)
    return table


def attribute_names(source):
    """The attribute names of a CelebA root folder, an attribute file or a table from `read_celeba`."""
    if isinstance(source, pd.DataFrame):
        return list(source.attrs["attribute_names"])
    path = Path(source)
    path = path / ATTRIBUTE_FILE if path.is_dir() else path
    require_file(path, "attribute file")
    with open(path, encoding="utf-8") as f:
        f.readline()
        return f.readline().split()


# The 40 attributes of the official list_attr_celeba.txt.
CELEBA_ATTRIBUTES = frozenset(CELEBA_ATTRIBUTE_NAMES)


def check_attributes(names, valid, flag="--covariates"):
    """Raises a ValueError listing the valid names when one of `names` is not an attribute.

    When the names asked for are official CelebA attributes but the file's names
    line lacks them and holds other names (a typo) or few of CelebA's, the file
    is blamed, not the flag.
    """
    unknown = [n for n in names if n not in valid]
    official = [n for n in valid if n in CELEBA_ATTRIBUTES]
    others = [n for n in valid if n not in CELEBA_ATTRIBUTES]
    if unknown and set(unknown) <= CELEBA_ATTRIBUTES and (others or len(official) < len(CELEBA_ATTRIBUTES) // 2):
        listed = others or list(valid)
        shown = repr(" ".join(listed[:4]) + (" ..." if len(listed) > 4 else ""))
        raise ValueError(
            f"{ATTRIBUTE_FILE}: its names line (line 2) holds {len(official)} of CelebA's 40 attribute names "
            f"{f'and {len(others)} other ({shown})' if others else f'({shown})'}, so {', '.join(unknown)} is missing; "
            "check line 2 for a typo: it must list the attribute names (5_o_Clock_Shadow Arched_Eyebrows ... Young)"
        )
    if unknown:
        raise ValueError(
            f"{flag}: unknown CelebA attribute(s) {', '.join(unknown)}; "
            f"valid names ({len(valid)}): {', '.join(valid)}"
        )


def read_celeba(root, landmarks=False):
    """Joins the CelebA files under `root` into one table of the images present on disk.

    Args:
        root: folder holding `img_align_celeba/`, `list_attr_celeba.txt` and
            `list_eval_partition.txt`.
        landmarks: also join `list_landmarks_align_celeba.txt` (must exist then).

    Returns:
        `pandas.DataFrame` with `path`, `file`, `partition` ("train" / "val" /
        "test"), one int8 0/1 column per attribute and, with `landmarks`, the
        ten landmark columns. `table.attrs` holds `attribute_names`,
        `landmark_names` and `missing_images` (listed but not on disk: logged
        as a warning, never silently dropped).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CelebA folder {str(root)!r} does not exist; expected the official layout {LAYOUT}.")
    image_dir = root / IMAGE_FOLDER
    require_file(image_dir, "image folder")
    attributes = read_attributes(root / ATTRIBUTE_FILE)
    names = list(attributes.columns[1:])
    partition = read_partition(root / PARTITION_FILE)
    # A column looked up by file name, not a merge: the 40 attribute columns are not copied.
    table = attributes
    table["partition"] = table["file"].map(partition.set_index("file")["partition"])
    partition = attributes = None
    unpartitioned = int(table["partition"].isna().sum())
    if unpartitioned:
        LOGGER.warning("%d images of %s have no row in %s; they are left out", unpartitioned, ATTRIBUTE_FILE, PARTITION_FILE)
        table = table[table["partition"].notna()]
    mark_names = []
    if landmarks:
        marks = read_landmarks(root / LANDMARK_FILE)
        mark_names = list(marks.columns[1:])
        table = table.merge(marks, on="file", how="left")
        if table[mark_names].isna().any(axis=None):
            count = int(table[mark_names[0]].isna().sum())
            raise ValueError(f"{root / LANDMARK_FILE}: {count} images of {ATTRIBUTE_FILE} have no landmark row")
    on_disk = {entry.name for entry in os.scandir(image_dir)}
    # One name at a time: `Series.isin` on a set of 200,000 names briefly takes ~60 MB more.
    present = pd.Series(np.fromiter((name in on_disk for name in table["file"]), bool, len(table)), index=table.index)
    on_disk = None
    missing = int((~present).sum())
    if missing:
        examples = ", ".join(table.loc[~present, "file"].head(3))
        LOGGER.warning(
            "%d of the %d images listed in %s are not in %s (e.g. %s); using the %d present",
            missing, len(table), ATTRIBUTE_FILE, image_dir, examples, int(present.sum()),
        )
    if missing:  # (a copy of the whole table otherwise)
        table = table[present]
    table = table.reset_index(drop=True)
    if table.empty:
        raise ValueError(f"none of the images listed in {root / ATTRIBUTE_FILE} is in {image_dir}")
    folder = str(image_dir)
    table.insert(0, "path", pd.Series([os.path.join(folder, f) for f in table["file"]], dtype=object))
    table.insert(2, "partition", table.pop("partition"))  # path, file, partition, the attributes, the landmarks
    table.attrs.update(attribute_names=names, landmark_names=mark_names, missing_images=missing)
    return table


def split_partitions(table, seed=0, val_fraction=0.15, test_fraction=0.15):
    """Train / val / test tables from the `partition` column.

    When the images present have no val or no test rows (a sample of
    CelebA's train images), the missing parts are drawn from the train rows
    with a seeded permutation, and the returned note says so.

    Returns:
        `({"train": table, "val": table, "test": table}, note)`; `note` is None
        when the official partition was used as is, else one line describing
        the fallback split (for the log and metrics.json).
    """
    if "partition" not in table.columns:
        raise ValueError(f"the table needs a `partition` column (from read_celeba); it has {list(table.columns)}")
    parts = {name: table[table["partition"] == name] for name in PARTITIONS.values()}
    lacking = [name for name in ("val", "test") if parts[name].empty]
    note = None
    if lacking:
        fractions = {"val": val_fraction, "test": test_fraction}
        train = parts["train"]
        if len(train) < 3:
            raise ValueError(f"{PARTITION_FILE} has no {' or '.join(lacking)} rows and only {len(train)} train rows to split")
        order = np.random.default_rng(seed).permutation(len(train))
        start = 0
        for name in lacking:
            count = max(1, round(len(train) * fractions[name]))
            parts[name] = train.iloc[np.sort(order[start : start + count])]
            start += count
        parts["train"] = train.iloc[np.sort(order[start:])]
        sizes = "/".join(str(len(parts[n])) for n in PARTITIONS.values())
        note = (
            f"{PARTITION_FILE} has no {' or '.join(lacking)} rows for the {len(table)} images present; "
            f"split the {len(train)} train rows into train/val/test = {sizes} (seed {seed})"
        )
        LOGGER.warning("fallback split: %s", note)
    result = {}
    for name, part in parts.items():
        part = part.reset_index(drop=True)
        part.attrs = dict(table.attrs)
        result[name] = part
    return result, note

