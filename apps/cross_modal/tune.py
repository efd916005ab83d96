"""Search cross_modal's learning rate, augmentation and frozen vs fine-tuned backbone, with early stopping.

    hybridvision cross_modal tune --data-dir ../shared/data/pacs_small --protocol from_source --source photo
    hybridvision cross_modal tune --data-dir data/pacs --learning-rates 1e-3 --models finetune --project aug
    hybridvision cross_modal train --config runs/cross_modal_tune/search/best_config.yaml --data-dir ...

Every trial is the train config with `learning_rate`, `model` (frozen or
finetune) and an augmentation preset replaced (`hybridvision.common.tuning`'s
`ConfigHyperModel`), trained like `train.py` trains one model: the head on
the frozen backbone (on cached features with `--cache-features`, as
train.py: no augmentation in that phase, so a frozen trial's augmentation
preset changes nothing), then for finetune the top layers unfrozen. Each
phase stops early when the val accuracy has not improved for `--patience`
epochs and keeps its best epoch's weights. A trial is scored by the val
accuracy of its final model on the training modalities' val split (the
protocol's first model: from_source, the first --source; leave_one_out, the
model without the first modality): model selection on the training domains
only, never on the domain a model is tested on. Written to
`<run-dir>/<project>/`: KerasTuner's trial folders, `trials.csv`,
`best_config.yaml` (a plain train config, for `train.py --config`) and
`search.md` / `search.csv` (per trial the settings, val accuracy, epochs
run per phase, seconds). Running the same command again resumes the search.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import keras
import keras_tuner

from hybridvision.apps.cross_modal.config import AUGMENTATIONS, CrossModalConfig, TuneConfig, tune_parser
from hybridvision.apps.cross_modal.data import experiments, labels_of, load_table, make_images, partitions
from hybridvision.apps.cross_modal.models import build_model, compile_model, prepare_finetuning
from hybridvision.common.config import parse_config
from hybridvision.common.features import cached_features
from hybridvision.common.run import seed_everything, setup_logging
from hybridvision.common.tables import write_table
from hybridvision.common.tuning import (
    ConfigHyperModel,
    choice,
    first_value,
    search,
    tensorboard_callbacks,
    trials_table,
)

log = logging.getLogger("hybridvision")
OBJECTIVE = keras_tuner.Objective("val_accuracy", direction="max")
COLUMNS = ["trial_id", "model", "learning_rate", "augmentation", "val_accuracy", "head_epochs", "finetune_epochs_run",
           "train_seconds"]


def preset_of(cfg) -> str | None:
    """The augmentation preset a config's fields match (None if none does)."""
    for name, fields in AUGMENTATIONS.items():
        if all(getattr(cfg, k) == v for k, v in fields.items()):
            return name
    return None


def train_config(cfg: TuneConfig) -> CrossModalConfig:
    """The plain train config of the search, its searched fields at the first value of each list."""
    names = {f.name for f in dataclasses.fields(CrossModalConfig)}
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k in names}
    values.update(run_dir=None, learning_rate=first_value(cfg.learning_rates), model=cfg.models[0],
                  **AUGMENTATIONS[cfg.augmentations[0]])
    return CrossModalConfig(**values)


class CrossModalHyperModel(ConfigHyperModel):
    """A trial trains one model of the protocol as train.py does, with early stopping, scored by val accuracy.

    The augmentation preset is a hyperparameter of its own (`augmentation`)
    that sets several config fields; `build_model(config)` returns
    `(model, extractor, head)`; `make_data(config)` returns the train and
    val tables with the class count and modalities.
    """

    def __init__(self, base_config, space, augmentations, build_model, make_data, patience, cache_dir):
        super().__init__(base_config, space, build_model, make_data)
        self.augmentations = list(augmentations)
        self.patience = patience
        self.cache_dir = Path(cache_dir)
        self._parts = {}

    def config_for(self, hp):
        cfg = super().config_for(hp)
        name = choice(hp, "augmentation", self.augmentations, preset_of(self.base_config) or self.augmentations[0])
        return cfg.replace(**AUGMENTATIONS[name])

    def build(self, hp):
        model, extractor, head = self.build_model(self.config_for(hp))
        self._parts[id(model)] = (extractor, head)
        return model

    def _stopper(self):
        return keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=self.patience,
                                             restore_best_weights=True)

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        cfg = self.config_for(hp)
        extractor, head = self._parts.pop(id(model))
        train, val, num_classes, modalities = self.make_data(cfg)
        verbose = 0 if cfg.quiet else "auto"

        def images():
            return (make_images(cfg, train, cfg.batch_size, True, modalities),
                    make_images(cfg, val, cfg.batch_size, False, modalities))

        start = time.perf_counter()
        head_stop = self._stopper()
        # A frozen trial has no later phase: its head phase writes the trial's TensorBoard logs and hparams.
        head_logs = tensorboard_callbacks(callbacks) if cfg.model == "frozen" else []
        if cfg.cache_features:
            size = (cfg.image_size, cfg.image_size)
            feats = [cached_features(extractor, t["path"], size, self.cache_dir, cfg.backbone, cfg.weights,
                                     cfg.batch_size) for t in (train, val)]
            compile_model(head, cfg, cfg.learning_rate, num_classes)
            history = head.fit(feats[0], labels_of(train), validation_data=(feats[1], labels_of(val)),
                               epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True,
                               callbacks=[head_stop, *head_logs], verbose=verbose)
        else:
            train_images, val_images = images()
            history = model.fit(train_images, validation_data=val_images, epochs=cfg.epochs,
                                callbacks=[head_stop, *head_logs], verbose=verbose)
        result = {"head_epochs": len(history.history["loss"]), "finetune_epochs_run": 0}
        if cfg.model == "finetune":
            prepare_finetuning(extractor, cfg)
            compile_model(model, cfg, cfg.learning_rate * cfg.finetune_learning_rate_factor, num_classes)
            # The tuner's own callbacks (trial bookkeeping) go with the last phase on the whole model.
            train_images, val_images = images()
            history = model.fit(train_images, validation_data=val_images, epochs=cfg.finetune_epochs,
                                callbacks=[self._stopper(), *(callbacks or [])], verbose=verbose)
            result["finetune_epochs_run"] = len(history.history["loss"])
        result["val_accuracy"] = float(model.evaluate(images()[1], verbose=0, return_dict=True)["accuracy"])
        result["train_seconds"] = time.perf_counter() - start
        log.info("trial %s lr %g %s: val accuracy %.3f after %d + %d epochs", cfg.model, cfg.learning_rate,
                 preset_of(cfg), result["val_accuracy"], result["head_epochs"], result["finetune_epochs_run"])
        return result


