"""The report's ablations (learning rate, batch size) of the patch curriculum, through the shared KerasTuner helpers.

    hybridvision patch_training tune --data-dir VOCdevkit/VOC2012                      # 3 x 3 grid
    hybridvision patch_training tune --data-dir VOC2012 --batch-sizes 16 --project lr  # learning rate only
    hybridvision patch_training train --config runs/patch_training_tune/ablation/best_config.yaml

Every trial is the train config with `learning_rate` and `batch_size`
replaced (`hybridvision.common.tuning.ConfigHyperModel`): the whole curriculum (patch
phase for `--switch-epoch` epochs, then full images) from the same seeded
weights, scored by the val mAP of `metrics.multilabel_report` (`val_map`,
the figure `train.py` reports). A grid search (the default) runs every
combination once, its first trial the config's own setting. Written to
`<run-dir>/<project>/`: KerasTuner's trial folders, `trials.csv`,
`best_config.yaml` (for `train.py --config`), and `ablation.csv` /
`ablation.md`: per trial the learning rate, batch size, val mAP, chance mAP,
micro precision / recall and the training time (patch phase, full phase,
total seconds). Running the same command again resumes the search:
finished trials are not redone.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import keras_tuner

from hybridvision.apps.patch_training.config import PatchTrainingConfig, TuneConfig, tune_parser
from hybridvision.apps.patch_training.metrics import multilabel_report, predict_multilabel
from hybridvision.apps.patch_training.models import build_models, compile_models
from hybridvision.apps.patch_training.train import load_data, patch_datasets
from hybridvision.common.config import parse_config
from hybridvision.common.data.voc import (
    VOC_CLASSES,
    cache_patches,
    full_dataset,
    label_matrix,
    patch_table,
    positive_weights,
)
from hybridvision.common.run import seed_everything, setup_logging
from hybridvision.common.tables import write_table
from hybridvision.common.tuning import ConfigHyperModel, search, trials_table

log = logging.getLogger("hybridvision")
OBJECTIVE = keras_tuner.Objective("val_map", direction="max")
ABLATION_COLUMNS = [
    "trial_id", "learning_rate", "batch_size", "val_map", "chance_map", "precision", "recall",
    "patch_seconds", "full_seconds", "train_seconds",
]  # fmt: skip


def search_space(cfg: TuneConfig) -> dict:
    """`{train config field: values}` of the ablation."""
    space = {"learning_rate": cfg.learning_rates, "batch_size": list(cfg.batch_sizes)}  # a list or a range
    for name, values in space.items():
        if not values:
            raise ValueError(f"--{name.replace('_', '-')}s is empty; give at least one value")
    return space


def train_config(cfg: TuneConfig) -> PatchTrainingConfig:
    """The plain train config of the search (what `train.py --config` reads), automatic values filled in."""
    names = {f.name for f in dataclasses.fields(PatchTrainingConfig)}
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k in names}
    return PatchTrainingConfig(**{**values, "run_dir": None})


class CurriculumHyperModel(ConfigHyperModel):
    """A trial trains the two-phase curriculum and is scored by the val mAP.

    `build_model(config)` returns `(full_model, patch_model)`; the tuner
    sees the full model (its weights are what a trial keeps), the patch model
    is held until the trial's `fit`. `make_data(config)` returns
    `{"patch_train", "patch_val", "full_train", "full_val"}`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._patch_models = {}

    def build(self, hp):
        full_model, patch_model = self.build_model(self.config_for(hp))
        self._patch_models[id(full_model)] = patch_model
        return full_model

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        cfg = self.config_for(hp)
        patch_model = self._patch_models.pop(id(model))
        data = self.make_data(cfg)
        verbose = 0 if cfg.quiet else "auto"
        seconds = {"patches": 0.0, "full": 0.0}
        if cfg.switch_epoch > 0:
            start = time.perf_counter()
            patch_model.fit(data["patch_train"], validation_data=data["patch_val"], epochs=cfg.switch_epoch,
                            verbose=verbose, shuffle=False)
            seconds["patches"] = time.perf_counter() - start
        if cfg.epochs > cfg.switch_epoch:
            start = time.perf_counter()
            # The tuner's callbacks (trial bookkeeping, weights per epoch) go with the last phase.
            model.fit(data["full_train"], validation_data=data["full_val"], epochs=cfg.epochs - cfg.switch_epoch,
                      callbacks=callbacks, verbose=verbose, shuffle=False)
            seconds["full"] = time.perf_counter() - start
        report = multilabel_report(*predict_multilabel(model, data["full_val"]), VOC_CLASSES, cfg.threshold)
        result = {
            "val_map": report["map"], "chance_map": report["chance_map"],
            "precision": report["precision"], "recall": report["recall"],
            "patch_seconds": seconds["patches"], "full_seconds": seconds["full"], "train_seconds": sum(seconds.values()),
        }  # fmt: skip
        log.info("trial lr %g batch %d: val mAP %.3f (chance %.3f), %.0f s", cfg.learning_rate, cfg.batch_size,
                 result["val_map"], result["chance_map"], result["train_seconds"])
        return result


