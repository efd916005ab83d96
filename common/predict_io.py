"""Files around prediction: class-name sidecars, image lists, input CSVs, resumable output CSVs, model loading.

Split out of `hybridvision.common.predict` (which re-exports these names) so
each module stays one job: this one reads and writes files, that one runs
the model.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path

from hybridvision.common.cli import UserError
from hybridvision.common.data.images import image_files

log = logging.getLogger("hybridvision")

CLASSES_SUFFIX = ".classes.json"
ERRORS_SUFFIX = ".errors.csv"
MODEL_SUFFIX = ".model.json"
# CelebA codes attributes 1 / -1; the models see 1 / 0. Both codings (and words) are read.
TRUE_WORDS = {"1", "1.0", "true", "yes", "y"}
FALSE_WORDS = {"0", "0.0", "-1", "-1.0", "false", "no", "n"}


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
    """The class names saved beside a model (`<model>.classes.json`, else `classes.json` there), else its card's."""
    model_path = Path(model_path)
    for path in (class_names_path(model_path), model_path.parent / "classes.json"):
        if path.is_file():
            try:
                names = json.loads(path.read_text())["class_names"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{path}: expected JSON with a 'class_names' list; fix or delete the file") from None
            return [str(n) for n in names]
    from hybridvision.common.model_card import read_card

    # An export is enough on its own: its card names the classes (read without loading the model).
    card = read_card(model_path) if model_path.is_file() else {}
    if card.get("class_names"):
        return [str(n) for n in card["class_names"]]
    raise FileNotFoundError(
        f"no class names for {model_path}: {class_names_path(model_path)} is missing; "
        "pass them in output order, e.g. --classes left,center,right"
    )


def errors_path(out_csv) -> Path:
    """`labels.csv` -> `labels.errors.csv`."""
    out_csv = Path(out_csv)
    return out_csv.with_name(out_csv.stem + ERRORS_SUFFIX)


def model_record_path(out_csv) -> Path:
    """`labels.csv` -> `labels.model.json`: which model wrote the CSV's rows."""
    out_csv = Path(out_csv)
    return out_csv.with_name(out_csv.stem + MODEL_SUFFIX)


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _has_rows(path) -> bool:
    with open(path, "rb") as f:
        f.readline()  # the header
        return bool(f.readline().strip())


def claim_output(out_csv, model_file) -> None:
    """Record `model_file` (path and sha256) beside `out_csv`; refuse to add rows to a CSV another model wrote.

    A CSV that has rows but no record (written before predict kept one) is
    refused too: whose rows they are is unknown.
    """
    out_csv, record_path = Path(out_csv), model_record_path(out_csv)
    record = {"model": str(Path(model_file).resolve()), "sha256": sha256_of(model_file)}
    if out_csv.is_file() and _has_rows(out_csv):
        try:
            before = json.loads(record_path.read_text())
        except (OSError, ValueError):
            raise UserError(f"{out_csv} has rows but no readable {record_path.name} naming the model that wrote them; "
                            "pass another --out, or delete the CSV to start over") from None
        if before.get("sha256") != record["sha256"]:
            raise UserError(f"{out_csv} was written by another model ({before.get('model')}, sha256 "
                            f"{str(before.get('sha256'))[:12]}...) than --model {model_file} (sha256 "
                            f"{record['sha256'][:12]}...); pass another --out, or delete the CSV to start over")
        return
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2) + "\n")


def list_images(root) -> list[str]:
    """Image files under `root` (recursive, hidden ones left out), relative and `/`-separated, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--images {root}: no such folder; pass the folder holding the images")
    return sorted(Path(path).relative_to(root).as_posix() for path in image_files(root))


def read_input_csv(path, image_columns, covariates=(), column_help: str = "") -> list[list[str]]:
    """The rows of an input CSV as lists of strings: the image columns, then the covariate columns.

    Raises a one-line error naming the first missing column and how to add it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--csv {path}: no such file; pass a CSV with a '{image_columns[0]}' column")
    wanted = [*image_columns, *covariates]
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        for column in wanted:
            if column not in columns:
                raise UserError(f"--csv {path} has no '{column}' column (its columns: {','.join(columns) or 'none'}); "
                                f"add it{': ' + column_help if column_help else ''}")
        return [[(row[c] or "").strip() for c in wanted] for row in reader]


def covariate_value(text: str) -> float | None:
    """1.0 / 0.0 for a yes/no covariate written 1/0, 1/-1 (CelebA) or true/false; None if unreadable."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return 1.0
    if word in FALSE_WORDS:
        return 0.0
    return None


def open_resumable(path: Path, header: list[str], key_width: int = 1) -> tuple[set, object]:
    """Open a CSV for appending; returns (keys already there, file).

    A key is the tuple of a row's first `key_width` values (the inputs that
    row was made from), so a rerun skips exactly the inputs already done.
    """
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
                raise UserError(
                    f"{path} has columns {','.join(found)} but this run writes {','.join(header)}; "
                    "pass another --out or delete the file"
                )
            done = {tuple(row[:key_width]) for row in rows if row}
        if found is not None:
            return done, open(path, "a", newline="", encoding="utf-8")
    f = open(path, "w", newline="", encoding="utf-8")
    csv.writer(f).writerow(header)
    return done, f


def flush(f) -> None:
    """Push a file's rows to disk: after a kill they are there for the resume."""
    f.flush()
    os.fsync(f.fileno())


def load_model_file(path, flag: str = "--model", **kwargs):
    """`keras.models.load_model(path)`, with one-line errors naming the file for what is not a model.

    (Keras reports a `.keras` file that is not a zip archive as "File not found".)
    """
    import keras

    from hybridvision.common.custom_objects import register_all

    register_all()  # every custom layer a saved model may hold
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
