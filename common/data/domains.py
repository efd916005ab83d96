"""Multi-domain class folders: `<root>/<modality>/<class>/*.jpg` -> table, splits, folds.

PACS (`photo`, `art_painting`, `cartoon`, `sketch`) and CMPlaces (natural,
clipart, sketch, ...) both have this layout. `read_domains` lists it as one
table with a `modality` column and one label space over all modalities (the
union of the class folders, sorted); a class missing in some modality is
reported in `table.attrs["missing_classes"]` and logged, never fatal.
`split_domains` and `kfold_domains` keep the share of every (modality, class)
group, so each modality's test rows have every class it has.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hybridvision.common.data.images import file_table, image_files

LAYOUT = "<root>/<modality>/<class>/*.jpg"
log = logging.getLogger("hybridvision")


def read_domains(root, modalities=None):
    """Lists the images of a `<root>/<modality>/<class>/` tree as a table.

    Args:
        root: folder holding one subfolder per modality.
        modalities: None (every modality folder) or a list of the ones to read.

    Returns:
        `pandas.DataFrame` with columns `path`, `label` (index into
        `attrs["class_names"]`, the sorted union of class folders of all
        modalities), `class_name` and `modality`. `attrs` also holds
        `modalities` (sorted, or in the given order) and `missing_classes`
        (`{modality: [classes it lacks]}`, only modalities that lack some).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Data folder {str(root)!r} does not exist; expected the layout {LAYOUT}.")
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if modalities is None:
        modalities = present
    else:
        modalities = list(modalities)
        unknown = [m for m in modalities if m not in present]
        if unknown:
            raise ValueError(f"modality folder(s) {unknown} not found in {str(root)!r}; present: {present}.")
    if not modalities:
        raise ValueError(f"No modality folders in {str(root)!r}; expected the layout {LAYOUT}.")
    per_modality = {}
    for modality in modalities:
        folder = root / modality
        classes = {}
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            paths = image_files(class_dir)
            if paths:
                classes[class_dir.name] = paths
        if not classes:
            raise ValueError(
                f"Modality folder {str(folder)!r} holds no class folders with images; expected {LAYOUT}."
            )
        per_modality[modality] = classes
    class_names = sorted({name for classes in per_modality.values() for name in classes})
    index = {name: i for i, name in enumerate(class_names)}
    rows, missing = [], {}
    for modality, classes in per_modality.items():
        lacking = [name for name in class_names if name not in classes]
        if lacking:
            missing[modality] = lacking
            log.warning("modality '%s' has no images of class(es) %s (in %s)", modality, lacking, root / modality)
        for name, paths in classes.items():
            rows.extend((path, index[name], name, modality) for path in paths)
    table = file_table(rows, ["path", "label", "class_name", "modality"], text=("path", "class_name", "modality"))
    table.attrs.update(class_names=class_names, modalities=list(modalities), missing_classes=missing)
    return table


def parse_split(text):
    """`"70,20,10"` (percent or fractions) -> `(0.7, 0.2, 0.1)`; the parts must sum to 100 (or 1)."""
    try:
        parts = [float(p) for p in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise ValueError(f"--split {text!r} is not valid; give train,val,test such as 70,20,10.") from None
    total = sum(parts)
    if len(parts) != 3 or any(p < 0 for p in parts) or parts[0] <= 0 or not (
        abs(total - 100) < 1e-6 or abs(total - 1) < 1e-6
    ):
        raise ValueError(
            f"--split {text!r} is not valid; give three shares train,val,test summing to 100, e.g. 70,20,10."
        )
    return tuple(p / total for p in parts)


def _allocate(n, fractions):
    """Counts per part summing to n; every part with a share gets a row when n allows."""
    raw = np.asarray(fractions) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[i] = 1
    return counts


def _groups(table):
    if "modality" not in table.columns or "label" not in table.columns:
        raise ValueError(f"the table needs `modality` and `label` columns; it has {list(table.columns)}.")
    return table.groupby(["modality", "label"], sort=True).indices.values()


def _subset(table, mask):
    part = table[mask].reset_index(drop=True)
    part.attrs = dict(table.attrs)
    return part


def split_domains(table, fractions=(0.7, 0.2, 0.1), seed=0):
    """Splits a `read_domains` table into train/val/test, stratified by modality and class.

    Every (modality, class) group is shuffled (seeded) and cut by
    `fractions`; a group with at least as many images as non-empty parts
    puts one or more in each. Row order within a part is the table's.

    Returns:
        `{"train": table, "val": table, "test": table}`.
    """
    if isinstance(fractions, str):
        fractions = parse_split(fractions)
    rng = np.random.default_rng(seed)
    part = np.zeros(len(table), dtype=int)
    for positions in _groups(table):
        positions = rng.permutation(positions)
        counts = _allocate(len(positions), fractions)
        part[positions] = np.repeat(np.arange(3), counts)
    return {name: _subset(table, part == i) for i, name in enumerate(("train", "val", "test"))}


def kfold_domains(table, folds, seed=0):
    """K-fold cross-validation folds, stratified by modality and class.

    Returns:
        A list of `folds` pairs `(rest, test)`: each row is in exactly one
        test part; `rest` holds all the other rows (split it further with
        `split_domains` for validation).
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"--folds must be an int >= 2, got {folds!r}.")
    if folds > len(table):
        raise ValueError(f"--folds {folds} is more than the {len(table)} images; use fewer folds.")
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(table), dtype=int)
    offset = 0
    for positions in _groups(table):
        positions = rng.permutation(positions)
        # A running offset spreads the remainders of small groups over all folds.
        fold[positions] = (np.arange(len(positions)) + offset) % folds
        offset += len(positions)
    return [(_subset(table, fold != k), _subset(table, fold == k)) for k in range(folds)]
