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
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

from hybridvision.common.cli import UserError
from hybridvision.common.run import other_settings, shorten


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
