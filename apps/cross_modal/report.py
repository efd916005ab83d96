"""Per-modality evaluation, the modality x modality table, and metrics.json's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hybridvision.apps.cross_modal.data import make_images
from hybridvision.common.metrics import mean_std, predict_labels, retrieval_map
from hybridvision.common.plots import plot_confusion_matrix


def evaluate_per_modality(model, cfg, test_table, class_names, modalities, batch_size, out_dir=None, tag=""):
    """`{modality: {"accuracy", ["top5_accuracy"], "images"}, "all": {...}}` on the test rows.

    With `out_dir`, writes `confusion_<tag>_<modality>.png` per modality.
    """
    result, pooled_true, pooled_prob = {}, [], []
    for modality in modalities:
        rows = test_table[test_table["modality"] == modality]
        if len(rows) == 0:
            continue
        y_true, prob = predict_labels(model, make_images(cfg, rows, batch_size, False, modalities))
        result[modality] = _scores(y_true, prob, len(class_names))
        pooled_true.append(y_true)
        pooled_prob.append(prob)
        if out_dir is not None:
            matrix = _confusion(y_true, prob.argmax(-1), len(class_names))
            plot_confusion_matrix(matrix, class_names, Path(out_dir) / f"confusion_{tag}_{modality}.png",
                                  title=f"{tag}: test on {modality}")
    result["all"] = _scores(np.concatenate(pooled_true), np.concatenate(pooled_prob), len(class_names))
    return result


def retrieval_tables(extractor, head, cfg, test_table, modalities, batch_size) -> dict:
    """Retrieval mAP per (query modality, gallery modality), from two embeddings.

    `embedding`: the head's hidden Dense layer (what the classifier learnt);
    `backbone_features`: the backbone's globally averaged features (for a
    frozen backbone, the "no adjustment" baseline). Similarity is cosine;
    within a modality each query is left out of its own gallery.

    Returns:
        `{embedding name: {query modality: {gallery modality: mAP or None}}}`
        (None where no query has a same-class item in the gallery).
    """
    import keras

    hidden = keras.Model(head.input, head.get_layer("dense").output)
    embeddings, labels = {"embedding": {}, "backbone_features": {}}, {}
    for modality in modalities:
        rows = test_table[test_table["modality"] == modality]
        if len(rows) == 0:
            continue
        features = extractor.predict(make_images(cfg, rows, batch_size, False, modalities), verbose=0)
        embeddings["embedding"][modality] = hidden.predict(features, batch_size=batch_size, verbose=0)
        embeddings["backbone_features"][modality] = features.mean(axis=(1, 2)) if features.ndim == 4 else features
        labels[modality] = rows["label"].to_numpy()
    def score(vectors, q, g):  # None where no query has a same-class item (e.g. one image per class)
        value = retrieval_map(vectors[q], labels[q], vectors[g], labels[g], same_set=q == g)
        return None if np.isnan(value) else value

    return {name: {q: {g: score(vectors, q, g) for g in vectors} for q in vectors}
            for name, vectors in embeddings.items()}


def retrieval_markdown(retrieval: dict, caption: str) -> str:
    """One Markdown table per (row, embedding): rows query modality, columns gallery modality."""
    lines = [caption]
    for row, by_embedding in retrieval.items():
        for name, table in by_embedding.items():
            galleries = list(next(iter(table.values())))
            lines += ["", f"{row}, {name}: mAP (query \\ gallery)", "",
                      "| query \\ gallery | " + " | ".join(galleries) + " |", "|---|" + "---|" * len(galleries)]
            lines += [f"| {q} | " + " | ".join("-" if v[g] is None else f"{v[g]:.3f}" for g in galleries) + " |" for q, v in table.items()]
    return "\n".join(lines)


def _scores(y_true, prob, num_classes):
    scores = {"accuracy": float((prob.argmax(-1) == y_true).mean()), "images": len(y_true)}
    if num_classes > 5:
        top5 = np.argsort(-prob, axis=-1)[:, :5]
        scores["top5_accuracy"] = float((top5 == y_true[:, None]).any(-1).mean())
    return scores


def _confusion(y_true, y_pred, n):
    matrix = np.zeros((n, n), dtype=int)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _mean_of(results, key, column):
    values = [r[column][key] for r in results if column in r and key in r[column]]
    return mean_std(values) + (values,) if values else None


def summarize(rows: dict, protocol: str, modalities) -> dict:
    """metrics["test"] from `{row name: [one evaluate_per_modality dict per fold]}`.

    `per_modality[m]` is the first row's score on m (`all`, the first
    source), or for leave_one_out the score on m of the model trained
    without m; with several folds each value is the mean, with `_std` and the
    per-fold values beside it. `table[row][column]` holds every mean accuracy.
    """
    folds = max(len(v) for v in rows.values())

    def cell(results, column):
        out = {}
        for key in ("accuracy", "top5_accuracy"):
            stats = _mean_of(results, key, column)
            if stats is None:
                continue
            out[key] = stats[0]
            if folds > 1:
                out[f"{key}_std"], out[f"{key}_folds"] = stats[1], stats[2]
        # Test images behind the score (summed over folds).
        out["images"] = sum(r[column]["images"] for r in results if column in r)
        return out

    table = {row: {col: cell(res, col)["accuracy"] for col in [*modalities, "all"] if _mean_of(res, "accuracy", col)}
             for row, res in rows.items()}
    if protocol in ("leave_one_out", "domainbed"):
        per_modality = {m: cell(rows[f"without_{m}"], m) for m in modalities if f"without_{m}" in rows}
        accuracy = float(np.mean([v["accuracy"] for v in per_modality.values()]))
    else:
        first = next(iter(rows.values()))
        per_modality = {m: cell(first, m) for m in modalities if _mean_of(first, "accuracy", m)}
        accuracy = cell(first, "all")["accuracy"]
    test = {"accuracy": accuracy, "per_modality": per_modality, "table": table}
    test["mean_modality_accuracy"] = float(np.mean([v["accuracy"] for v in per_modality.values()]))
    if folds > 1:
        test["folds"] = folds
    return test


def write_table(rows: dict, test: dict, modalities, out_dir, caption: str) -> str:
    """`modality_table.csv` and `.md` (rows: trained on, columns: tested on); returns the Markdown."""
    columns = [*modalities, "all"]
    folds = test.get("folds", 1)

    def text(results, col):
        stats = _mean_of(results, "accuracy", col)
        if stats is None:
            return ""
        return f"{stats[0]:.3f} ± {stats[1]:.3f}" if folds > 1 else f"{stats[0]:.3f}"

    csv = ["trained_on," + ",".join(columns)]
    md = [caption, "", "| trained on \\ tested on | " + " | ".join(columns) + " |",
          "|---|" + "---|" * len(columns)]
    for row, results in rows.items():
        csv.append(row + "," + ",".join(f"{test['table'][row].get(c, ''):.4f}" if c in test["table"][row] else ""
                                         for c in columns))
        md.append(f"| {row} | " + " | ".join(text(results, c) for c in columns) + " |")
    Path(out_dir, "modality_table.csv").write_text("\n".join(csv) + "\n")
    Path(out_dir, "modality_table.md").write_text("\n".join(md) + "\n")
    return "\n".join(md)


def leave_one_out_markdown(test: dict, retrieval: dict, caption: str) -> str:
    """The standard leave-one-domain-out table (as PACS papers report it): one row per held-out domain, then the average.

    Each row is the model trained on every other domain, tested on all images
    of the held-out one: accuracy (top-5 where there are more than 5
    classes), and retrieval mAP with held-out queries, within the held-out
    domain and against the training domains' test images (mean over them),
    from the head's embedding and from the backbone's pooled features.
    """
    held_out = list(test["per_modality"])
    top5 = all("top5_accuracy" in test["per_modality"][m] for m in held_out)

    def fmt(value):
        return "-" if value is None or np.isnan(value) else f"{value:.3f}"

    def maps(m):
        out = []
        for name in ("embedding", "backbone_features"):
            table = retrieval.get(f"without_{m}", {}).get(name, {}).get(m, {})
            others = [v for g, v in table.items() if g != m and v is not None]
            out += [table.get(m), float(np.mean(others)) if others else None]
        return out

    header = ["held-out domain", "test images", "accuracy", *(["top-5"] if top5 else []),
              "mAP within (embedding)", "mAP to training domains (embedding)",
              "mAP within (backbone)", "mAP to training domains (backbone)"]
    lines = [caption, "", "| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    columns = []
    for m in held_out:
        scores = test["per_modality"][m]
        values = [scores["accuracy"], *([scores["top5_accuracy"]] if top5 else []), *maps(m)]
        columns.append(values)
        lines.append(f"| {m} | {scores['images']} | " + " | ".join(fmt(v) for v in values) + " |")
    means = [np.mean([c[i] for c in columns if c[i] is not None]) if any(c[i] is not None for c in columns)
             else None for i in range(len(columns[0]))]
    lines.append("| **average** | | " + " | ".join(f"**{fmt(v)}**" for v in means) + " |")
    return "\n".join(lines)
