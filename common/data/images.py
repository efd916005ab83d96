"""Image decoding shared by every reader: one tf.data-friendly decoder and a validator.

`decode_image` is what the tf.data builders map over file paths;
`validate_images` checks up front, with the very same TensorFlow decoders,
which files would fail, so a pipeline skips (and reports) them instead of
crashing mid-epoch.
"""

import hashlib
import logging
import os

import numpy as np
import pandas as pd
import tensorflow as tf

from hybridvision.common.cli import DECODER_NOISE, stderr_filtered

LOGGER = logging.getLogger("hybridvision")

# Formats tf.io.decode_image reads (GIF: first frame only).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# path -> the file's stamp (`_stamp`) when it decodes, else (stamp, the reason it does not): one integer per
# readable file, not a tuple of three objects. A file changed since (another stamp) is checked again.
_VALIDATION_CACHE = {}
NOT_UTF8 = "file name is not valid UTF-8; rename it"


def is_utf8_name(path) -> bool:
    """Whether `path` is valid UTF-8 (Python holds other bytes of a file name as surrogates)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(path) -> str:
    """`path` for messages and CSVs: itself, or the repr of its bytes when it is not valid UTF-8."""
    path = os.fspath(path)
    return path if is_utf8_name(path) else repr(os.fsencode(path))


def image_files(root) -> list[str]:
    """The image files under `root` (recursive, hidden ones left out), in sorted walk order.

    Symlinks to files are followed; symlinks to folders are not: one leads
    back into the tree (a loop, or the same images again under another
    class) or out of it, and either way the images under it do not belong
    where the link puts them. The links left out are logged.
    """
    found, links = [], []
    for dirpath, dirnames, filenames in os.walk(root):  # followlinks=False: folder links are listed, not entered
        links += [os.path.join(dirpath, d) for d in dirnames
                  if not d.startswith(".") and os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(dirpath, name))
    if links:
        LOGGER.warning("left out %d folder symlink(s) under %s (a folder link is not followed: it leads back into "
                       "the tree or out of it; copy or move the images in instead): %s%s", len(links), root,
                       ", ".join(shown_name(link) for link in links[:3]), " ..." if len(links) > 3 else "")
    return found


def file_table(rows, columns, text=("path",)) -> pd.DataFrame:
    """A DataFrame of `rows` (tuples or dicts, or a dict of columns) whose `text` columns (file paths, names) hold
    Python str objects.

    pandas 3 keeps strings in Arrow when pyarrow is installed, and Arrow
    refuses the surrogate-escaped names Python gives file names that are not
    UTF-8; those must reach `drop_unreadable` to be listed, so these columns
    are object columns whichever string storage pandas picks. The other
    columns get their usual dtypes.
    """
    table = pd.DataFrame(rows, columns=columns, dtype=object)
    for name in table.columns:
        if name not in text:
            table[name] = table[name].infer_objects()
    return table


def _check_image_args(image_size, channels):
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or not all(isinstance(v, int) and v > 0 for v in image_size)
    ):
        raise ValueError(
            f"`image_size` must be (height, width) of positive ints; got {image_size!r}."
        )
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3; got {channels!r}.")


def decode_image_bytes(contents, image_size, channels=3):
    """Decodes encoded image bytes and resizes them (bilinear) to `image_size`.

    Handles JPEG, PNG (RGBA loses its alpha, grayscale is repeated to 3
    channels), BMP, WebP and GIF (first frame). Returns float32 values in
    0..255 with shape `(height, width, channels)`.
    """
    _check_image_args(image_size, channels)
    # GIF only decodes to 3 channels, so go through RGB for every format.
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    image = tf.image.resize(image, image_size, method="bilinear")
    image.set_shape((*image_size, channels))
    return image


def decode_image(path_or_bytes, image_size, channels=3):
    """Reads and decodes one image; usable inside `tf.data.Dataset.map`.

    Args:
        path_or_bytes: a file path (str, `os.PathLike` or a string tensor,
            as in a dataset of paths) or Python `bytes` holding an encoded
            image (for encoded bytes in a tensor use `decode_image_bytes`).
        image_size: `(height, width)` of the output.
        channels: 3 (RGB) or 1 (grayscale).

    Returns:
        float32 tensor `(height, width, channels)` with values in 0..255.
    """
    if isinstance(path_or_bytes, bytes):
        contents = path_or_bytes
    else:
        path = os.fspath(path_or_bytes) if isinstance(path_or_bytes, os.PathLike) else path_or_bytes
        contents = tf.io.read_file(path)
    return decode_image_bytes(contents, image_size, channels)


def _check_decodes(contents):
    # JPEG at 1/8 scale: libjpeg still reads every entropy-coded byte, so
    # truncation and corruption are caught at a fraction of the cost.
    image = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=3, ratio=8),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )
    return tf.shape(image)


def _reason(path):
    """Why one file fails to decode (eager; only called for the failures)."""
    try:
        _check_decodes(tf.io.read_file(path))
    except tf.errors.OpError as error:
        message = (error.message or str(error)).strip().splitlines()[0]
        # Drop TF's "{{function_node ...}} " prefix, keep the decoder's words.
        return "cannot decode: " + message.split("}} ")[-1][:200]
    return None


# Checks of at least this many files are also kept on disk, so the next run of a large
# dataset does not decode it again; smaller ones take under a second.
DISK_CACHE_MIN = 1000
CHECK_BATCH = 256  # decoded files come back to Python this many at a time
_UNCHECKED = object()  # a cache's answer for a file it has not seen (None means "decodes")


def decode_check_cache_dir():
    """Where checks are kept between runs: `$HYBRIDVISION_CACHE_DIR/decode_check` (default `~/.cache/hybridvision`).

    `HYBRIDVISION_CACHE_DIR=off` keeps them in memory only.
    """
    root = os.environ.get("HYBRIDVISION_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hybridvision")
    return None if root == "off" else os.path.join(root, "decode_check")


def _cache_file(folder, directory):
    return os.path.join(folder, hashlib.sha1(os.fsencode(directory)).hexdigest()[:20] + ".tsv")


def _load_disk_cache(folder, directories):
    """`{directory: {"name\tmtime_ns\tsize": reason or None}}` of the files checked before in `directories`.

    Keyed by the line's own text: one string per file, not a tuple of a joined path and two integers.
    """
    found = {}
    for directory in directories:
        kept = {}
        try:
            with open(_cache_file(folder, directory), encoding="utf-8", errors="replace") as f:
                for line in f:  # line by line: the file is never held whole
                    fields = line.rstrip("\n").split("\t")
                    if len(fields) == 4 and fields[1].isdigit() and fields[2].isdigit():  # a line cut by a kill is skipped
                        kept["\t".join(fields[:3])] = fields[3] or None
        except OSError:
            continue
        found[directory] = kept
    return found


def _cache_line(key, reason):
    """The disk cache's line for a checked file, or None where a tab or line break would break the line."""
    path, mtime, size = key
    name = os.path.basename(path)
    if any(c in name for c in "\t\r\n") or "\t" in (reason or "") or "\n" in (reason or ""):
        return None
    return f"{name}\t{mtime}\t{size}\t{reason or ''}\n"


