"""Train one digit-pair model.

    hybridvision digit_pairs train --model aux --data-dir ../shared/data/mnist
    hybridvision digit_pairs train --model cnn --epochs 20        # SYNTHETIC demo digits

Writes a run directory (see `hybridvision.common.run.Run`) whose metrics.json holds
train/val/test `accuracy` of the comparison (for the aux models also the
digit-class accuracies `digit_a_accuracy`, `digit_b_accuracy`).
"""

from __future__ import annotations

import logging

from hybridvision.apps.digit_pairs.config import DigitPairsConfig, train_parser
from hybridvision.apps.digit_pairs.data import load_pair_splits, make_dataset
from hybridvision.apps.digit_pairs.models import accuracy_key, build_model, compile_model, has_aux
from hybridvision.common.config import parse_config
from hybridvision.common.data import demo
from hybridvision.common.distribute import Distribution
from hybridvision.common.run import Run, refuse_unexported, setup_logging

APP = "digit_pairs"
log = logging.getLogger("hybridvision")


def run_experiment(cfg: DigitPairsConfig, saved_models_dir="saved_models", export_name: str | None = None) -> dict:
    """Trains `cfg.model` on pairs built from `cfg.data_dir` and returns metrics.json's content."""
    setup_logging(cfg.quiet)
    data_dir = demo.data_root(cfg.data_dir, "mnist")
    splits, notes = load_pair_splits(data_dir, cfg.pairs, cfg.val_fraction, cfg.seed, cfg.image_size)
    dist = Distribution.from_config(cfg)
    run = Run(APP, cfg, export_name=export_name, saved_models_dir=saved_models_dir)
    if cfg.data_dir is None:
        run.note("data", "SYNTHETIC demo digits (scikit-learn load_digits upsampled), not MNIST")
    for key, value in notes.items():
        run.note(key, value)

    with dist.scope():
        model = build_model(cfg.model, cfg.image_size, cfg.dropout)
        steps_per_epoch = -(-len(splits["train"]) // dist.global_batch_size(cfg.batch_size))
        warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
        compile_model(model, cfg.model, dist.learning_rate(cfg.learning_rate), cfg.aux_weight, warmup_steps)
    log.info("model %s: %d parameters", cfg.model, model.count_params())
    aux = has_aux(cfg.model)
    batch = dist.global_batch_size(cfg.batch_size)
    train_ds = make_dataset(splits["train"], aux, batch, shuffle=True, seed=cfg.seed, shift=cfg.shift)
    # Evaluation sets are never shuffled or shifted; "train" gives the report's train accuracy.
    evals = {name: make_dataset(pairs, aux, batch) for name, pairs in splits.items()}

    key = accuracy_key(cfg.model)
    run.fit(model, train_ds, evals["val"], monitor=f"val_{key}")

    def same_name(_model, _run_dir, results):
        # Multi-output models name it compare_accuracy; every model reports `accuracy`.
        return {split: {"accuracy": values[key]} for split, values in results.items()}

    card = {
        "task": "compare two handwritten digits: softmax over first > second, first <= second"
                + (" (and each digit's class, outputs digit_a, digit_b)" if aux else ""),
        "class_names": ["first > second", "first <= second"],
        "preprocessing": "none inside the model: give the pair as one (height, width, 2) image, channel 0 the first "
                         "digit, channel 1 the second, grayscale 0..1 (white digit on black); any height and width "
                         f"is resized (bilinear) to {cfg.image_size}x{cfg.image_size}",
    }
    ones = float(splits["val"].target.mean())  # exported only when it beats always giving the commoner answer
    _, metrics = run.finish(model, evals, final="best", report=same_name, card=card,
                            floor={"val": {key: max(ones, 1 - ones)}})
    print(
        f"digit_pairs {cfg.model}: test accuracy {metrics['test']['accuracy']:.3f} "
        f"(train {metrics['train']['accuracy']:.3f}, val {metrics['val']['accuracy']:.3f}); run dir {run.dir}",
        flush=True,
    )
    return metrics


def main(argv=None) -> dict:
    cfg = parse_config(DigitPairsConfig, argv, parser=train_parser())
    return refuse_unexported(run_experiment(cfg))


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
