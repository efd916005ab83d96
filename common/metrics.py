"""Metrics computed outside `model.evaluate`: confusion matrices and per-class scores."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)


def predict_labels(model, dataset):
    """(true labels, predicted probabilities) over a dataset of (x, y) batches.

    Labels may be integer class ids or one-hot rows; models with several
    outputs are reduced to their first output.
    """
    ys, ps = [], []
    for x, y in dataset:
        # A compiled predict step; calling the model directly would run it eagerly, batch by batch.
        p = model.predict_on_batch(x)
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


def class_probabilities(probabilities) -> np.ndarray:
    """`(n, classes)` probabilities: one sigmoid column `p` becomes `[1 - p, p]`."""
    p = np.asarray(probabilities, dtype="float64")
    p = p.reshape(len(p), -1)
    return np.concatenate([1 - p, p], axis=1) if p.shape[1] == 1 else p


def label_scores(y_true, probabilities) -> dict:
    """Scores that mean something on imbalanced classes too, from class ids and probabilities.

    `accuracy`, `balanced_accuracy` (the mean of the per-class recalls),
    `f1_macro`, and `roc_auc` (binary: of the positive class; more classes:
    the macro one-vs-rest AUC; NaN when a class is absent from `y_true`).
    `probabilities`: `(n, 1)` sigmoid outputs or `(n, classes)`.
    """
    y_true = np.asarray(y_true).reshape(-1).astype(int)
    p = class_probabilities(probabilities)
    y_pred = p.argmax(-1)
    classes = p.shape[1]
    auc = float("nan")
    if len(np.unique(y_true)) == classes:
        auc = float(roc_auc_score(y_true, p[:, 1]) if classes == 2
                    else roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=list(range(classes))))
    return {
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if len(y_true) else float("nan"),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", labels=list(range(classes)), zero_division=0)),
        "roc_auc": auc,
    }


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = np.asarray(values, dtype="float64")
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def retrieval_map(query, query_labels, gallery, gallery_labels, same_set=False) -> float:
    """Mean average precision of retrieving same-class gallery items by cosine similarity.

    Each query ranks the gallery by cosine similarity; its average precision
    is the mean, over the gallery items of its class, of the precision at
    that item's rank. Queries whose class is absent from the gallery are
    left out. `same_set=True` (the query set is the gallery, e.g.
    within-modality retrieval) leaves each query out of its own ranking.

    Args:
        query: `(n, d)` embeddings; `query_labels`: `(n,)` class ids.
        gallery: `(m, d)` embeddings; `gallery_labels`: `(m,)` class ids.

    Returns:
        The mAP in [0, 1], or NaN when no query has a relevant item.
    """
    def unit(x):
        x = np.asarray(x, dtype="float64")
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    similarity = unit(query) @ unit(gallery).T
    relevant = np.asarray(query_labels)[:, None] == np.asarray(gallery_labels)[None, :]
    if same_set:
        np.fill_diagonal(similarity, -np.inf)
        np.fill_diagonal(relevant, False)
    order = np.argsort(-similarity, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    if same_set:  # the query itself sorts last (similarity -inf): drop that column
        hits = hits[:, :-1]
    counts = hits.sum(axis=1)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    keep = counts > 0
    if not keep.any():
        return float("nan")
    ap = (precision * hits).sum(axis=1)[keep] / counts[keep]
    return float(ap.mean())
