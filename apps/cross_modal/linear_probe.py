"""Linear probe: a logistic regression on the frozen backbone's pooled features.

The reference any transfer model must beat: no layer of the network moves,
one linear classifier (scikit-learn's multinomial logistic regression, its
regularisation C picked on the validation rows) reads the backbone's
globally averaged ImageNet features. Same data, split, protocol and test
rows as `hybridvision.apps.cross_modal.train`, so the tables line up row for row.

    hybridvision cross_modal linear_probe --data-dir ../shared/data/pacs_small --protocol from_source --source photo

Writes `linear_probe.json` and `linear_probe.md` into `--run-dir` (default
`runs/cross_modal_linear_probe/<timestamp>`) and prints the table.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from hybridvision.apps.cross_modal.config import CrossModalConfig, linear_probe_parser
from hybridvision.apps.cross_modal.data import experiments, labels_of, load_table, partitions, test_rows
from hybridvision.apps.cross_modal.models import build_extractor
from hybridvision.common.config import parse_config
from hybridvision.common.features import cached_features
from hybridvision.common.run import setup_logging

log = logging.getLogger("hybridvision")
C_GRID = (0.01, 0.1, 1.0, 10.0)


def _probe(train_x, train_y, val_x, val_y, seed):
    """The logistic regression with the best validation accuracy over `C_GRID`."""
    scaler = StandardScaler().fit(train_x)
    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(scaler.transform(train_x), train_y)
        accuracy = float((model.predict(scaler.transform(val_x)) == val_y).mean()) if len(val_y) else 0.0
        if best is None or accuracy > best[0]:
            best = (accuracy, c, model)
    return scaler, best


def probe(cfg: CrossModalConfig, run_dir: Path) -> dict:
    """Fit and test one probe per experiment of the protocol; returns the results dict."""
    cfg = cfg.replace(model="frozen")
    table = load_table(cfg)
    class_names, modalities = table.attrs["class_names"], table.attrs["modalities"]
    extractor = build_extractor(cfg)
    size = (cfg.image_size, cfg.image_size)
    cache = run_dir.parent / "feature_cache"
    features = cached_features(extractor, table["path"], size, cache, cfg.backbone, cfg.weights, cfg.batch_size)
    pooled = features.mean(axis=(1, 2)) if features.ndim == 4 else features
    row_of = {path: i for i, path in enumerate(table["path"])}

    def xy(rows):
        return pooled[[row_of[p] for p in rows["path"]]], labels_of(rows)

    results = {}
    for k, part in enumerate(partitions(cfg, table)):
        for name, train_modalities in experiments(cfg, modalities):
            train = part["train"][part["train"]["modality"].isin(train_modalities)]
            val = part["val"][part["val"]["modality"].isin(train_modalities)]
            scaler, (val_accuracy, c, model) = _probe(*xy(train), *xy(val), cfg.seed)
            tested = test_rows(table, part["test"], train_modalities)
            row = {"C": c, "val_accuracy": val_accuracy}
            for modality in modalities:
                rows = tested[tested["modality"] == modality]
                if len(rows):
                    x, y = xy(rows)
                    row[modality] = {"accuracy": float((model.predict(scaler.transform(x)) == y).mean()),
                                     "images": len(rows)}
            x, y = xy(tested)
            row["all"] = {"accuracy": float((model.predict(scaler.transform(x)) == y).mean()), "images": len(tested)}
            results.setdefault(name, []).append(row)
    summary = {name: {col: float(np.mean([r[col]["accuracy"] for r in rows]))
                      for col in [*modalities, "all"] if col in rows[0]} for name, rows in results.items()}
    return {"config": {"backbone": cfg.backbone, "weights": cfg.weights, "image_size": cfg.image_size,
                       "protocol": cfg.protocol, "split": cfg.split, "folds": cfg.folds, "seed": cfg.seed},
            "class_names": class_names, "rows": results, "test": summary}


def markdown(results: dict, modalities) -> str:
    cfg = results["config"]
    lines = [f"Test accuracy, linear probe on frozen {cfg['backbone']} ({cfg['weights']}) features, "
             f"protocol {cfg['protocol']}", "", "| trained on \\ tested on | " + " | ".join(modalities) + " | all |",
             "|---" * (len(modalities) + 2) + "|"]
    for name, row in results["test"].items():
        cells = [f"{row[m]:.3f}" if m in row else "-" for m in [*modalities, "all"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    cfg = parse_config(CrossModalConfig, argv, parser=linear_probe_parser())
    setup_logging(cfg.quiet)
    run_dir = Path(cfg.run_dir or Path("runs") / "cross_modal_linear_probe" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    run_dir.mkdir(parents=True, exist_ok=True)
    results = probe(cfg, run_dir)
    modalities = [m for m in next(iter(results["rows"].values()))[0] if m not in ("C", "val_accuracy", "all")]
    table = markdown(results, modalities)
    (run_dir / "linear_probe.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    (run_dir / "linear_probe.md").write_text(table + "\n")
    print(table)
    print(f"written to {run_dir}")
    return results


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
