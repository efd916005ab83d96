"""hybridvision.common.plots.plot_history: the learning curves a run saves (curves.png) and a notebook shows."""

import matplotlib
import pytest

from hybridvision.common.plots import plot_history


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
    plot_history(history, "demo run")
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
    plot_history(history)
    fig = shown[0]
    assert len(fig.axes) == 8  # two rows of four
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 5
    assert all(len(ax.get_lines()) == 1 for ax in panels)


def test_plot_history_saves_the_same_panels(tmp_path):
    matplotlib.use("Agg")
    history = tmp_path / "history.csv"
    history.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,0.9,0.4,1.0\n")
    out = plot_history(history, out_png=tmp_path / "curves.png")
    assert out == tmp_path / "curves.png" and out.stat().st_size > 0
    assert plot_history(tmp_path / "missing.csv", out_png=tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_plot_image_grid_takes_one_pixel_maps(tmp_path):
    """A 1x1 feature map (the last conv of a small input) is drawn, not squeezed to a scalar."""
    import numpy as np

    from hybridvision.common.plots import plot_image_grid

    tiles = [np.full((1, 1), 7.0), np.zeros((1, 1, 1)), np.zeros((4, 4, 3), "uint8")]
    out = plot_image_grid(tiles, ["a", "b", "c"], tmp_path / "grid.png")
    assert out.stat().st_size > 0
