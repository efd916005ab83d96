"""common.notebook: the notebooks' shared cells (learning curves, data location)."""

from pathlib import Path

import matplotlib
import pytest

from common import notebook


@pytest.fixture
def shown(monkeypatch):
    """Agg backend, and plt.show replaced by a recorder of the figures it was asked to show."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: figures.append(plt.gcf()))
    yield figures
    plt.close("all")


def test_plot_history_one_panel_per_metric(tmp_path, shown):
    history = tmp_path / "history.csv"
    history.write_text(
        "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\n"
        "0,0.5,0.001,0.9,0.4,1.0\n"
        "1,0.7,0.001,0.6,0.6,0.8\n"
    )
    notebook.plot_history(history, "demo run")
    assert len(shown) == 1
    fig = shown[0]
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["accuracy", "loss"]  # learning_rate left out
    for ax in panels:
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == [ax.get_title(), f"val_{ax.get_title()}"]
        assert list(lines[0].get_xdata()) == [1, 2]  # epochs counted from 1
    assert fig.get_suptitle() == "demo run"


def test_plot_history_hides_unused_panels(tmp_path, shown):
    history = tmp_path / "history.csv"
    history.write_text("epoch,a,b,c,d,loss\n0,1,2,3,4,5\n")  # 5 metrics, no validation
    notebook.plot_history(history)
    fig = shown[0]
    assert len(fig.axes) == 8  # two rows of four
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 5
    assert all(len(ax.get_lines()) == 1 for ax in panels)


def test_resolve_data_demo_default(monkeypatch, tmp_path, capsys):
    import common.data.demo

    asked = []

    def fake_demo_root(name):
        asked.append(name)
        return tmp_path / name

    monkeypatch.setattr(common.data.demo, "demo_root", fake_demo_root)
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
        "import sys, common.notebook; "
        "heavy = [m for m in ('keras', 'tensorflow', 'matplotlib', 'pandas', 'IPython') if m in sys.modules]; "
        "print(heavy)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
