"""Train one CelebA attribute classifier: baseline, hybrid (ShortFuse) or late fusion.

    python -m apps.attractiveness.train --data-dir data/celeba --model hybrid --covariates Male
    python -m apps.attractiveness.train --data-dir ../shared/data/celeba_sample --backbone small \\
        --weights none --image-size 64 --epochs 8 --cache --model baseline --seeds 0,1,2

With `--seeds` the configuration runs once per seed in `<run_dir>/seed<k>`
(each resumable) and `summary.json` / `summary.csv` hold the mean and std.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from pathlib import Path

import keras

from apps.attractiveness.config import AttractivenessConfig
from apps.attractiveness.floor import covariate_floor
from apps.attractiveness.models import build_model, compile_model
from common.cli import UserError
from common.config import parse_config
from common.data import demo
from common.data.celeba import (
    attribute_names,
    check_attributes,
    make_dataset,
    read_celeba,
    split_partitions,
)
from common.distribute import Distribution
from common.metrics import mean_std
from common.training import _IGNORED_FOR_RESUME, Run, _comparable, resolve_run_dir, setup_logging

APP = "attractiveness"
SPLITS = ("val", "test")
log = logging.getLogger("hybridvision")


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
    return {
        split: make_dataset(
            tables[split], cfg.target, covariates, (cfg.image_size, cfg.image_size), batch_size,
            shuffle=split == "train", seed=cfg.seed, cache=cfg.cache,
            augment=keras.layers.RandomFlip("horizontal", seed=cfg.seed) if cfg.flip and split == "train" else None,
        )
        for split in ("train", *SPLITS)
    }


def train_one(cfg: AttractivenessConfig, data=None) -> dict:
    """One run (one seed): fit, evaluate on val and test, write the run directory; returns metrics."""
    tables, note = data or load_tables(cfg)
    dist = Distribution.from_config(cfg)
    run = Run(APP, cfg)  # seeds every RNG, so one seed gives one initialisation for every model kind
    if note:
        run.note("fallback_split", note)
    datasets = make_datasets(cfg, tables, dist.global_batch_size(cfg.batch_size))
    with dist.scope():
        model = compile_model(build_model(cfg, len(cfg.covariates)), cfg, dist.learning_rate(cfg.learning_rate))
    run.fit(model, datasets["train"], datasets["val"], monitor=cfg.monitor)
    floor = covariate_floor(tables, cfg.target, cfg.covariates)
    _, metrics = run.finish(model, {s: datasets[s] for s in SPLITS}, metrics={"covariate_floor": floor})
    return metrics


def check_same_settings(root: Path, cfg) -> None:
    """Refuse a multi-seed folder whose config.json holds other settings (its finished seeds would be
    read back as if they were this config's); the seed list may change (adding seeds extends the run)."""
    saved_file = root / "config.json"
    if not saved_file.exists():
        return
    try:
        saved = json.loads(saved_file.read_text())
    except (OSError, ValueError):
        return
    ignored = {"seeds", "seed"}  # run_seeds sets each seed's own
    now = {k: v for k, v in _comparable(cfg).items() if k not in ignored}
    saved = {k: v for k, v in saved.items() if k not in ignored and k not in _IGNORED_FOR_RESUME}
    diff = [f"{k}: {saved.get(k)!r} there, {now.get(k)!r} now" for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)]
    if diff:
        raise UserError(f"run directory {root} holds runs with other settings ({'; '.join(diff[:3])}"
                        f"{'; ...' if len(diff) > 3 else ''}); pass another --run-dir or delete that folder")


def run_seeds(cfg: AttractivenessConfig, data=None, same_settings: bool = True) -> dict:
    """The config once per `cfg.seeds` in `<run_dir>/seed<k>`; writes summary.json/.csv and metrics.json.

    With `same_settings` a folder whose config.json holds other settings is refused (`check_same_settings`).
    """
    root = resolve_run_dir(APP, cfg)  # an unfinished multi-seed run of this config is resumed
    root.mkdir(parents=True, exist_ok=True)
    if same_settings:
        check_same_settings(root, cfg)
    (root / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    data = data or load_tables(cfg)
    rows, last = [], {}
    for seed in cfg.seeds:
        sub = dataclasses.replace(cfg, seed=int(seed), seeds=[], run_dir=str(root / f"seed{seed}"))
        done = Path(sub.run_dir) / "metrics.json"
        if done.exists():
            log.info("seed %d already finished in %s", seed, sub.run_dir)
            last = json.loads(done.read_text())
        else:
            log.info("seed %d of %s", seed, ",".join(map(str, cfg.seeds)))
            last = train_one(sub, data)
        row = {"seed": int(seed)}
        row.update({f"{s}_{k}": last[s][k] for s in SPLITS for k in sorted(last[s])})
        rows.append(row)
    keys = [k for k in rows[0] if k != "seed"]
    stats = {k: mean_std([r[k] for r in rows]) for k in keys}
    summary = {
        "seeds": [r["seed"] for r in rows],
        "runs": rows,
        "mean": {k: m for k, (m, _) in stats.items()},
        "std": {k: s for k, (_, s) in stats.items()},
        "covariate_floor": last.get("covariate_floor"),
        "notes": {k: v for k, v in last.get("notes", {}).items() if k != "exported_model"},
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    with open(root / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["seed", *keys])
        writer.writeheader()
        writer.writerows(rows)
        writer.writerow({"seed": "mean", **summary["mean"]})
        writer.writerow({"seed": "std", **summary["std"]})
    # metrics.json (the per-split means) marks the multi-seed run finished, as for one run.
    metrics = {s: {k[len(s) + 1 :]: v for k, v in summary["mean"].items() if k.startswith(s + "_")} for s in SPLITS}
    metrics.update(std={s: {k[len(s) + 1 :]: v for k, v in summary["std"].items() if k.startswith(s + "_")} for s in SPLITS},
                   seeds=summary["seeds"], covariate_floor=summary["covariate_floor"], notes=summary["notes"])
    (root / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    log.info("summary of %d seeds written to %s", len(rows), root / "summary.json")
    return metrics


def main(argv=None) -> dict:
    cfg = parse_config(AttractivenessConfig, argv, description=__doc__.split("\n")[0], prog="python -m apps.attractiveness.train")
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
    from common.cli import main_entry

    main_entry(main)