def ablation_rows(tuner) -> list[dict]:
    """One row per finished trial: its settings, val mAP, chance mAP, precision, recall and seconds."""
    rows = [{k: row.get(k) for k in ABLATION_COLUMNS} for row in trials_table(tuner, metrics=ABLATION_COLUMNS[3:])]
    return sorted(rows, key=lambda r: (r["learning_rate"], r["batch_size"]))


def write_ablation(rows: list[dict], out_dir, title: str = "") -> Path:
    """`ablation.csv` and `ablation.md` in `out_dir`; returns the .md path."""
    headers = {"learning_rate": "learning rate", "batch_size": "batch", "val_map": "val mAP", "chance_map": "chance mAP",
               "patch_seconds": "patch s", "full_seconds": "full s", "train_seconds": "train s"}
    seconds = ("patch_seconds", "full_seconds", "train_seconds")
    _, path = write_table(rows, Path(out_dir) / "ablation", columns=ABLATION_COLUMNS, shown=ABLATION_COLUMNS[1:],
                          title=f"Patch curriculum ablation: {title}", headers=headers,
                          formats={"learning_rate": "{:g}", **{k: "{:.0f}" for k in seconds}},
                          notes=["Every trial: the same seeded start, the whole curriculum; seconds are time in fit "
                                 "(validation included)."])
    return path


def main(argv=None):
    """Run or resume the search; returns (best train config, path of its YAML file, ablation rows)."""
    cfg = parse_config(TuneConfig, argv, parser=tune_parser())
    setup_logging(cfg.quiet)
    space = search_space(cfg)
    base = train_config(cfg)
    splits, _ = load_data(base)
    (train_images, train_boxes), (val_images, val_boxes) = splits["train"], splits["val"]
    pos_weight = positive_weights(label_matrix(train_images), base.max_pos_weight)
    patches = None
    if base.switch_epoch > 0:
        patches = {s: cache_patches(patch_table(b, base.min_patch), base.patch_cache) for s, b in (("train", train_boxes), ("val", val_boxes))}

    def build(trial_cfg):
        # One initialisation for every trial: differences come from the settings.
        seed_everything(trial_cfg)
        full_model, patch_model = build_models(
            trial_cfg.backbone, trial_cfg.image_size, trial_cfg.weights, trial_cfg.patch_pooling, trial_cfg.patch_hidden,
            trial_cfg.dropout, patch_shape=trial_cfg.patch_shape,
        )  # fmt: skip
        compile_models(full_model, patch_model, pos_weight, trial_cfg.learning_rate, trial_cfg.optimizer, trial_cfg.momentum,
                       trial_cfg.learning_rate * trial_cfg.patch_lr_factor)
        return full_model, patch_model

    def make_data(trial_cfg):
        size, batch = trial_cfg.image_size, trial_cfg.batch_size
        data = {
            "full_train": full_dataset(train_images, size, batch, True, trial_cfg.seed, trial_cfg.cache, trial_cfg.augment),
            "full_val": full_dataset(val_images, size, batch, cache=trial_cfg.cache),
        }
        if patches is not None:
            data["patch_train"], data["patch_val"] = patch_datasets(trial_cfg, patches, batch)
        return data

    out_dir = Path(cfg.run_dir) / cfg.project
    best_path = Path(cfg.best_config) if cfg.best_config else out_dir / "best_config.yaml"
    hypermodel = CurriculumHyperModel(base, space, build, make_data)
    best, tuner = search(hypermodel, cfg.tuner, OBJECTIVE, cfg.run_dir, cfg.project, max_trials=cfg.max_trials,
                         seed=cfg.seed, best_config_path=best_path)
    if best is None:  # a worker of a distributed search: the chief reports
        return None, best_path, []
    rows = ablation_rows(tuner)
    title = (f"{base.backbone}, {base.image_size} px, K={base.switch_epoch}/{base.epochs}, {base.patch_shape} patches, "
             f"data {base.data_dir or 'SYNTHETIC demo'}")
    table = write_ablation(rows, out_dir, title)
    print(table.read_text(), flush=True)
    trial = tuner.oracle.get_best_trials(1)[0]
    print(f"patch_training tune ({cfg.tuner}): best val mAP {trial.score:.3f} with learning rate {best.learning_rate:g}, "
          f"batch {best.batch_size}; config in {best_path} (train with --config {best_path})", flush=True)
    return best, best_path, rows


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
