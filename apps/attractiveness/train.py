"""Train one classifier of images with covariates: baseline, late fusion, hybrid (ShortFuse), FiLM or CondConv.

    hybridvision attractiveness train --data-dir data/celeba --model hybrid --covariates Male
    hybridvision attractiveness train --labels lesions/labels.csv --target malignant --covariates age,sex,site
    hybridvision attractiveness train --data-dir ../shared/data/celeba_sample --backbone small \\
        --weights none --image-size 64 --epochs 8 --cache --model baseline --seeds 0,1,2

The data is CelebA's layout or a table of images and columns
(`hybridvision.common.data.image_table`); both feed one pipeline: the
covariates are coded inside the model (`hybridvision.common.covariate_coding`)
with the training split's statistics, so the exported model takes raw values.
With `--seeds` the configuration runs once per seed in `<run_dir>/seed<k>`
(each resumable, `hybridvision.common.repeat`) and `summary.json` / `summary.csv` hold the mean, std and 95%
t-interval over the seeds.
"""

from __future__ import annotations

import numpy as np

from hybridvision.apps.attractiveness.config import AttractivenessConfig, train_parser
from hybridvision.apps.attractiveness.data import SPLITS, load_data, make_datasets
from hybridvision.apps.attractiveness.floor import covariate_floor
from hybridvision.apps.attractiveness.models import build_coded_model, compile_model
from hybridvision.common import repeat
from hybridvision.common.config import parse_config
from hybridvision.common.covariate_coding import fit_coding
from hybridvision.common.distribute import Distribution
from hybridvision.common.metrics import class_probabilities, classification_summary, label_scores, predict_labels
from hybridvision.common.run import Run, refuse_unexported, setup_logging

APP = "attractiveness"


def class_weights(labels, num_classes: int) -> dict:
    """`{class: n / (classes x count)}` from the training labels (scikit-learn's "balanced")."""
    counts = np.bincount(np.asarray(labels, int), minlength=num_classes)
    return {k: float(len(labels) / (num_classes * c)) if c else 0.0 for k, c in enumerate(counts)}


def report(class_names, datasets: dict):
    """Run.finish's report: per split, the label scores (balanced accuracy, ROC AUC), per-class recall, confusion."""

    def scores(model, run_dir, results):
        out = {}
        for split, dataset in datasets.items():
            y, p = predict_labels(model, dataset)
            summary = classification_summary(y, class_probabilities(p), class_names)
            out[split] = {**label_scores(y, p), "per_class": summary["per_class"],
                          "confusion_matrix": summary["confusion_matrix"]}
        return out

    return scores


def train_one(cfg: AttractivenessConfig, data=None, export_name: str | None = None, export: bool = True) -> dict:
    """One run (one seed): fit, evaluate on val and test, write the run directory; returns metrics.

    `data`: `load_data(cfg)`'s result (read when None), optionally with a fourth item: the covariate
    coding to use (the study's controls: coded with the true covariates' statistics). `export_name`,
    `export`: as for `hybridvision.common.run.Run` (the exported copy in `saved_models/`).
    """
    tables, note, table_data, *given = data or load_data(cfg)
    classes = list(table_data.class_names)
    num_classes = len(classes)
    covariates = [] if cfg.model == "baseline" else list(table_data.covariates)
    dist = Distribution.from_config(cfg)
    # Run seeds every RNG, so one seed gives one initialisation for every model kind.
    run = Run(APP, cfg, export_name=export_name, export=export)
    if note:
        run.note("fallback_split", note)
    coding = given[0] if given else None
    if coding is None and table_data.covariates:
        coding = fit_coding(tables["train"], table_data.covariates, table_data.kinds)
    model_coding = coding if covariates else None
    datasets = make_datasets(cfg, tables, model_coding, num_classes, dist.global_batch_size(cfg.batch_size))
    with dist.scope():
        model = compile_model(build_coded_model(cfg, model_coding, num_classes), cfg,
                              dist.learning_rate(cfg.learning_rate), num_classes)
    fit_kwargs = {}
    if cfg.class_weight == "balanced":
        fit_kwargs["class_weight"] = class_weights(tables["train"]["label"], num_classes)
    run.fit(model, datasets["train"], datasets["val"], monitor=cfg.monitor, **fit_kwargs)
    floor = covariate_floor(tables, coding, num_classes)
    # What the model must beat to be exported: the covariates alone for a model that takes them, the
    # majority class for the image-only baseline (its keys as the model's metrics: auc, not roc_auc).
    beat = floor if model_coding else covariate_floor(tables, None, num_classes)
    guard = {split: {"auc" if k == "roc_auc" else k: v for k, v in scores.items()} for split, scores in beat.items()}
    binary = num_classes == 2
    card = {
        "task": (f"binary: the probability of {table_data.target} = {classes[1]} (one sigmoid output)" if binary else
                 f"{num_classes} classes of {table_data.target} (softmax)"),
        "target": table_data.target,
        "class_names": classes,
        "covariates": covariates,
        "covariate_coding": model_coding.describe() if model_coding else "",
        "covariate_columns": model_coding.columns if model_coding else [],
        "image_column": cfg.image_column if cfg.table_file() is not None else "file",
    }
    evaluated = {s: datasets[s] for s in SPLITS}
    _, metrics = run.finish(model, evaluated, final="best", metrics={"covariate_floor": floor}, card=card,
                            report=report(classes, evaluated), floor=guard)
    return metrics


def run_seeds(cfg: AttractivenessConfig, data=None, same_settings: bool = True, export: bool = True) -> dict:
    """The config once per `cfg.seeds`, summarised (`hybridvision.common.repeat.run_seeds`); returns metrics.json.

    With `same_settings` a seed folder run with other settings is refused; the seed list may
    change (adding seeds extends the run). Each seed's model is exported as
    `saved_models/attractiveness/<run_dir name>_seed<k>.keras` (not with `export=False`).
    """
    loaded = data  # read at the first seed that trains: a finished run is read back without the data

    def train(seed_cfg, export_name):
        nonlocal loaded
        loaded = loaded or load_data(cfg)
        return train_one(seed_cfg, loaded, export_name=export_name, export=export)

    return repeat.run_seeds(APP, cfg, train, splits=SPLITS, same_settings=same_settings, carry=("covariate_floor",))


def summary_line(cfg, metrics) -> str:
    """`attractiveness hybrid: test accuracy ..., balanced accuracy ..., ROC AUC ..., macro F1 ... (floor: ...)`."""
    test, floor = metrics["test"], metrics["covariate_floor"]["test"]
    spread = ""
    if cfg.seeds:
        spread = f" +- {metrics['std']['test']['accuracy']:.4f} over seeds {','.join(map(str, cfg.seeds))}"

    def shown(scores, key):
        value = scores.get(key, float("nan"))
        return "n/a" if value is None or value != value else f"{value:.4f}"

    return (f"attractiveness {cfg.model}: test accuracy {test['accuracy']:.4f}{spread}, balanced accuracy "
            f"{shown(test, 'balanced_accuracy')}, ROC AUC {shown(test, 'roc_auc')}, macro F1 {test['f1_macro']:.4f} "
            f"(covariates-only floor: accuracy {floor['accuracy']:.4f}, ROC AUC {shown(floor, 'roc_auc')})")


def main(argv=None) -> dict:
    cfg = parse_config(AttractivenessConfig, argv, parser=train_parser())
    setup_logging(cfg.quiet)
    metrics = run_seeds(cfg) if cfg.seeds else train_one(cfg)
    print(summary_line(cfg, metrics))
    return refuse_unexported(metrics)


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
