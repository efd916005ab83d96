"""Multi-label evaluation: per-class 2x2 confusion matrices, micro precision/recall, AP and mAP."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, multilabel_confusion_matrix


def predict_multilabel(model, dataset):
    """(labels, scores) over a dataset of (images, multi-hot labels) batches."""
    ys, ps = [], []
    for x, y in dataset:
        ys.append(np.asarray(y))
        ps.append(np.asarray(model(x, training=False), dtype="float32"))
    return np.concatenate(ys).astype(int), np.concatenate(ps)


def random_ap(positives, n):
    """Expected AP of a random ranking of `n` items of which `positives` are positive.

    Closed form (Bestgen 2015): `((k - 1) / (n - 1) * (n - H_n) + H_n) / n`
    with `H_n` the n-th harmonic number; it is above the positive rate k/n
    when k is small (one positive in n: `H_n / n`).
    """
    k, n = int(positives), int(n)
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    if n == 1:
        return float(k)
    return ((k - 1) / (n - 1) * (n - harmonic) + harmonic) / n


def multilabel_report(y_true, scores, class_names, threshold=0.5) -> dict:
    """Everything metrics.json's `val` holds for the multi-label head.

    A class is predicted when its score reaches `threshold`. The 20 per-class
    2x2 matrices (scikit-learn's `[[tn, fp], [fn, tp]]`) are summed into one,
    whose precision and recall are the micro averages. AP is computed only
    for classes with at least one positive (AP is undefined without); those
    left out are listed in `ap_skipped_classes`. `chance_map` is the mAP
    random scores would get on the same labels.
    """
    y_true = np.asarray(y_true, dtype=int)
    scores = np.asarray(scores, dtype="float64")
    matrices = multilabel_confusion_matrix(y_true, (scores >= threshold).astype(int))
    tn, fp, fn, tp = (int(v) for v in matrices.sum(axis=0).ravel())
    per_class_ap, skipped, chance = {}, [], []
    for c, name in enumerate(class_names):
        positives = int(y_true[:, c].sum())
        if positives == 0:
            skipped.append(name)
            continue
        per_class_ap[name] = float(average_precision_score(y_true[:, c], scores[:, c]))
        chance.append(random_ap(positives, len(y_true)))
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "map": float(np.mean(list(per_class_ap.values()))) if per_class_ap else float("nan"),
        "chance_map": float(np.mean(chance)) if chance else float("nan"),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "per_class_ap": per_class_ap,
        "ap_skipped_classes": skipped,
        "per_class_confusion": {name: matrices[c].tolist() for c, name in enumerate(class_names)},
        "threshold": float(threshold),
        "images": int(len(y_true)),
    }  # fmt: skip
