"""Where the demo datasets live: generated on demand, stamped, locked, and the `--data-dir` fallback."""

import contextlib
import logging
import os
import shutil
import zlib
from pathlib import Path

import numpy as np

from hybridvision.common.config import OneLineErrorParser
from hybridvision.common.data.demo import domains, faces, mnist, table, voc
from hybridvision.common.data.demo.primitives import SCALES

log = logging.getLogger("hybridvision")

GENERATOR_VERSION = "1"
# Per-dataset revisions on top of GENERATOR_VERSION: a change to one dataset regenerates only that one
# (celeba 2: Attractive's eye-size effect flips sign with Male; celeba 3: e also drawn as the clothes' colour).
_DATASET_REVISIONS = {"celeba": "3"}
NAMES = ("celeba", "orientation", "light", "mnist", "voc", "domains", "table")
ENV_VAR = "HYBRIDVISION_DEMO_DIR"
STAMP = ".complete"
README = "README.txt"
_README_MARK = "SYNTHETIC demo data"

_GENERATORS = {
    "celeba": faces.generate_celeba,
    "orientation": lambda out, rng, scale: faces.generate_face_folders(out, rng, scale, "orientation"),
    "light": lambda out, rng, scale: faces.generate_face_folders(out, rng, scale, "light"),
    "mnist": mnist.generate_mnist,
    "voc": voc.generate_voc,
    "domains": domains.generate_domains,
    "table": table.generate_table,
}
# What each dataset stands in for, in the warning of `data_root`.
_STANDS_FOR = {
    "celeba": ("faces", "real CelebA"),
    "orientation": ("faces", "real faces"),
    "light": ("faces", "real faces"),
    "mnist": ("digits (scikit-learn's 8x8 digits upsampled to MNIST's IDX format)", "real MNIST"),
    "voc": ("VOC data", "real VOC"),
    "domains": ("domains", "real images"),
    "table": ("table of images and covariates", "real images and covariates"),
}


def _check_name(name):
    if name not in NAMES:
        raise ValueError(f"unknown demo dataset {name!r}: use one of {', '.join(NAMES)}")