def _save_disk_cache(folder, checked, reasons):
    """Appends `checked` (`(path, mtime, size)` keys; `reasons`: path -> why, for the failures) to the cache files
    of their folders (best effort), written line by line."""
    by_directory = {}
    for row, (path, _, _) in enumerate(checked):
        by_directory.setdefault(os.path.dirname(os.path.abspath(path)), []).append(row)
    try:
        os.makedirs(folder, exist_ok=True)
        for directory, rows in by_directory.items():
            lines = (_cache_line(checked[row], reasons.get(checked[row][0])) for row in rows)
            with open(_cache_file(folder, directory), "a", encoding="utf-8") as f:
                f.writelines(line for line in lines if line)
    except OSError as error:
        LOGGER.debug("decode check not kept on disk: %s", error)


def _stamp(mtime_ns: int, size: int) -> int:
    """One integer for a file's modification time and size (exact for files under 2**48 bytes)."""
    return (mtime_ns << 48) | size


def _cached(key):
    """The in-memory answer for `(path, mtime_ns, size)`: None (decodes), a reason, or `_UNCHECKED`."""
    path, mtime, size = key
    entry, stamp = _VALIDATION_CACHE.get(path), _stamp(mtime, size)
    if entry == stamp:
        return None
    if isinstance(entry, tuple) and entry[0] == stamp:
        return entry[1]
    return _UNCHECKED


