"""Train the VOC multi-label classifier with a patch pre-training curriculum.

    hybridvision patch_training train --data-dir VOCdevkit/VOC2012 --switch-epoch 5
    hybridvision patch_training train --backbone small --image-size 64 --epochs 6 --switch-epoch 2
    hybridvision patch_training train --data-dir VOC2012 --patch-shape keep --patch-pooling spp

Epochs before `--switch-epoch` train the patch head on object crops
(PatchSet), the rest the multi-label head on full images (FullSet); 0 is
the baseline. `--patch-shape square` resizes every crop to the
`--image-size` square; `keep` keeps its aspect ratio and size (longest side
at most `--image-size`, sides rounded to `--patch-bucket`) and batches crops
of one size bucket together through the fully convolutional backbone and
the pooling. metrics.json's `val` holds micro precision/recall, the summed
tp/fp/fn/tn, per-class AP, precision, recall and chance AP, mAP and
`chance_map` (random scores' mAP on the same labels); `train_seconds` the
time spent in fit, `patch_phase` the patch phase's speed and accuracy. The
run directory also gets `per_class.md` and `per_class.png` (per-class
precision / recall / AP bars).
"""

from __future__ import annotations

import json
import logging
import time

from hybridvision.apps.patch_training.config import PatchTrainingConfig, train_parser
from hybridvision.apps.patch_training.metrics import (
    f1_thresholds,
    multilabel_report,
    predict_multilabel,
    write_per_class_report,
)
from hybridvision.apps.patch_training.models import build_models, compile_models
from hybridvision.common.config import parse_config
from hybridvision.common.data import demo
from hybridvision.common.data.voc import (
    VOC_CLASSES,
    bucketed_patch_dataset,
    cache_patches,
    full_dataset,
    label_matrix,
    patch_dataset,
    patch_sizes,
    patch_table,
    positive_weights,
    read_train_val,
)  # fmt: skip
from hybridvision.common.distribute import Distribution
from hybridvision.common.history import read_history
from hybridvision.common.run import Run, refuse_unexported, setup_logging

APP = "patch_training"
log = logging.getLogger("hybridvision")


def load_data(cfg):
    """`({"train": (images, boxes), "val": ...}, notes)` of `cfg.data_dir` (or the demo data)."""
    root, notes = demo.data_root(cfg.data_dir, "voc"), {}
    if not cfg.data_dir:
        notes["data"] = "SYNTHETIC demo VOC data (drawn glyphs), not Pascal VOC"
    splits, note = read_train_val(root, cfg.val_fraction, cfg.seed, cfg.on_bad_annotation, cfg.exclude_difficult)
    if note:
        notes["fallback_split"] = note
    for split, (images, _) in splits.items():
        if images.attrs.get("problems"):
            notes[f"skipped_annotations_{split}"] = len(images.attrs["problems"])
    return splits, notes


def timed_fit(run, model, train, val, phase, **kwargs) -> float | None:
    """`run.fit` one phase and return its seconds (kept in phase_seconds.json across resumes)."""
    path = run.dir / "phase_seconds.json"
    seconds = json.loads(path.read_text()) if path.exists() else {}
    done_before = run.phase_done(phase)
    start = time.perf_counter()
    run.fit(model, train, val, phase=phase, **kwargs)
    if not done_before:
        # A phase resumed after a crash counts only the epochs run in this invocation.
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start
        path.write_text(json.dumps(seconds, indent=2))
    return seconds.get(phase)


def patch_datasets(cfg, patches, batch):
    """`(train, val or None)` PatchSets of `cfg.patch_shape` (val is None without val patches)."""
    if cfg.patch_shape == "keep":
        def make(table, train):
            return bucketed_patch_dataset(table, cfg.image_size, batch, cfg.patch_bucket, shuffle=train, seed=cfg.seed,
                                          cache=cfg.cache, augment=train and cfg.augment)
    else:
        def make(table, train):
            return patch_dataset(table, cfg.image_size, batch, shuffle=train, seed=cfg.seed, cache=cfg.cache,
                                 augment=train and cfg.augment)
    return make(patches["train"], True), make(patches["val"], False) if len(patches["val"]) else None


def shape_summary(cfg, table) -> dict:
    """How the patches are sized: the buckets and the mean pixels per patch against the square."""
    if cfg.patch_shape == "square" or table.empty:
        return {"shape": cfg.patch_shape, "buckets": 1, "mean_pixels": float(cfg.image_size**2)}
    heights, widths = patch_sizes(table, cfg.image_size, cfg.patch_bucket)
    buckets = sorted({(int(h), int(w)) for h, w in zip(heights, widths)})
    return {
        "shape": "keep", "bucket_step": cfg.patch_bucket, "buckets": len(buckets),
        "mean_pixels": float((heights.astype("float64") * widths).mean()),
        "mean_aspect_w_over_h": float((widths / heights).mean()),
    }  # fmt: skip


