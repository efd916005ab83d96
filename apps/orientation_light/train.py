"""Train a face orientation or light-source classifier (from scratch, or transfer with a frozen base).

    hybridvision orientation_light train --task orientation --data-dir data/orientation
    hybridvision orientation_light train --task light --data-dir ../shared/data/faces_orient_light/source_light \\
        --holdout-fraction 0.5
    hybridvision orientation_light train --model resnet50 --weights imagenet --image-size 128 \\
        --finetune-layers 10 --finetune-epochs 5 --data-dir data/orientation

Data: `<data-dir>/{train,val,test}/<class>/*.jpg`, class names from the
folders. Besides the shared run directory (see `hybridvision.common.run`) it writes
`confusion_<split>.png`, per-class precision/recall in metrics.json, and
`<model>.classes.json` beside model.keras and the exported model, which
`hybridvision orientation_light predict` reads.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hybridvision.apps.orientation_light.config import OrientationLightConfig, train_parser
from hybridvision.apps.orientation_light.data import load_tables, make_datasets
from hybridvision.apps.orientation_light.models import build_model, compile_model, prepare_finetuning
from hybridvision.common.config import parse_config
from hybridvision.common.distribute import Distribution
from hybridvision.common.metrics import classification_summary, predict_labels
from hybridvision.common.plots import plot_confusion_matrix
from hybridvision.common.predict import write_class_names
from hybridvision.common.run import Run, refuse_unexported, setup_logging

APP = "orientation_light"
log = logging.getLogger("hybridvision")


def class_report(model, datasets: dict, class_names, out_dir: Path) -> dict:
    """Confusion matrix (also as confusion_<split>.png) and per-class precision/recall per split."""
    report = {}
    for split, ds in datasets.items():
        if ds is None:
            continue
        y_true, probabilities = predict_labels(model, ds)
        report[split] = classification_summary(y_true, probabilities, class_names)
        plot_confusion_matrix(report[split]["confusion_matrix"], class_names, out_dir / f"confusion_{split}.png",
                              title=f"{split}: confusion matrix")
    return report


def train(cfg: OrientationLightConfig) -> dict:
    """One run: fit (and fine-tune), evaluate on val and test, write the run directory; returns metrics."""
    tables, class_names, note = load_tables(cfg)
    dist = Distribution.from_config(cfg)
    run = Run(APP, cfg)
    if note:
        run.note("test_split", note)
    if cfg.model != "from_scratch" and cfg.weights == "none":
        run.note("weights", "random initialisation (--weights none): not transfer learning")
    run.note("class_names", class_names)
    datasets = make_datasets(cfg, tables, class_names, dist.global_batch_size(cfg.batch_size))
    learning_rate = dist.learning_rate(cfg.learning_rate)
    with dist.scope():
        model = compile_model(build_model(cfg, len(class_names)), cfg, learning_rate)
    run.fit(model, datasets["train"], datasets["val"], monitor=cfg.monitor)
    phase = "main"
    if cfg.finetune_layers:
        with dist.scope():
            prepare_finetuning(model, cfg, learning_rate)
        phase = "finetune"
        run.fit(model, datasets["train"], datasets["val"], epochs=cfg.finetune_epochs, monitor=cfg.monitor, phase=phase)
    evaluated = {"val": datasets["val"], "test": datasets["test"]}

    def report(final_model, run_dir, _results):
        # model.classes.json travels with the exported model (predict.py reads it).
        write_class_names(run_dir / "model.keras", class_names, app="orientation_light", task=cfg.task, model=cfg.model)
        return class_report(final_model, evaluated, class_names, run_dir)

    card = {"task": f"{cfg.task}: one of {len(class_names)} classes (softmax)", "class_names": list(class_names)}
    # Exported only when it beats always answering the most common val class.
    floor = {"val": {"accuracy": float(tables["val"]["label"].value_counts(normalize=True).max())}}
    _, metrics = run.finish(model, evaluated, final="best", phase=phase, report=report, card=card, floor=floor)
    return metrics


def main(argv=None) -> dict:
    cfg = parse_config(OrientationLightConfig, argv, parser=train_parser())
    setup_logging(cfg.quiet)
    metrics = train(cfg)
    split = "test" if "test" in metrics else "val"
    text = ", ".join(f"{s} accuracy {metrics[s]['accuracy']:.4f}" for s in ("test", "val") if s in metrics)
    recall = ", ".join(f"{name} {v['recall']:.2f}" for name, v in metrics[split]["per_class"].items())
    print(f"orientation_light {cfg.task} {cfg.model}: {text} ({split} recall: {recall})")
    return refuse_unexported(metrics)


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
