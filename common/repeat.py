"""Settings x seeds: one training run each, resumed, summarised per setting as mean and 95% t-interval.

    configs = {name: {seed: config_with_its_run_dir, ...}, ...}
    results = repeat(configs, train, fix="pass another --out or the flags of that run")
    rows = summarise({name: {seed: {"test": m["test"]["accuracy"]} for seed, m in runs.items()}
                      for name, runs in results.items()})
    hybridvision.common.tables.write_table(rows, out / "comparison")

Every cell (a setting and a seed) is one normal run directory, its config's
`run_dir`. Running the same command again resumes: a finished cell (its
metrics.json is there) is read back, not retrained; an interrupted one resumes
from its last finished epoch (`hybridvision.common.run.Run`). Before anything trains,
a cell folder that was run with other settings is refused (one line naming
the folder and the fix), so two experiments are never mixed in one table.
The seeds run outermost: a repetition stopped part-way has every setting at
the same number of seeds.

The interval is mean ± t(0.975, n-1) · s / √n (s the sample standard
deviation over the seeds); with one seed it is blank.

`run_seeds` is the multi-seed run of one configuration (an app's `--seeds`):
one run directory per seed under the multi-seed run's own, and
summary.json / summary.csv / metrics.json over the seeds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

from hybridvision.common.cli import UserError
from hybridvision.common.run import other_settings, resolve_run_dir, shorten
from hybridvision.common.run.atomic import atomic_write_text
from hybridvision.common.tables import csv_text

log = logging.getLogger("hybridvision")
STATISTICS = ("mean", "std", "ci95_low", "ci95_high")


def interval(values) -> tuple[float, float, float]:
    """Mean, sample std and the half-width of the 95% t-interval (std 0 and half-width NaN for one value)."""
    values = np.asarray(values, dtype="float64")
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if values.size < 2:
        return mean, 0.0, float("nan")
    std = float(values.std(ddof=1))
    return mean, std, float(stats.t.ppf(0.975, values.size - 1) * std / math.sqrt(values.size))


def summary_of(values) -> dict:
    """`{"mean", "std", "ci95_low", "ci95_high"}` of `values` (the interval None with fewer than 2)."""
    mean, std, half = interval(values)
    low, high = (None, None) if math.isnan(half) else (mean - half, mean + half)
    return {"mean": mean, "std": std, "ci95_low": low, "ci95_high": high}


def summarise(values: dict, key: str = "setting") -> list[dict]:
    """One row per setting: `{key: name, "n", "<v>_mean", "<v>_std", "<v>_ci95_low", "<v>_ci95_high", ...}`.

    `values`: `{name: {seed: {v: number, ...}}}`; settings without a finished seed get no row.
    """
    rows = []
    for name, by_seed in values.items():
        if not by_seed:
            continue
        row = {key: name, "n": len(by_seed)}
        for v in dict.fromkeys(k for numbers in by_seed.values() for k in numbers):
            stats_ = summary_of([numbers[v] for numbers in by_seed.values() if v in numbers])
            row.update({f"{v}_{k}": x for k, x in stats_.items()})
        rows.append(row)
    return rows


def check_cells(configs: dict, fix: str, ignore=()) -> None:
    """Refuse (one line) the first cell folder that holds a run with other settings than its config."""
    for by_seed in configs.values():
        for config in by_seed.values():
            diff = other_settings(config.run_dir, config, ignore)
            if diff:
                raise UserError(f"{config.run_dir} was run with other settings ({shorten(diff)}); {fix}")


def repeat(configs: dict, train: Callable[[object], dict], fix: str = "pass another folder or delete that one",
           ignore=(), check: bool = True, on_result: Callable | None = None) -> dict:
    """Run (or read back) every cell; returns `{name: {seed: metrics}}` in the order of `configs`.

    Args:
        configs: `{name: {seed: config}}`; each config's `run_dir` is that cell's run directory.
        train: trains one cell from its config and returns its metrics (what metrics.json holds).
        fix: what to do about a cell folder with other settings (the refusal's end), e.g.
            "pass another --out or the flags of that run".
        ignore: config fields a cell folder may hold other values of.
        check: False skips the refusal (finished cells are read back whatever their settings).
        on_result: called after each cell as `on_result(name, seed, metrics, seconds)`,
            `seconds` None for a cell read back (e.g. to print progress or rewrite a partial table).
    """
    if check:
        check_cells(configs, fix, ignore)
    results = {name: {} for name in configs}
    seeds = list(dict.fromkeys(seed for by_seed in configs.values() for seed in by_seed))
    for seed in seeds:
        for name, by_seed in configs.items():
            if seed not in by_seed:
                continue
            config = by_seed[seed]
            finished = Path(config.run_dir) / "metrics.json"
            if finished.exists():
                metrics, seconds = json.loads(finished.read_text()), None
            else:
                start = time.perf_counter()
                metrics = train(config)
                seconds = time.perf_counter() - start
            results[name][seed] = metrics
            if on_result is not None:
                on_result(name, seed, metrics, seconds)
    return results


def _is_score(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run_seeds(app: str, config, train: Callable[[object, str], dict], splits=("val", "test"),
              same_settings: bool = True, carry=()) -> dict:
    """`config` once per seed of `config.seeds`, resumed, and summarised over the seeds; returns metrics.json.

    The multi-seed run directory is `config.run_dir`, else an unfinished one of the same settings
    under `runs/<app>/`, else a new one (`hybridvision.common.run.resolve_run_dir`). Seed `k` runs
    in `<that>/seed<k>` with `config`'s settings but `seed=k` and `seeds=[]`; a seed folder that
    holds metrics.json is read back, not trained (`repeat`), so seeds may be added later.

    Args:
        app: the app's name (`runs/<app>/...`).
        config: the app's config; it has `seeds`, `seed` and `run_dir` fields.
        train: `train(seed_config, export_name) -> metrics` trains one seed (its metrics.json's
            dict); `export_name` is `<run dir name>_seed<k>`, so that the exports of two
            multi-seed runs do not overwrite each other.
        splits: the keys of a seed's metrics that hold per-split metric dicts.
        same_settings: refuse (one line) a seed folder run with other settings; False reads
            finished seeds back whatever their settings.
        carry: keys of the last seed's metrics copied unchanged (e.g. a baseline that does not
            depend on the seed).

    Writes into the multi-seed run directory, each file atomically: config.json (the settings,
    which a later invocation matches to resume), summary.json (`seeds`, `runs`: one row of
    `<split>_<metric>` per seed, then `mean`, `std`, `ci95_low`, `ci95_high` of each, the `carry`
    keys and the last seed's `notes`), summary.csv (the rows per seed, then one per statistic) and
    last metrics.json (`{split: {metric: mean}}`, `std` / `ci95_low` / `ci95_high` in the same
    shape, `seeds`, the `carry` keys, `notes`), whose presence marks the multi-seed run finished.
    """
    root = resolve_run_dir(app, config)  # an unfinished multi-seed run of this config is resumed (made, marked)
    seeds = [int(seed) for seed in config.seeds]
    configs = {"run": {seed: dataclasses.replace(config, seed=seed, seeds=[], run_dir=str(root / f"seed{seed}"))
                       for seed in seeds}}
    if same_settings:
        check_cells(configs, fix="pass another --run-dir or delete that folder")
    atomic_write_text(root / "config.json", json.dumps(config.to_dict(), indent=2, sort_keys=True))

    def progress(_name, seed, _metrics, seconds):
        log.info("seed %d %s", seed, "already finished" if seconds is None else f"trained in {seconds:.0f} s")

    def train_seed(seed_config):
        return train(seed_config, f"{root.name}_seed{seed_config.seed}")

    runs = repeat(configs, train_seed, check=False, on_result=progress)["run"]
    # Scalar scores only: per-class tables and confusion matrices stay in each seed's metrics.json.
    rows = [{"seed": seed, **{f"{s}_{k}": m[s][k] for s in splits for k in sorted(m[s]) if _is_score(m[s][k])}}
            for seed, m in runs.items()]
    summary_row = summarise({"run": {r["seed"]: {k: v for k, v in r.items() if k != "seed"} for r in rows}})[0]
    keys = [k for k in rows[0] if k != "seed"]
    last = runs[seeds[-1]]
    carried = {key: last.get(key) for key in carry}
    notes = {k: v for k, v in last.get("notes", {}).items() if k != "exported_model"}
    summary = {
        "seeds": [r["seed"] for r in rows],
        "runs": rows,
        **{stat: {k: summary_row[f"{k}_{stat}"] for k in keys} for stat in STATISTICS},
        **carried,
        "notes": notes,
    }
    atomic_write_text(root / "summary.json", json.dumps(summary, indent=2, sort_keys=True))
    atomic_write_text(root / "summary.csv", csv_text(rows + [{"seed": stat, **summary[stat]} for stat in STATISTICS]))
    # metrics.json (the per-split means) marks the multi-seed run finished, as for one run.
    per_split = {stat: {s: {k[len(s) + 1 :]: v for k, v in summary[stat].items() if k.startswith(s + "_")}
                        for s in splits} for stat in STATISTICS}
    metrics = {**per_split.pop("mean"), **per_split, "seeds": summary["seeds"], **carried, "notes": notes}
    atomic_write_text(root / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    log.info("summary of %d seeds written to %s", len(rows), root / "summary.json")
    return metrics
