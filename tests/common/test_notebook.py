"""hybridvision.common.notebook: the notebooks' shared cells (data location)."""

from pathlib import Path

import pytest

from hybridvision.common import notebook


def test_resolve_data_demo_default(monkeypatch, tmp_path, capsys):
    import hybridvision.common.data.demo

    asked = []

    def fake_demo_root(name):
        asked.append(name)
        return tmp_path / name

    monkeypatch.setattr(hybridvision.common.data.demo, "demo_root", fake_demo_root)
    data_dir, data_args, run_dir = notebook.resolve_data(None, "celeba", "attractiveness")
    assert asked == ["celeba"]
    assert data_dir == tmp_path / "celeba"
    assert data_args == []
    assert run_dir.parent == Path("runs") / "attractiveness"
    assert run_dir.name.startswith("notebook-")
    out = capsys.readouterr().out
    assert "SYNTHETIC demo data" in out and "run directory" in out


def test_resolve_data_missing_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="DATA_DIR") as error:
        notebook.resolve_data(str(missing), "celeba", "attractiveness")
    assert str(missing) in str(error.value) and "first code cell" in str(error.value)


def test_resolve_data_existing_path(tmp_path, capsys):
    data_dir, data_args, run_dir = notebook.resolve_data(str(tmp_path), "voc", "patch_training")
    assert data_dir == tmp_path
    assert data_args == ["--data-dir", str(tmp_path)]
    assert run_dir.parent == Path("runs") / "patch_training"
    assert "SYNTHETIC" not in capsys.readouterr().out


def test_import_is_cheap():
    import subprocess
    import sys

    code = (
        "import sys, hybridvision.common.notebook; "
        "heavy = [m for m in ('keras', 'tensorflow', 'matplotlib', 'pandas', 'IPython') if m in sys.modules]; "
        "print(heavy)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
