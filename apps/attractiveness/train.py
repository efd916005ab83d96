"""Train one CelebA attribute classifier: baseline, hybrid (ShortFuse) or late fusion.

    hybridvision attractiveness train --data-dir data/celeba --model hybrid --covariates Male
    hybridvision attractiveness train --data-dir ../shared/data/celeba_sample --backbone small \\
        --weights none --image-size 64 --epochs 8 --cache --model baseline --seeds 0,1,2

With `--seeds` the configuration runs once per seed in `<run_dir>/seed<k>`
(each resumable, `hybridvision.common.repeat`) and `summary.json` / `summary.csv` hold the mean, std and 95%
t-interval over the seeds.
"""

from __future__ import annotations

import keras

from hybridvision.apps.attractiveness.config import AttractivenessConfig, train_parser
from hybridvision.apps.attractiveness.floor import covariate_floor
from hybridvision.apps.attractiveness.models import build_model, compile_model
from hybridvision.common import repeat
from hybridvision.common.config import parse_config
from hybridvision.common.data import demo
from hybridvision.common.data.celeba import (
    attribute_names,
    check_attributes,
    make_dataset,
    read_celeba,
    split_partitions,
)
from hybridvision.common.distribute import Distribution
from hybridvision.common.run import Run, setup_logging

APP = "attractiveness"
SPLITS = ("val", "test")


def load_tables(cfg):
    """`({"train", "val", "test"} tables, fallback-split note or None)` for the config's data."""
    root = demo.data_root(cfg.data_dir, "celeba")
    table = read_celeba(root)
    valid = attribute_names(table)
    check_attributes([cfg.target], valid, flag="--target")
    check_attributes(cfg.covariates, valid)
    if cfg.target in cfg.covariates:
        raise ValueError(f"--covariates holds the target {cfg.target}; leave it out (the task would be trivial)")
    return split_partitions(table, cfg.split_seed, cfg.val_fraction, cfg.test_fraction)


def make_datasets(cfg, tables, batch_size) -> dict:
    """tf.data per split of raw 0..255 images (the model preprocesses them); the baseline gets images only,
    the fusion models images and covariates."""
    covariates = None if cfg.model == "baseline" else cfg.covariates
    augment = cfg.affine_augmentation(horizontal_flip=cfg.flip)
    if augment is None and cfg.flip:
        augment = keras.layers.RandomFlip("horizontal", seed=cfg.seed)
    return {
        split: make_dataset(
            tables[split], cfg.target, covariates, (cfg.image_size, cfg.image_size), batch_size,
            shuffle=split == "train", seed=cfg.seed, cache=cfg.cache, augment=augment if split == "train" else None,
        )
        for split in ("train", *SPLITS)
    }


def train_one(cfg: AttractivenessConfig, data=None, export_name: str | None = None, export: bool = True) -> dict:
    """One run (one seed): fit, evaluate on val and test, write the run directory; returns metrics.

    `export_name`, `export`: as for `hybridvision.common.run.Run` (the exported copy in `saved_models/`).
    """
    tables, note = data or load_tables(cfg)
    dist = Distribution.from_config(cfg)
    # Run seeds every RNG, so one seed gives one initialisation for every model kind.
    run = Run(APP, cfg, export_name=export_name, export=export)
    if note:
        run.note("fallback_split", note)
    datasets = make_datasets(cfg, tables, dist.global_batch_size(cfg.batch_size))
    with dist.scope():
        model = compile_model(build_model(cfg, len(cfg.covariates)), cfg, dist.learning_rate(cfg.learning_rate))
    run.fit(model, datasets["train"], datasets["val"], monitor=cfg.monitor)
    floor = covariate_floor(tables, cfg.target, cfg.covariates)
    card = {
        "task": f"binary: the probability that the face shows {cfg.target} (one sigmoid output)",
        "target": cfg.target,
        "class_names": [cfg.target],
        "covariates": [] if cfg.model == "baseline" else list(cfg.covariates),
        "covariate_coding": "one float per covariate, in this order: 1 = the CelebA attribute is present, 0 = absent "
                            "(list_attr_celeba.txt's 1 / -1)",
    }
    _, metrics = run.finish(model, {s: datasets[s] for s in SPLITS}, final="best", metrics={"covariate_floor": floor},
                            card=card)
    return metrics


def run_seeds(cfg: AttractivenessConfig, data=None, same_settings: bool = True, export: bool = True) -> dict:
    """The config once per `cfg.seeds`, summarised (`hybridvision.common.repeat.run_seeds`); returns metrics.json.

    With `same_settings` a seed folder run with other settings is refused; the seed list may
    change (adding seeds extends the run). Each seed's model is exported as
    `saved_models/attractiveness/<run_dir name>_seed<k>.keras` (not with `export=False`).
    """
    tables = data  # read at the first seed that trains: a finished run is read back without the data

    def train(seed_cfg, export_name):
        nonlocal tables
        tables = tables or load_tables(cfg)
        return train_one(seed_cfg, tables, export_name=export_name, export=export)

    return repeat.run_seeds(APP, cfg, train, splits=SPLITS, same_settings=same_settings, carry=("covariate_floor",))


def main(argv=None) -> dict:
    cfg = parse_config(AttractivenessConfig, argv, parser=train_parser())
    setup_logging(cfg.quiet)
    metrics = run_seeds(cfg) if cfg.seeds else train_one(cfg)
    spread = ""
    if cfg.seeds:
        spread = f" +- {metrics['std']['test']['accuracy']:.4f} over seeds {','.join(map(str, cfg.seeds))}"
    floor = metrics["covariate_floor"]["test"]["accuracy"]
    print(
        f"attractiveness {cfg.model}: test accuracy {metrics['test']['accuracy']:.4f}{spread}, "
        f"test macro F1 {metrics['test']['f1_macro']:.4f} (covariates-only floor: accuracy {floor:.4f})"
    )
    return metrics


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
