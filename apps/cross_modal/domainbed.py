"""`--protocol domainbed`: leave one domain out as DomainBed reports PACS (Gulrajani & Lopez-Paz, ICLR 2021).

    hybridvision cross_modal train --data-dir data/pacs --protocol domainbed --seeds 0,1,2

One cell per (held-out domain, seed), each a normal run directory `<run dir>/<domain>_seed<k>`
trained by `train.train` on the other domains: 80% of each (per class, by the seed) trains, the
other 20% of all of them together chooses the checkpoint (`--monitor`), and the held-out domain
is used only for the final test, on all its images (`data.domainbed_partition`, checked by
`data.check_unseen` before anything trains). The cells are `hybridvision.common.repeat`'s: a
finished one is read back, an interrupted one resumes from its last epoch, a folder run with
other settings is refused. Nothing is exported: each cell keeps its model in its folder.

Before training it prints a rough estimate of the time the unfinished cells take. At the end
`domainbed_table.md` and metrics.json in the run directory hold, per held-out domain, the mean
test accuracy over the seeds ± its standard error, computed as DomainBed's tables do: the
population standard deviation (numpy's `std`, ddof 0) / √(number of seeds); and their average,
the mean of the per-domain means (DomainBed's "Avg", without an error).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from hybridvision.apps.cross_modal.config import DOMAINBED_HOLDOUT
from hybridvision.apps.cross_modal.data import load_table
from hybridvision.common.repeat import check_cells, repeat
from hybridvision.common.run import resolve_run_dir
from hybridvision.common.run.atomic import atomic_write_text

APP = "cross_modal"


def cell_configs(cfg, root, domains) -> dict:
    """`{held-out domain: {seed: that cell's config}}`; a cell's run directory is `<root>/<domain>_seed<seed>`."""
    seeds = cfg.seeds or [cfg.seed]
    return {domain: {seed: dataclasses.replace(cfg, seed=seed, seeds=[], test_domains=[domain],
                                               run_dir=str(root / f"{domain}_seed{seed}")) for seed in seeds}
            for domain in domains}


def estimate_seconds(cfg, table, domains) -> float:
    """Rough seconds to train and test one cell per domain in `domains` (repeat a domain for each seed).

    The model is built, and one training step and one prediction of a batch of `--batch-size` random
    images at `--image-size` are timed twice: the first call's extra time (building the graph) is paid
    once per phase of a cell, the second call's time once per batch: every epoch over the cell's train
    and val images (one pass to compute the features instead when they are cached), the fine-tuning
    epochs, one pass over the held-out domain. Reading and decoding the images is not counted.
    """
    import keras

    from hybridvision.apps.cross_modal.models import build_model, compile_model, prepare_finetuning

    classes = len(table.attrs["class_names"])
    x = np.random.default_rng(0).uniform(0, 255, (cfg.batch_size, cfg.image_size, cfg.image_size, 3)).astype("float32")
    y = np.zeros(cfg.batch_size, "int32")

    def timed(call):
        """`(the first call's extra seconds, seconds of a later call)`."""
        start = time.perf_counter()
        call()
        first = time.perf_counter() - start
        start = time.perf_counter()
        call()
        later = time.perf_counter() - start
        return max(first - later, 0.0), later

    start = time.perf_counter()
    model, extractor, _ = build_model(cfg, classes, table.attrs["modalities"])
    compile_model(model, cfg, cfg.learning_rate, classes)
    overhead = time.perf_counter() - start
    (trace_predict, predict), (trace_step, step) = timed(lambda: model.predict_on_batch(x)), timed(
        lambda: model.train_on_batch(x, y))
    overhead += 2 * trace_predict + trace_step  # the first phase (val, test) and its training
    finetune_step = 0.0
    if cfg.model == "finetune":
        prepare_finetuning(extractor, cfg)
        compile_model(model, cfg, cfg.learning_rate, classes)
        trace_finetune, finetune_step = timed(lambda: model.train_on_batch(x, y))
        overhead += trace_predict + trace_finetune
    keras.backend.clear_session()

    def batches(n):
        return math.ceil(n / cfg.batch_size)

    total = 0.0
    for domain in domains:
        test = int((table["modality"] == domain).sum())
        val = round((len(table) - test) * DOMAINBED_HOLDOUT)
        train = len(table) - test - val
        if cfg.model in ("frozen", "finetune") and cfg.cache_features:
            total += predict * batches(train + val)
        else:
            total += cfg.epochs * (step * batches(train) + predict * batches(val))
        if cfg.model == "finetune":
            total += cfg.finetune_epochs * (finetune_step * batches(train) + predict * batches(val))
        total += predict * batches(test) + overhead
    return total


