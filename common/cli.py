"""One entry point for every command-line tool: expected errors as one line, exit code 2.

Each tool's `main(argv)` raises as usual (tests call it and catch the
exception); its `if __name__ == "__main__":` hands it to `main_entry`:

    if __name__ == "__main__":
        main_entry(main)

`main_entry` prints an expected error as `error: <message>` on one line and
exits with 2, without a traceback. Expected are: `UserError`, and a
`ValueError`, `FileNotFoundError` (and the other file errors) raised by this
project's own code (apps/, common/, data_prep/, benchmarks/); running out of
disk space or writing to a read-only place, wherever it happens. Anything else
(a bug, an error deep inside TensorFlow) keeps its traceback and exits 1.
`HYBRIDVISION_TRACEBACK=1` shows the traceback of expected errors too.

`quiet_tensorflow` keeps TensorFlow's C++ start-up noise off a command's
output (the `hybridvision` command calls it unless `--verbose`);
`stderr_filtered(DECODER_NOISE)` keeps libjpeg's lines about corrupt files off it.

This module imports nothing heavy, so tools that do not need Keras stay fast.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

EXIT_USER_ERROR = 2
_ROOT = Path(__file__).resolve().parents[1]
_OUR_PACKAGES = tuple(str(_ROOT / name) + os.sep for name in ("apps", "common", "data_prep", "benchmarks", "hybridvision"))
# Out of space, read-only, no permission, quota: conditions of the machine, not bugs.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}
# An OSError raised by our own code (open, os.link, ...) names its file: one line too.
_OURS_IF_RAISED_HERE = (ValueError, OSError)


class UserError(ValueError):
    """An error the user can fix (a bad flag, a missing file, a busy run directory).

    `main_entry` prints it as one line, `error: <message>`, and exits with 2.
    It is a `ValueError`, so code and tests that catch `ValueError` still do.
    """


def _raised_by_us(err: BaseException) -> bool:
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and str(Path(frames[-1].filename).resolve()).startswith(_OUR_PACKAGES)


def environment_error(err: BaseException) -> bool:
    """True for out-of-space / read-only / permission errors (an `OSError` or h5py's wrapping of one)."""
    if isinstance(err, OSError) and err.errno in _ENVIRONMENT_ERRNOS:
        return True
    text = str(err)
    return any(s in text for s in ("No space left on device", "Read-only file system", "Disk quota exceeded",
                                   "errno = 28", "errno = 30"))


def is_expected(err: BaseException) -> bool:
    """Whether `main_entry` reports `err` as one line (see the module docstring)."""
    if isinstance(err, UserError) or environment_error(err):
        return True
    return isinstance(err, _OURS_IF_RAISED_HERE) and _raised_by_us(err)


def one_line(err: BaseException) -> str:
    """The message of `err` on one line (an OSError of the system as '<file>: <reason>')."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def main_entry(main, argv=None, expected: tuple = ()) -> None:
    """Run `main(argv)` as a command: exit 0, or 2 with `error: ...` for expected errors.

    `expected`: more exception types to report as one line wherever they are
    raised (e.g. `ImportError` of an optional package). A `main` returning an
    int exits with it (other return values mean 0).
    """
    try:
        result = main(argv)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`hybridvision list | head`): stop quietly, as Python's docs advise,
        # with stdout pointed at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 - sorted into expected and unexpected below
        if not (is_expected(err) or isinstance(err, expected)):
            raise
        if os.environ.get("HYBRIDVISION_TRACEBACK"):
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.write(f"error: {one_line(err)}\n")
        sys.stderr.flush()
        sys.exit(EXIT_USER_ERROR)
    sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)


# TensorFlow's C++ start-up notes (oneDNN, no CUDA driver, CPU instructions) and its
# "failed call to cuInit" on machines without a GPU, and oneDNN's note on bool ops. The ones printed while TensorFlow
# loads come before absl logging starts, so TF_CPP_MIN_LOG_LEVEL cannot hide them.
STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog"
    r"|I\d{4} \d\d:\d\d:\d\d"
    r"|E\d{4} .*failed call to cuInit"
    r"|E\d{4} .*oneDNN supports DT_BOOL only"  # a oneDNN fallback note of some CPUs' first bool op
    r"|To enable the following instructions: .*rebuild TensorFlow)"
)


# What libjpeg (inside TensorFlow's decoder) prints straight to file descriptor 2 for a corrupt or truncated file,
# one line per file, e.g. "Bogus Huffman table definition" or "Input file read error": the files it is about are
# listed anyway (the skipped-images warning, run.log, <out>.errors.csv).
DECODER_NOISE = re.compile(
    r"^(Corrupt JPEG data|Premature end of (JPEG file|data)|Invalid JPEG|Not a JPEG file|Unsupported (JPEG|marker)"
    r"|Bogus |(Missing )?Huffman|Input file read error|Empty (input file|JPEG image)|Unexpected marker"
    r"|Quantization table 0x|Sampling factors too large|Invalid (SOS|scan|component|color|crop)|Improper call"
    r"|Didn't expect more than one scan|Image too (big|wide)|Maximum supported image dimension|Arithmetic table"
    r"|Inconsistent progression|Warning: (unknown JFIF|thumbnail image)|JPEG datastream contains no image"
    r"|Unknown (APP0|APP14|Adobe)|libpng (warning|error): )"
)


@contextlib.contextmanager
def stderr_to(file):
    """Point file descriptor 2 (where C++ code writes, past Python's sys.stderr) at `file` for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def stderr_filtered(noise=STARTUP_NOISE):
    """Catch what C++ writes to file descriptor 2 in a temporary file, then pass on the lines `noise` does not match.

    (Python's own writes to stderr inside the block come out at its end.)
    """
    with tempfile.TemporaryFile() as caught:
        try:
            with stderr_to(caught):
                yield
        finally:
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if not noise.match(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def quiet_tensorflow(verbose: bool = False, load: str | None = "keras") -> None:
    """Keep TensorFlow's start-up noise off this process's output, unless `verbose`.

    A user's own TF_CPP_MIN_LOG_LEVEL is respected (nothing is changed then);
    otherwise it is set to 3 (also hiding cuInit's error, which comes after
    logging starts; Python errors still show) and `load` (a module that
    imports TensorFlow, by default Keras) is imported now, with the noise of
    its loading filtered out. Call it before anything imports TensorFlow.
    """
    if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if load and load not in sys.modules:
        with stderr_filtered():
            importlib.import_module(load)
