"""Each notebook's paired jupytext `.py` (the source of truth) and `.ipynb` hold the same cells."""

from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))


def _cells(path):
    notebook = jupytext.read(path)
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_every_notebook_has_both_files():
    ipynbs = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert SOURCES, f"no notebooks in {NOTEBOOKS}"
    assert [p.stem for p in SOURCES] == [p.stem for p in ipynbs], (
        "each notebooks/<name>.py needs its notebooks/<name>.ipynb; regenerate with "
        "`jupytext --to ipynb notebooks/<name>.py`"
    )


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync(source):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb} is missing: run `jupytext --to ipynb {source}`"
    assert _cells(source) == _cells(ipynb), (
        f"{ipynb.name} differs from {source.name} (the source of truth): run `jupytext --to ipynb {source}`"
    )


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_outputs_stripped_and_parameters_tagged(source):
    import nbformat

    notebook = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    with_outputs = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"{source.stem}.ipynb has outputs in cells {with_outputs}: regenerate it from the .py"
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{source.stem}: exactly one cell must be tagged 'parameters'"
    assert "QUICK = True" in tagged[0].source and "REPO_URL" in tagged[0].source
