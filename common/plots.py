"""Plots every app writes: training curves, confusion matrices, image grids."""

from __future__ import annotations

from pathlib import Path

# No matplotlib.use("Agg") here: matplotlib falls back to Agg by itself where
# there is no display, and forcing it would switch off inline plots in notebooks.
import matplotlib.pyplot as plt
import numpy as np

from hybridvision.common.history import read_history


def plot_history(history_csv: str | Path, title: str = "", out_png: str | Path | None = None) -> Path | None:
    """Loss and metric curves from a run's history CSV, train and validation side by side.

    One panel per metric (`loss`, `accuracy`, ...; `val_<metric>` shares its panel,
    the learning rate is left out), at most four panels a row. Saved to `out_png`
    (returned), or shown inline (a notebook) when it is None; an empty history draws nothing.
    """
    rows = read_history(history_csv)
    if not rows:
        return None
    columns = list(dict.fromkeys(k for r in rows for k in r))
    metrics = sorted({c.removeprefix("val_") for c in columns} - {"epoch", "learning_rate", "lr"})
    ncols = min(4, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3 * nrows), squeeze=False)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    epochs = [int(r["epoch"]) + 1 for r in rows]
    for ax, name in zip(axes.ravel(), metrics):
        for column, style in ((name, "-o"), (f"val_{name}", "--o")):
            if column in columns:
                ax.plot(epochs, [r.get(column) for r in rows], style, label=column, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    if out_png is None:
        plt.show()
        return None
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_confusion_matrix(matrix, class_names, out_png: str | Path, title: str = "confusion matrix") -> Path:
    """A labelled confusion matrix (rows: true class, columns: predicted)."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * n, 1.0 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = matrix.max() if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if matrix[i, j] > top / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color, fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_image_grid(images, titles, out_png: str | Path, ncols: int = 3) -> Path:
    """A grid of images (uint8 or 0..255 floats) with a title under each."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), images, titles):
        image = np.asarray(image)
        gray = image.ndim == 2 or image.shape[-1] == 1
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]  # only the channel axis: a 1x1 feature map stays an image
        ax.imshow(np.clip(image, 0, 255).astype("uint8"), cmap="gray" if gray else None)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_bars(names, means, stds, out_png: str | Path, ylabel: str = "accuracy", title: str = "") -> Path:
    """A bar plot with error bars (mean and std per entry)."""
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 3.5))
    ax.bar(range(len(names)), means, yerr=stds, capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_lines(x, series: dict, out_png: str | Path, xlabel: str, ylabel: str = "", title: str = "") -> Path:
    """Several named series against one x axis."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, ys in series.items():
        ax.plot(x, ys, "o-", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_grouped_bars(names, series: dict, out_png: str | Path, ylabel: str = "", title: str = "") -> Path:
    """Side-by-side bars per entry, one colour per named series (NaN values draw no bar)."""
    n, k = len(names), max(1, len(series))
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * n * max(1, k / 2), 3.8))
    for i, (label, values) in enumerate(series.items()):
        ax.bar(np.arange(n) + (i - (k - 1) / 2) * width, np.asarray(values, dtype="float64"), width, label=label)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)
