"""Multi-label evaluation: per-class 2x2 confusion matrices, micro precision/recall, AP and mAP.

`multilabel_report` is metrics.json's `val`; `write_per_class_report` turns
it into the run's per-class table (`per_class.md`) and bars of precision,
recall and AP per class (`per_class.png`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, multilabel_confusion_matrix, precision_recall_curve


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


def f1_thresholds(y_true, scores, default=0.5) -> list[float]:
    """Per class, the score threshold with the best F1 on these labels (`default` for a class without positives).

    Meant for the validation split: `predict` then labels new images with the
    thresholds stored in the exported model, instead of one 0.5 for all
    classes (rare classes get scores far below 0.5 under a weighted loss).
    """
    y_true = np.asarray(y_true, dtype=int)
    scores = np.asarray(scores, dtype="float64")
    chosen = []
    for c in range(y_true.shape[1]):
        if not y_true[:, c].any():
            chosen.append(float(default))
            continue
        precision, recall, thresholds = precision_recall_curve(y_true[:, c], scores[:, c])
        # The last (precision, recall) pair has no threshold (recall 0 by convention).
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        chosen.append(float(thresholds[int(np.argmax(f1))]))
    return chosen


def multilabel_report(y_true, scores, class_names, threshold=0.5) -> dict:
    """Everything metrics.json's `val` holds for the multi-label head.

    A class is predicted when its score reaches `threshold`. The 20 per-class
    2x2 matrices (scikit-learn's `[[tn, fp], [fn, tp]]`) are summed into one,
    whose precision and recall are the micro averages. AP is computed only
    for classes with at least one positive (AP is undefined without); those
    left out are listed in `ap_skipped_classes`. `chance_map` is the mAP
    random scores would get on the same labels. Per class: `per_class_precision`
    (0 when the class is never predicted), `per_class_recall` (classes with
    positives only), `per_class_positives` and `per_class_chance_ap`.
    """
    y_true = np.asarray(y_true, dtype=int)
    scores = np.asarray(scores, dtype="float64")
    matrices = multilabel_confusion_matrix(y_true, (scores >= threshold).astype(int))
    tn, fp, fn, tp = (int(v) for v in matrices.sum(axis=0).ravel())
    per_class_ap, skipped, chance = {}, [], {}
    precision, recall, support = {}, {}, {}
    for c, name in enumerate(class_names):
        (_, c_fp), (c_fn, c_tp) = matrices[c].tolist()
        precision[name] = c_tp / (c_tp + c_fp) if c_tp + c_fp else 0.0
        positives = support[name] = int(y_true[:, c].sum())
        if positives == 0:
            skipped.append(name)
            continue
        recall[name] = c_tp / (c_tp + c_fn)
        per_class_ap[name] = float(average_precision_score(y_true[:, c], scores[:, c]))
        chance[name] = random_ap(positives, len(y_true))
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "map": float(np.mean(list(per_class_ap.values()))) if per_class_ap else float("nan"),
        "chance_map": float(np.mean(list(chance.values()))) if chance else float("nan"),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "per_class_ap": per_class_ap,
        "per_class_chance_ap": chance,
        "per_class_precision": precision,
        "per_class_recall": recall,
        "per_class_positives": support,
        "ap_skipped_classes": skipped,
        "per_class_confusion": {name: matrices[c].tolist() for c, name in enumerate(class_names)},
        "threshold": float(threshold),
        "images": int(len(y_true)),
    }  # fmt: skip


def per_class_rows(report: dict) -> list[dict]:
    """One row per class of a `multilabel_report`: positives, AP, chance AP, precision, recall (None: undefined)."""
    rows = []
    for name, positives in report["per_class_positives"].items():
        rows.append({
            "class": name,
            "positives": positives,
            "ap": report["per_class_ap"].get(name),
            "chance_ap": report["per_class_chance_ap"].get(name),
            "precision": report["per_class_precision"][name],
            "recall": report["per_class_recall"].get(name),
        })  # fmt: skip
    return rows


def write_per_class_report(report: dict, out_dir, title: str = "") -> tuple[Path, Path]:
    """`per_class.md` (table) and `per_class.png` (precision / recall / AP bars) in `out_dir`.

    Classes without a val positive have no AP and no recall ("-" in the
    table, no bar); their precision is 0 when the model predicted them (all
    false positives) and also 0 when it did not.
    """
    from hybridvision.common.plots import plot_grouped_bars

    out_dir = Path(out_dir)
    rows = per_class_rows(report)

    def cell(v):
        return "-" if v is None else f"{v:.3f}"

    lines = [
        f"# Per-class results{': ' + title if title else ''}",
        "",
        f"val images {report['images']}, threshold {report['threshold']:g}: mAP {report['map']:.3f} "
        f"(chance {report['chance_map']:.3f}), micro precision {report['precision']:.3f}, recall {report['recall']:.3f}",
        "",
        "| class | val positives | AP | chance AP | precision | recall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['class']} | {r['positives']} | {cell(r['ap'])} | {cell(r['chance_ap'])} | "
            f"{cell(r['precision'])} | {cell(r['recall'])} |"
        )
    lines += ["", "AP and recall are undefined (-) for a class without val positives; chance AP is a random ranking's.", ""]
    table = out_dir / "per_class.md"
    table.write_text("\n".join(lines))

    def nan(v):
        return float("nan") if v is None else v

    series = {key: [nan(r[key]) for r in rows] for key in ("precision", "recall", "ap")}
    figure = plot_grouped_bars(
        [r["class"] for r in rows], series, out_dir / "per_class.png", "value",
        f"per-class precision / recall (threshold {report['threshold']:g}) and AP{': ' + title if title else ''}",
    )  # fmt: skip
    return table, figure