def search_rows(tuner) -> list[dict]:
    """One row per finished trial: its settings, val accuracy, epochs run per phase and seconds."""
    rows = [{k: row.get(k) for k in COLUMNS} for row in trials_table(tuner, metrics=COLUMNS[4:])]
    return sorted(rows, key=lambda r: -r["val_accuracy"])


def write_search(rows: list[dict], out_dir, title: str) -> Path:
    """`search.csv` and `search.md` in `out_dir` (best trial first); returns the .md path."""
    shown = [{**r, "finetune_epochs_run": None if r["model"] == "frozen" else r["finetune_epochs_run"]} for r in rows]
    _, md_path = write_table(
        shown, Path(out_dir) / "search", columns=COLUMNS, shown=COLUMNS[1:], title=f"cross_modal search: {title}",
        headers={"learning_rate": "learning rate", "val_accuracy": "val accuracy", "head_epochs": "head epochs",
                 "finetune_epochs_run": "fine-tune epochs", "train_seconds": "train s"},
        formats={"learning_rate": "{:g}", "head_epochs": "{:.0f}", "finetune_epochs_run": "{:.0f}",
                 "train_seconds": "{:.0f}"},
        notes=["Val accuracy: the trial's final model (each phase early-stopped at its best epoch) on the val "
               "split of its training modalities."])
    return md_path


def main(argv=None):
    """Run or resume the search; returns (best train config, path of its YAML file, search rows)."""
    cfg = parse_config(TuneConfig, argv, parser=tune_parser())
    setup_logging(cfg.quiet)
    for name in ("learning_rates", "augmentations", "models"):
        if not getattr(cfg, name):
            raise ValueError(f"--{name.replace('_', '-')} is empty; give at least one value")
    base = train_config(cfg)
    table = load_table(base)
    class_names, modalities = table.attrs["class_names"], table.attrs["modalities"]
    row_name, train_modalities = experiments(base, modalities)[0]
    part = partitions(base, table)[0]
    train, val = (part[s][part[s]["modality"].isin(train_modalities)] for s in ("train", "val"))
    log.info("searching on the model '%s' (trained on %s): %d train, %d val images", row_name,
             ",".join(train_modalities), len(train), len(val))

    def build(trial_cfg):
        seed_everything(trial_cfg)  # one initialisation for every trial
        model, extractor, head = build_model(trial_cfg, len(class_names), modalities)
        compile_model(model, trial_cfg, trial_cfg.learning_rate, len(class_names))
        return model, extractor, head

    def make_data(trial_cfg):
        return train, val, len(class_names), modalities

    out_dir = Path(cfg.run_dir) / cfg.project
    best_path = Path(cfg.best_config) if cfg.best_config else out_dir / "best_config.yaml"
    space = {"learning_rate": cfg.learning_rates, "model": list(cfg.models)}  # learning rates: a list or a range
    hypermodel = CrossModalHyperModel(base, space, cfg.augmentations, build, make_data, cfg.patience,
                                      Path(cfg.run_dir) / "feature_cache")
    best, tuner = search(hypermodel, cfg.tuner, OBJECTIVE, cfg.run_dir, cfg.project, max_trials=cfg.max_trials,
                         seed=cfg.seed, best_config_path=best_path)
    if best is None:  # a worker of a distributed search: the chief reports
        return None, best_path, []
    rows = search_rows(tuner)
    title = (f"{base.backbone}, {base.image_size} px, protocol {base.protocol}, model '{row_name}', "
             f"data {base.data_dir or 'SYNTHETIC demo'}")
    print(write_search(rows, out_dir, title).read_text(), flush=True)
    print(f"cross_modal tune ({cfg.tuner}): best val accuracy {rows[0]['val_accuracy']:.3f} with {best.model}, "
          f"learning rate {best.learning_rate:g}, augmentation {preset_of(best)}; config in {best_path} "
          f"(train with --config {best_path})", flush=True)
    return best, best_path, rows


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