def duration(seconds: float) -> str:
    """`1h05m`, `12m` or `40s`."""
    minutes = round(seconds / 60)
    if minutes >= 60:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{minutes}m" if minutes else f"{round(seconds)}s"


def summarize(results: dict) -> dict:
    """metrics["test"] from `{domain: {seed: a cell's metrics}}`: per held-out domain the mean accuracy over the
    seeds, its standard error (population std / √n, as DomainBed) and the values; `accuracy` is the mean of the
    per-domain means."""
    per_modality = {}
    for domain, by_seed in results.items():
        values = [by_seed[seed]["test"]["per_modality"][domain]["accuracy"] for seed in by_seed]
        per_modality[domain] = {
            "accuracy": float(np.mean(values)),
            "accuracy_se": float(np.std(values) / math.sqrt(len(values))),
            "accuracy_seeds": values,
            "seeds": list(by_seed),
            "images": by_seed[next(iter(by_seed))]["test"]["per_modality"][domain]["images"],
        }
    return {"accuracy": float(np.mean([v["accuracy"] for v in per_modality.values()])), "per_modality": per_modality}


def markdown(test: dict, caption: str) -> str:
    """One row per held-out domain (mean ± standard error over the seeds, in %), then their average."""
    lines = [caption, "", "| held-out domain | test images | seeds | accuracy (%) |", "|---|---|---|---|"]
    for domain, scores in test["per_modality"].items():
        lines.append(f"| {domain} | {scores['images']} | {len(scores['seeds'])} | "
                     f"{100 * scores['accuracy']:.1f} ± {100 * scores['accuracy_se']:.1f} |")
    lines.append(f"| **average** | | | **{100 * test['accuracy']:.1f}** |")
    return "\n".join(lines)


def plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def run_domainbed(cfg, train) -> dict:
    """Every cell of `cfg` (trained by `train(cell_config, export=False)`, or read back), then the summary;
    returns metrics.json."""
    table = load_table(cfg)
    domains = cfg.test_domains or table.attrs["modalities"]
    seeds = cfg.seeds or [cfg.seed]
    root = resolve_run_dir(APP, cfg)  # an unfinished run of these settings is resumed
    configs = cell_configs(cfg, root, domains)
    fix = "pass another --run-dir or delete that folder"
    check_cells(configs, fix)  # a cell folder run with other settings: refused before anything is timed or trained
    atomic_write_text(root / "config.json", json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    total = len(domains) * len(seeds)
    todo = [domain for domain, by_seed in configs.items() for c in by_seed.values()
            if not (Path(c.run_dir) / "metrics.json").exists()]
    if todo:
        left = "" if len(todo) == total else f"the {len(todo)} unfinished of "
        print(f"estimated {duration(estimate_seconds(cfg, table, todo))} for {left}{plural(total, 'cell')} "
              f"({plural(len(domains), 'domain')} x {plural(len(seeds), 'seed')}); run directory {root}", flush=True)

    def train_cell(cell):
        import keras

        metrics = train(cell, export=False)
        keras.backend.clear_session()
        return metrics

    done = []

    def progress(domain, seed, metrics, seconds):  # printed: hours-long runs show it even with --quiet
        done.append(seed)
        how = "read back" if seconds is None else f"trained in {duration(seconds)}"
        print(f"[{len(done)}/{total}] held out {domain}, seed {seed}: test accuracy "
              f"{metrics['test']['per_modality'][domain]['accuracy']:.3f} ({how})", flush=True)

    results = repeat(configs, train_cell, check=False, on_result=progress)
    test = summarize(results)
    table_md = markdown(test, (
        f"DomainBed-style leave one domain out (training-domain validation: {DOMAINBED_HOLDOUT:.0%} of each training "
        f"domain; test: every image of the held-out one); model {cfg.model} ({cfg.backbone}, {cfg.image_size} px), "
        f"seeds {','.join(map(str, seeds))}; accuracy: mean ± standard error over the seeds (population std / √n, "
        "as DomainBed); average: mean of the per-domain means"))
    atomic_write_text(root / "domainbed_table.md", table_md + "\n")
    metrics = {"test": test, "seeds": seeds, "cells": {d: {s: c.run_dir for s, c in by.items()}
                                                       for d, by in configs.items()}}
    atomic_write_text(root / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    print(table_md)
    per = ", ".join(f"{d} {v['accuracy']:.3f} ± {v['accuracy_se']:.3f}" for d, v in test["per_modality"].items())
    print(f"cross_modal {cfg.model} domainbed: average test accuracy {test['accuracy']:.4f} ({per}); "
          f"written to {root}")
    return metrics
