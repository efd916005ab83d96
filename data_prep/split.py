"""Split labelled images into train/val/test/<class>/ folders, stratified and seeded.

    hybridvision split labelled/ --out dataset/                  # class folders
    hybridvision split labels.csv --images faces/ --out dataset/ --fractions 70,15,15

Each class is shuffled with `--seed` and cut by the fractions (largest
remainder rounding, so the counts add up), by copy, hard link or symlink.
A non-empty `--out` is refused unless `--overwrite`, which replaces only
its train/, val/ and test/ folders. Writes `split.csv` (file, source,
label, split) next to them and prints the counts per class and split.
"""

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from hybridvision.common.config import OneLineErrorParser
from hybridvision.data_prep import image_views

MODES = ("copy", "hardlink", "symlink")
SPLITS = ("train", "val", "test")


def place_file(source, target, mode="copy"):
    """Puts `source` at `target` by copy, hard link or (absolute) symlink."""
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    if mode == "copy":
        shutil.copy2(source, target)
    elif mode == "symlink":
        os.symlink(Path(source).resolve(), target)
    else:
        try:
            os.link(source, target)
        except OSError as error:
            raise OSError(
                f"cannot hard-link {source} to {target} ({error.strerror}): hard links need one "
                "file system, use --mode copy or --mode symlink"
            ) from None


def unique_names(relative_paths):
    """A file name per path: the base name, or the path joined by '__' where base names clash."""
    counts = Counter(Path(p).name for p in relative_paths)
    return [
        Path(p).name if counts[Path(p).name] == 1 else "__".join(Path(p).parts)
        for p in relative_paths
    ]


def parse_fractions(text):
    """'70,15,15' or '0.7,0.15,0.15' -> three fractions that sum to 1."""
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise ValueError(f"--fractions {text!r} must be three non-negative numbers, e.g. 70,15,15")
    total = sum(values)
    if not (np.isclose(total, 100) or np.isclose(total, 1)):
        raise ValueError(f"--fractions {text!r} must add up to 100 (or 1), not {total:g}")
    return tuple(v / total for v in values)


def split_counts(n, fractions):
    """How many of n items go to each split: floors, then the largest remainders get one more."""
    raw = np.asarray(fractions) * n
    counts = np.floor(raw).astype(int)
    # Stable sort: on equal remainders the earlier split (train) gets the item.
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return tuple(int(c) for c in counts)


def read_labelled(source, images=None):
    """(root, [(relative path, label), ...]) from class folders or a file,label CSV."""
    source = Path(source)
    if source.is_dir():
        items = []
        for file in image_views.list_images(source):
            parts = Path(file).parts
            if len(parts) > 1:
                items.append((file, parts[0]))
        if not items:
            raise FileNotFoundError(
                f"no images in class folders under {source} (want {source}/<class>/*.jpg)"
            )
        return source, items
    if not source.is_file():
        raise FileNotFoundError(f"{source} is neither a folder of class folders nor a CSV file")
    if images is None:
        raise ValueError(
            f"{source} is a CSV: pass --images DIR, the folder its file paths start from"
        )
    table = pd.read_csv(source, dtype=str, keep_default_na=False)
    for column in ("file", "label"):
        if column not in table.columns:
            raise ValueError(f"{source} has no column {column!r}: it needs file,label columns")
    empty = table.index[table["label"].str.strip() == ""]
    if len(empty):
        raise ValueError(f"{source} row {empty[0] + 2} has an empty label: label or remove it")
    root = Path(images)
    missing = [f for f in table["file"] if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} file(s) of {source} are not under --images {root}, e.g. {missing[0]}"
        )
    return root, list(zip(table["file"], table["label"].str.strip()))


def stratified_split(items, fractions=(0.7, 0.15, 0.15), seed=1337):
    """{split: [(relative path, label), ...]}: each class shuffled (seeded), cut by `fractions`."""
    rng = np.random.default_rng(seed)
    by_class = {}
    for file, label in sorted(items):
        by_class.setdefault(label, []).append(file)
    result = {name: [] for name in SPLITS}
    for label in sorted(by_class):
        files = by_class[label]
        shuffled = [files[i] for i in rng.permutation(len(files))]
        start = 0
        for name, count in zip(SPLITS, split_counts(len(files), fractions)):
            result[name] += [(f, label) for f in shuffled[start : start + count]]
            start += count
    return result


def make_split(
    source, out, fractions=(0.7, 0.15, 0.15), seed=1337, mode="copy", images=None, overwrite=False
):
    """Writes out/{train,val,test}/<class>/ and out/split.csv; returns the counts table."""
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    root, items = read_labelled(source, images)
    out = Path(out)
    real_out = out.resolve()
    if root.resolve().is_relative_to(real_out) or real_out.is_relative_to(root.resolve()):
        raise ValueError(f"--out {out} and the images {root} must not contain each other")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"--out {out} is not empty: pick another folder or pass --overwrite")
        for name in SPLITS:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
    parts = stratified_split(items, fractions, seed)
    manifest = []
    for name in SPLITS:
        for label in sorted({lab for _, lab in parts[name]}):
            files = [f for f, lab in parts[name] if lab == label]
            for file, target_name in zip(files, unique_names(files)):
                target = out / name / label / target_name
                place_file(root / file, target, mode)
                manifest.append((target.relative_to(out).as_posix(), file, label, name))
    pd.DataFrame(manifest, columns=["file", "source", "label", "split"]).to_csv(
        out / "split.csv", index=False
    )
    counts = pd.crosstab(
        pd.Series([m[2] for m in manifest], name="class"),
        pd.Series([m[3] for m in manifest], name="split"),
    )
    counts = counts.reindex(columns=list(SPLITS), fill_value=0)
    counts["total"] = counts.sum(axis=1)
    counts.loc["total"] = counts.sum(axis=0)
    return counts


def build_parser():
    parser = OneLineErrorParser(
        prog="hybridvision split",
        description="Make train/val/test/<class>/ from labelled images (class folders or a "
        "file,label CSV), stratified per class and seeded.",
    )
    parser.add_argument("source", help="folder of class folders, or a CSV with file,label columns")
    parser.add_argument("--out", required=True, help="target folder")
    parser.add_argument(
        "--images",
        default=None,
        help="with a CSV source: the folder its `file` paths are relative to",
    )
    parser.add_argument(
        "--fractions", default="70,15,15", help="train,val,test percentages (default 70,15,15)"
    )
    parser.add_argument("--seed", type=int, default=1337, help="shuffle seed (default 1337)")
    parser.add_argument(
        "--mode",
        default="copy",
        choices=MODES,
        help="copy (default), hardlink (same file system, no extra space) or symlink",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the train/val/test folders of a non-empty --out",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    counts = make_split(
        args.source,
        args.out,
        parse_fractions(args.fractions),
        args.seed,
        args.mode,
        args.images,
        args.overwrite,
    )
    print(f"split into {args.out} by {args.mode} (seed {args.seed}):")
    print(counts.to_string())
    return 0


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
