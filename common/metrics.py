"""Metrics computed outside `model.evaluate`: confusion matrices and per-class scores."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def predict_labels(model, dataset):
    """(true labels, predicted probabilities) over a dataset of (x, y) batches.

    Labels may be integer class ids or one-hot rows; models with several
    outputs are reduced to their first output.
    """
    ys, ps = [], []
    for x, y in dataset:
        p = model(x, training=False)
        if isinstance(p, (list, tuple)):
            p = p[0]
        elif isinstance(p, dict):
            p = next(iter(p.values()))
        if isinstance(y, dict):
            y = next(iter(y.values()))
        ys.append(np.asarray(y))
        ps.append(np.asarray(p, dtype="float32"))
    y = np.concatenate(ys)
    if y.ndim > 1 and y.shape[-1] > 1:
        y = y.argmax(-1)
    return y.reshape(-1).astype(int), np.concatenate(ps)


def classification_summary(y_true, probabilities, class_names) -> dict:
    """Confusion matrix and per-class precision/recall/F1 as a JSON-ready dict."""
    y_pred = np.asarray(probabilities).argmax(-1)
    labels = list(range(len(class_names)))
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float((y_pred == np.asarray(y_true)).mean()) if len(y_true) else float("nan"),
        "confusion_matrix": matrix.tolist(),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
    }


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = np.asarray(values, dtype="float64")
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0