def run_experiment(cfg: PatchTrainingConfig, data=None, export_name=None) -> dict:
    """One curriculum run; returns metrics.json's content.

    `data`: a `load_data` result to reuse; `export_name`: the model's name
    under saved_models/patch_training/ (default: the run directory's name).
    """
    setup_logging(cfg.quiet)
    splits, notes = data or load_data(cfg)
    dist = Distribution.from_config(cfg)
    run = Run(APP, cfg, export_name=export_name)  # seeds every RNG: every switch epoch starts from the same weights
    for key, value in notes.items():
        run.note(key, value)
    (train_images, train_boxes), (val_images, val_boxes) = splits["train"], splits["val"]
    size, batch = cfg.image_size, dist.global_batch_size(cfg.batch_size)
    pos_weight = positive_weights(label_matrix(train_images), cfg.max_pos_weight)
    with dist.scope():
        full_model, patch_model = build_models(
            cfg.backbone, size, cfg.weights, cfg.patch_pooling, cfg.patch_hidden, cfg.dropout, patch_shape=cfg.patch_shape
        )
        lr = dist.learning_rate(cfg.learning_rate)
        compile_models(full_model, patch_model, pos_weight, lr, cfg.optimizer, cfg.momentum, lr * cfg.patch_lr_factor)

    seconds, patch_phase = {}, None
    if cfg.switch_epoch > 0:
        patches = {s: cache_patches(patch_table(b, cfg.min_patch), cfg.patch_cache) for s, b in (("train", train_boxes), ("val", val_boxes))}
        log.info("patches of >= %d px: %d train, %d val", cfg.min_patch, len(patches["train"]), len(patches["val"]))
        train_p, val_p = patch_datasets(cfg, patches, batch)
        monitor = "val_accuracy" if val_p is not None else "accuracy"
        seconds["patches"] = timed_fit(run, patch_model, train_p, val_p, "patches", epochs=cfg.switch_epoch, monitor=monitor)
        run.note("patches", {"train": len(patches["train"]), "val": len(patches["val"]), "min_size": cfg.min_patch,
                             **shape_summary(cfg, patches["train"])})
        last = (read_history(run.history_path("patches")) or [{}])[-1]
        patch_phase = {
            "shape": cfg.patch_shape,
            "epoch_seconds": seconds["patches"] / cfg.switch_epoch if seconds["patches"] else None,
            # Train patches per second of the phase, its val-patch evaluation included.
            "patches_per_second": len(patches["train"]) * cfg.switch_epoch / seconds["patches"] if seconds["patches"] else None,
            "val_accuracy": last.get("val_accuracy"),
            "accuracy": last.get("accuracy"),
        }
    full_val = full_dataset(val_images, size, batch, cache=cfg.cache)
    if cfg.epochs > cfg.switch_epoch:
        full_train = full_dataset(train_images, size, batch, True, cfg.seed, cfg.cache, cfg.augment)
        seconds["full"] = timed_fit(run, full_model, full_train, full_val, "full", epochs=cfg.epochs - cfg.switch_epoch, monitor="val_pr_auc")
    else:
        run.note("full_phase", "--switch-epoch equals --epochs: the multi-label head was never trained")

    title = f"{cfg.backbone}, K={cfg.switch_epoch}/{cfg.epochs}, {cfg.patch_shape} patches"

    def report(final_model, run_dir, _results):
        val = multilabel_report(*predict_multilabel(final_model, full_val), VOC_CLASSES, cfg.threshold)
        write_per_class_report(val, run_dir, title)
        return {"val": val}

    extra = {
        "train_seconds": sum(s for s in seconds.values() if s is not None),
        "phase_seconds": seconds,
        "pos_weight": dict(zip(VOC_CLASSES, map(float, pos_weight))),
    }
    if patch_phase is not None:
        extra["patch_phase"] = patch_phase
    # The last epoch, not the best-by-val checkpoint: val is the only labelled
    # split here, so choosing on it would flatter the val figures.
    # `predict` labels with per-class thresholds chosen on the val split (best F1 per class); the
    # reported val figures keep the one --threshold, so the choice does not flatter them.
    thresholds = f1_thresholds(*predict_multilabel(full_model, full_val), default=cfg.threshold)
    card = {"task": f"multi-label: one sigmoid per VOC class (threshold {cfg.threshold} in the report)",
            "class_names": list(VOC_CLASSES),
            "thresholds": dict(zip(VOC_CLASSES, thresholds)),
            "thresholds_chosen_on": "the val split: per class, the score threshold with the best F1"}
    _, metrics = run.finish(full_model, {"val": full_val}, final="last", report=report, metrics=extra, card=card)
    val = metrics["val"]
    print(
        f"patch_training K={cfg.switch_epoch}/{cfg.epochs}: val mAP {val['map']:.3f} (random {val['chance_map']:.3f}), "
        f"precision {val['precision']:.3f}, recall {val['recall']:.3f}, train {metrics['train_seconds']:.0f}s; run dir {run.dir}",
        flush=True,
    )
    return metrics


def main(argv=None) -> dict:
    cfg = parse_config(PatchTrainingConfig, argv, parser=train_parser())
    return refuse_unexported(run_experiment(cfg))


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
