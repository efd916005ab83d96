"""mkdocs hook: let mkdocstrings read `hybridvision` laid out as it installs.

In the repository `common/`, `apps/` and `data_prep/` sit beside
`hybridvision/`; an install puts them inside it (setup.py's `package_dir`).
`hybridvision.layers` and the other API modules re-export classes from
`hybridvision.common`, which griffe (mkdocstrings' static reader) can only
follow in the installed layout. This hook builds that layout from symlinks
in a temporary folder and points the python handler's `paths` at it, so the
API pages are read from this checkout's source without installing it.
Warnings about docstrings name the files by their path in the checkout
(`common/layers/...`), not in the temporary folder.
"""

import ast
import atexit
import logging
import shutil
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]


def _installed_folders():
    """The folders setup.py installs under `hybridvision` (its `FOLDERS` tuple)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FOLDERS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("setup.py has no FOLDERS tuple; docs/_hooks/api_source.py needs it")


def _stage():
    stage = Path(tempfile.mkdtemp(prefix="hybridvision-docs-"))
    atexit.register(shutil.rmtree, stage, ignore_errors=True)
    package = stage / "hybridvision"
    package.mkdir()
    for entry in (ROOT / "hybridvision").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder in _installed_folders():
        if not (package / folder).exists():
            (package / folder).symlink_to(ROOT / folder, target_is_directory=True)
    return stage


class _CheckoutPaths(logging.Filter):
    """Rewrites paths in the temporary layout to the checkout's own (`common/...`, `hybridvision/...`)."""

    def __init__(self, stage, folders):
        super().__init__()
        package = f"{stage}/hybridvision/"
        self.prefixes = [(f"{package}{folder}/", f"{folder}/") for folder in folders] + [(package, "hybridvision/")]

    def filter(self, record):
        message = record.getMessage()
        if "hybridvision-docs-" in message:
            for prefix, replacement in self.prefixes:
                message = message.replace(prefix, replacement)
            record.msg, record.args = message, ()
        return True


@event_priority(100)  # before mkdocstrings reads its handler options
def on_config(config):
    stage = _stage()
    python = config.plugins["mkdocstrings"].config["handlers"].setdefault("python", {})
    python["paths"] = [str(stage)]
    path_filter = _CheckoutPaths(stage, _installed_folders())
    for handler in logging.getLogger("mkdocs").handlers:
        for old in [f for f in handler.filters if isinstance(f, _CheckoutPaths)]:  # `mkdocs serve` rebuilds
            handler.removeFilter(old)
        handler.addFilter(path_filter)
    return config
