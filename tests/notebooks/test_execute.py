"""Every notebook runs top to bottom with QUICK = True on the demo data (nbclient).

The kernel runs on the interpreter running pytest (the venv's): a `python3`
kernelspec pointing at `sys.executable` is put first on JUPYTER_PATH, so no
`ipykernel install` is needed and a user's own `python3` kernelspec is not used.
Each notebook runs in its own tmp dir, so its runs/ and saved_models/ land there.
"""

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
# Overrides put right after the tagged parameters cell, as papermill does.
INJECTED = "# injected by tests/notebooks/test_execute.py\nQUICK = True\nDATA_DIR = None\nOUTPUT_DIR = None\n"


def inject_parameters(notebook):
    tagged = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    cell = nbformat.v4.new_code_cell(INJECTED, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(tagged[0] + 1, cell)
    return notebook


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    notebook = inject_parameters(nbformat.read(path, as_version=4))
    # The kernel inherits this environment: the checkout must be importable
    # from the tmp dir even where it is not pip-installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(tmp_path / "jupyter"), os.environ.get("JUPYTER_PATH")])))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path / "work")}}
    )
    (tmp_path / "work").mkdir()
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the failing cell
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    assert (tmp_path / "work" / "runs").is_dir() or path.stem == "hybrid_conv2d", "the notebook wrote no run directory"
