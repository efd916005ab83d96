"""mkdocs hook: let mkdocstrings read `hybridvision` laid out as it installs.

In the repository `common/`, `apps/` and `data_prep/` sit beside
`hybridvision/`; an install puts them inside it (setup.py's `package_dir`).
`hybridvision.layers` and the other API modules re-export classes from
`hybridvision.common`, which griffe (mkdocstrings' static reader) can only
follow in the installed layout. This hook builds that layout from symlinks
in a temporary folder and points the python handler's `paths` at it, so the
API pages are read from this checkout's source without installing it.
"""

import ast
import atexit
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


@event_priority(100)  # before mkdocstrings reads its handler options
def on_config(config):
    python = config.plugins["mkdocstrings"].config["handlers"].setdefault("python", {})
    python["paths"] = [str(_stage())]
    return config