def _remember(key, reason):
    path, mtime, size = key
    _VALIDATION_CACHE[path] = _stamp(mtime, size) if reason is None else (_stamp(mtime, size), reason)


def validate_images(paths):
    """Checks that every file exists, is not empty and fully decodes.

    Decoding runs in parallel inside tf.data with the same decoders the
    pipelines use. Results are cached in memory by (path, mtime, size), so a
    second call on unchanged files is instant; a check of `DISK_CACHE_MIN`
    files or more is also kept on disk (`decode_check_cache_dir`), so the
    next run only stats the files.

    Args:
        paths: iterable of file paths.

    Returns:
        `(good, bad)`: the readable paths in input order, and a list of
        `(path, reason)` for the others.
    """
    paths = [os.fspath(p) for p in paths]
    # Only the failures get an entry (path -> reason); the files to decode are (path, mtime, size) keys.
    reasons, to_check = {}, []
    for path in paths:
        if not is_utf8_name(path):  # TensorFlow (and the UTF-8 logs and CSVs) cannot take it
            reasons[path] = NOT_UTF8
            continue
        try:
            stat = os.stat(path)
        except OSError:
            reasons[path] = "file not found"
            continue
        if stat.st_size == 0:
            reasons[path] = "empty file (0 bytes)"
            continue
        key = (path, stat.st_mtime_ns, stat.st_size)
        reason = _cached(key)
        if reason is _UNCHECKED:
            to_check.append(key)
        elif reason is not None:
            reasons[path] = reason

    folder = decode_check_cache_dir() if len(paths) >= DISK_CACHE_MIN else None
    if to_check and folder:
        kept = _load_disk_cache(folder, {os.path.dirname(os.path.abspath(key[0])) for key in to_check})
        unchecked = []
        for key in to_check:
            directory, name = os.path.split(os.path.abspath(key[0]))
            reason = kept.get(directory, {}).get(f"{name}\t{key[1]}\t{key[2]}", _UNCHECKED)
            if reason is _UNCHECKED:
                unchecked.append(key)
            else:
                _remember(key, reason)
                if reason is not None:
                    reasons[key[0]] = reason
        to_check = unchecked
        kept = None

    if to_check:
        readable = np.zeros(len(to_check), dtype=bool)
        dataset = tf.data.Dataset.from_tensor_slices(
            (tf.range(len(to_check), dtype=tf.int64), [key[0] for key in to_check]))
        dataset = dataset.map(
            lambda i, p: (i, _check_decodes(tf.io.read_file(p))),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False,
        )
        # Batched: one Python round trip per CHECK_BATCH files, not per file; positions, not path copies.
        dataset = dataset.ignore_errors().batch(CHECK_BATCH).prefetch(2)
        with stderr_filtered(DECODER_NOISE):  # the failures are returned (and logged by drop_unreadable)
            for batch, _ in dataset.as_numpy_iterator():
                readable[batch] = True
            found = {key[0]: _reason(key[0]) or "cannot decode" for key, ok in zip(to_check, readable) if not ok}
        for key in to_check:
            _remember(key, found.get(key[0]))
        reasons.update(found)
        if folder:
            _save_disk_cache(folder, to_check, found)

    good = [p for p in paths if p not in reasons]
    bad = [(p, reasons[p]) for p in paths if p in reasons]
    return good, bad


def drop_unreadable(table, column="path", what="images"):
    """`table` without the rows whose `column` file fails `validate_images`; those are logged."""
    good, bad = validate_images(table[column])
    log_skipped(bad, what=what)
    return table[table[column].isin(set(good))].reset_index(drop=True) if bad else table


def log_skipped(bad, what="images"):
    """Logs unreadable files on the "hybridvision" logger (never silently)."""
    if bad:
        first = "; ".join(f"{shown_name(path)} ({reason})" for path, reason in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        LOGGER.warning("skipped %d unreadable %s: %s%s", len(bad), what, first, more)
