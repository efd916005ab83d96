"""CelebA's official text files, read without TensorFlow (`data_prep` uses these too).

`hybridvision.common.data.celeba` builds the tables and the tf.data pipeline on top and
re-exports every name here.
"""

import logging
from pathlib import Path

import pandas as pd

LOGGER = logging.getLogger("hybridvision")

IMAGE_FOLDER = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
LANDMARK_FILE = "list_landmarks_align_celeba.txt"
PARTITIONS = {0: "train", 1: "val", 2: "test"}
LAYOUT = f"<root>/{IMAGE_FOLDER}/*.jpg, <root>/{ATTRIBUTE_FILE}, <root>/{PARTITION_FILE}"


def plain_value(value):
    """A cell of a table as a plain Python value: messages show `7`, not NumPy's `np.int64(7)`."""
    return value.item() if hasattr(value, "item") else value


def require_file(path, what):
    if not Path(path).exists():
        raise FileNotFoundError(f"CelebA {what} {str(path)!r} not found; expected the official layout {LAYOUT}.")


# Rows parsed at a time: pandas' whitespace parser holds several times the text of what it parses
# (at 200,000 CelebA rows in one go, ~100 MB for an 11 MB table); in chunks that stays bounded.
READ_CHUNK_ROWS = 20_000


def read_rows(path, dtype, fallback_dtype, **options):
    """A whitespace-separated file without a header (`pandas.read_csv`), `READ_CHUNK_ROWS` rows at a time.

    Chunked while every value parses as `dtype`; a value that does not is the caller's to name, so the
    file is then read whole with `fallback_dtype` (the rest as pandas infers it over the whole file: a
    chunk of its own could infer another type).
    """
    try:
        with pd.read_csv(path, sep=r"\s+", header=None, dtype=dtype, chunksize=READ_CHUNK_ROWS, **options) as chunks:
            return pd.concat(chunks, ignore_index=True)
    except (ValueError, OverflowError, TypeError):
        return pd.read_csv(path, sep=r"\s+", header=None, dtype=fallback_dtype, **options)


def read_counted_table(path, what, dtype=None):
    """Reads the `count`, `names`, `file v1 .. vn` format shared by the attribute and landmark files.

    `dtype`: of the value columns, when they all parse as it (CelebA's attributes: int8, an eighth of
    the memory of the default int64 for 200,000 rows x 40); otherwise they are read as pandas infers.
    """
    require_file(path, what)
    with open(path, encoding="utf-8") as f:
        first, second = f.readline().strip(), f.readline().split()
    if not first.isdigit():
        raise ValueError(
            f"{path}: line 1 must be the image count (an integer), got {first[:40]!r}; "
            f"is this the official {Path(path).name}?"
        )
    if not second or second[0].endswith((".jpg", ".png")):
        raise ValueError(f"{path}: line 2 must hold the column names, got {' '.join(second[:3])!r} ...")
    try:
        if dtype is not None:  # a value that is not a `dtype`: read as inferred, to be named
            table = read_rows(path, {0: str, **{i: dtype for i in range(1, len(second) + 1)}}, {0: str}, skiprows=2)
        else:
            table = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, dtype={0: str})
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: rows must be `file` followed by {len(second)} values ({str(err).splitlines()[0]})") from None
    if table.shape[1] != len(second) + 1:
        raise ValueError(
            f"{path}: the header names {len(second)} columns but rows have {table.shape[1] - 1} values; "
            "every row must be `file` followed by one value per name"
        )
    table.columns = ["file", *second]
    refuse_duplicates(table, path, first_line=3)
    if len(table) != int(first):
        LOGGER.warning("%s: line 1 says %s images but %d rows follow; using the rows", path, first, len(table))
    return table


def refuse_duplicates(table, path, first_line):
    """Raises when the `file` column lists an image twice: which of its rows counts would be a guess.

    `first_line`: the line number of the table's first row, for the message.
    """
    repeated = table["file"].duplicated(keep=False).to_numpy()
    if not repeated.any():
        return
    lines = {}
    for row in repeated.nonzero()[0]:
        lines.setdefault(table["file"].iloc[row], []).append(str(row + first_line))
    shown = ", ".join(f"{name} (lines {', '.join(numbers)})" for name, numbers in list(lines.items())[:3])
    raise ValueError(f"{path} lists {len(lines)} image(s) more than once: {shown}{' ...' if len(lines) > 3 else ''}; "
                     "keep one row per image")


def read_landmarks(path):
    """The aligned landmark file as a table: `file` plus `lefteye_x` .. `rightmouth_y` (pixels)."""
    table = read_counted_table(path, "landmark file")
    for name in table.columns[1:]:
        if not pd.api.types.is_numeric_dtype(table[name]):
            raise ValueError(f"{path}: landmark column {name} must hold numbers")
    return table