def default_base_dir():
    """`$HYBRIDVISION_DEMO_DIR`, else `<repo>/.cache/demo_data` (git-ignored).

    An installed copy (no `setup.py` beside the package) uses
    `~/.cache/hybridvision/demo_data` instead of writing into site-packages.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[3]
    if (repo / "setup.py").is_file():
        return repo / ".cache" / "demo_data"
    return Path.home() / ".cache" / "hybridvision" / "demo_data"


def _version(name):
    """`GENERATOR_VERSION`, plus `.<revision>` for a dataset revised since (others keep their stamps)."""
    revision = _DATASET_REVISIONS.get(name)
    return f"{GENERATOR_VERSION}.{revision}" if revision else GENERATOR_VERSION


def _stamp_text(name, scale, seed):
    return (
        f"hybridvision demo data: name={name} version={_version(name)} "
        f"scale={scale} seed={seed}\n"
    )


def is_complete(out_dir, name, scale="demo", seed=0):
    """True when `out_dir` holds a finished generation of this exact version."""
    stamp = Path(out_dir) / STAMP
    try:
        return stamp.read_text(encoding="utf-8") == _stamp_text(name, scale, seed)
    except OSError:
        return False


@contextlib.contextmanager
def _lock(out_dir):
    """Serialises generation of one folder across processes (where fcntl exists)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock, generation is still stamped last
        yield
        return
    lock_path = out_dir.parent / f".{out_dir.name}.lock"
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _clear(out_dir):
    """Empties a stale demo folder, refusing to touch one we did not write."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ValueError(f"demo data path {out_dir} is a file: pass a folder path")
    entries = list(out_dir.iterdir())
    if not entries:
        return
    readme = out_dir / README
    ours = readme.is_file() and _README_MARK in readme.read_text(encoding="utf-8", errors="replace")
    if not ours:
        raise ValueError(
            f"{out_dir} is not empty and holds no demo data ({README} missing): "
            "pass an empty or new folder as the output"
        )
    # The stamp goes first: a clear cut short must never leave a "complete" folder.
    (out_dir / STAMP).unlink(missing_ok=True)
    for entry in entries:
        if entry.name == STAMP:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def generate(name, out_dir=None, scale="demo", seed=0, force=False):
    """Generates dataset `name` into `out_dir` (its own folder) unless already there.

    Args:
        name: one of `NAMES`.
        out_dir: the dataset's folder; default `default_base_dir() / name`.
        scale: "demo" (a few hundred images, trains in seconds) or "tiny"
            (a handful per class, for tests).
        seed: the random seed; the same seed gives the same bytes.
        force: regenerate even when a complete stamp is present.

    Returns:
        The dataset folder as a `pathlib.Path`.
    """
    _check_name(name)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: use one of {', '.join(SCALES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir) if out_dir is not None else default_base_dir() / name
    if not force and is_complete(out_dir, name, scale, seed):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _lock(out_dir):
        if not force and is_complete(out_dir, name, scale, seed):
            return out_dir  # another process finished it while we waited
        _clear(out_dir)
        out_dir.mkdir(exist_ok=True)
        # The README goes first so that a half-written folder is still known as ours.
        (out_dir / README).write_text(_readme_header(name, scale, seed), encoding="utf-8")
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        description = _GENERATORS[name](out_dir, rng, scale)
        with open(out_dir / README, "a", encoding="utf-8") as f:
            f.write(description + "\n")
        (out_dir / STAMP).write_text(_stamp_text(name, scale, seed), encoding="utf-8")
    return out_dir


def _readme_header(name, scale, seed):
    return (
        f"{_README_MARK} -- NOT real data.\n\n"
        f"Dataset '{name}', drawn by hybridvision's common/data/demo/ "
        f"(generator version {_version(name)}, scale {scale}, seed {seed}).\n"
        "It lets the demos run offline in seconds; accuracies measured on it say nothing\n"
        "about real data. Delete this folder at any time: it is regenerated on demand.\n\n"
    )


def demo_dir(name, base_dir=None, scale="demo", seed=0):
    """The folder of demo dataset `name`, generated first if needed.

    `base_dir` defaults to `$HYBRIDVISION_DEMO_DIR` or `<repo>/.cache/demo_data`.
    """
    _check_name(name)
    base = Path(base_dir) if base_dir is not None else default_base_dir()
    return generate(name, base / name, scale=scale, seed=seed)


def demo_root(name, base_dir=None, scale="demo", seed=0):
    """The path to hand the dataset's reader (`voc`: the `VOC2012` folder inside)."""
    path = demo_dir(name, base_dir, scale, seed)
    return path / "VOC2012" if name == "voc" else path


def generate_all(base_dir=None, scale="demo", seed=0):
    """Generates every dataset if needed; returns {name: folder}."""
    return {name: demo_dir(name, base_dir, scale, seed) for name in NAMES}


def data_root(data_dir, name, flag="--data-dir"):
    """`data_dir` when given, else the SYNTHETIC demo dataset `name` (generated on first use).

    The one "no `--data-dir` -> demo data" fallback of every app: the demo
    path is `demo_root(name)` (what the dataset's reader takes) and a warning
    says that numbers measured on it say nothing about real data.
    """
    if data_dir:
        return data_dir
    root = demo_root(name)
    what, real = _STANDS_FOR[name]
    log.warning("no %s: using the SYNTHETIC demo %s in %s (numbers say nothing about %s)", flag, what, root, real)
    return root


def main(argv=None):
    parser = OneLineErrorParser(
        prog="python -m hybridvision.common.data.demo",
        description="Generate the synthetic demo datasets (seconds, no download).",
    )
    parser.add_argument("names", nargs="*", help=f"datasets (default: all of {', '.join(NAMES)})")
    parser.add_argument(
        "--out", help=f"base folder (default: ${ENV_VAR} or <repo>/.cache/demo_data)"
    )
    parser.add_argument("--scale", choices=SCALES, default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="regenerate even if up to date")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in NAMES:
            parser.error(f"unknown dataset {name!r}: use one of {', '.join(NAMES)}")
    base = Path(args.out) if args.out else default_base_dir()
    for name in args.names or NAMES:
        path = generate(name, base / name, scale=args.scale, seed=args.seed, force=args.force)
        print(f"{name}: {path}")
    return 0
