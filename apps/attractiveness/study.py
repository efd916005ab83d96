"""The covariate-conditioning study: baseline vs late fusion, hybrid, FiLM and CondConv, with controls.

    hybridvision attractiveness study --data-dir ../shared/data/celeba_sample
    hybridvision attractiveness study --backbone small --weights none --image-size 24 --epochs 1 \\
        --seeds 0,1 --models baseline,hybrid_last --covariate-sets Male --controls true

Cells: every `--models` entry (`baseline`, `late_fusion`, `hybrid_<pos>`,
`film_<pos>`, `condconv_<pos>` with `<pos>` first / middle / last; `middle`
is the conv at half the count) x every `--covariate-sets` set x every
`--controls` assignment; the baseline uses no covariates and runs once.
Each cell runs once per `--seeds` seed (default 5) on ONE fixed split
(`--split-seed`) through `train.run_seeds` (one run directory per cell-seed,
`<run_dir>/cells/<covariates>/<model>/<control>/seed<k>`), so the same seed
gives every model the same initialisation of the shared network and the
same batch order.

Covariate-assignment controls: `true` (the covariates of the image),
`shuffled` (the covariate rows permuted across the images of each split, the
joint distribution of the covariates kept, their link to the image broken),
`mean` (every number at its training mean, every category at its most
frequent training value: the covariates carry no information), and the
thesis's `zeros` / `ones` (every covariate 0 or 1; numeric covariates only).
They are a transformation of the covariate columns of the train, val AND
test tables, so a control is applied both in training and at evaluation:
the model is trained and scored with the assigned covariates. The
permutation of `shuffled` is fixed per split (drawn from `--split-seed`),
the same for every seed, so the paired comparison changes only the seed. A
fusion model that beats the baseline with `shuffled` (or constant)
covariates gains from something other than the covariates.

Statistics (on test accuracy, and the same for ROC AUC): mean over seeds with a 95% interval from the
t-distribution (mean ± t(0.975, n-1) · s / √n) and a paired t-test
(`scipy.stats.ttest_rel`) of each cell against the baseline on the seeds
both have. scipy is a dependency of scikit-learn (in requirements.txt), so
it is always installed; no fallback table is needed. With one seed the
interval and the p-value are blank.

The covariates-only floor (`floor.py`: a logistic regression on the true
covariates coded as the models code them, no image) is one row per
covariate set. The data is CelebA's layout or a table of images and columns
(`--labels`, or labels.csv in `--data-dir`), as for `train`.

Written to `<run_dir>`: `study.csv`, `study.md` (mean ± std columns, the
interval, the difference to the baseline and its p-value) and `study.png`
(test accuracy with its 95% interval per cell). Running the same command
again resumes: finished seeds are read back from their metrics.json, and a
cell folder that holds runs with other settings is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from scipy import stats

from hybridvision.apps.attractiveness.config import (  # noqa: F401 - POSITIONS, STUDY_MODELS, DEFAULT_MODELS: part of this module's API
    CELEBA_COVARIATE_SETS,
    CONDITIONED,
    CONTROLS,
    DEFAULT_MODELS,
    POSITIONS,
    STUDY_MODELS,
    AttractivenessConfig,
    StudyConfig,
    study_parser,
)
from hybridvision.apps.attractiveness.data import load_data
from hybridvision.apps.attractiveness.floor import covariate_floor
from hybridvision.apps.attractiveness.train import run_seeds
from hybridvision.common.cli import UserError
from hybridvision.common.config import option, parse_config
from hybridvision.common.covariate_coding import fit_coding, is_missing
from hybridvision.common.plots import plot_bars
from hybridvision.common.repeat import interval
from hybridvision.common.run import setup_logging
from hybridvision.common.tables import write_table

log = logging.getLogger("hybridvision")
METRICS = ("accuracy", "roc_auc", "f1_macro")
SPLITS = ("test", "val")


@dataclasses.dataclass
class CellConfig(AttractivenessConfig):
    """One cell's run config: the app's config plus the covariate assignment (kept in config.json)."""

    covariate_control: str = option("true", "covariates given to the model: true, shuffled, mean, zeros or ones",
                                    choices=CONTROLS)


def model_kind(name: str) -> tuple[str, str | None]:
    """`"film_middle"` -> `("film", "middle")`; `"late_fusion"` -> `("late_fusion", None)`."""
    kind, _, position = name.rpartition("_")
    if kind in CONDITIONED and position in POSITIONS:
        return kind, position
    return name, None


def assign_covariates(tables: dict, covariates: list[str], control: str, seed: int = 0, kinds=None) -> dict:
    """The tables with their covariate columns replaced by the `control` assignment (every split).

    `mean` takes each number's training mean and each category's most frequent training value
    (`kinds`: `{column: "numeric" | "categorical"}`, from the coding); `zeros` / `ones` only numbers.
    """
    if control == "true" or not covariates:
        return tables
    if control not in CONTROLS:
        raise ValueError(f"covariate control {control!r} is not one of {', '.join(CONTROLS)}")
    kinds = kinds or {}
    categorical = [c for c in covariates if kinds.get(c) == "categorical"]
    if control in ("zeros", "ones") and categorical:
        raise UserError(f"--controls {control} sets every covariate to a number, but {', '.join(categorical)} "
                        "is categorical; use shuffled or mean")
    constant = {}
    if control == "mean":
        train = tables["train"]
        for c in covariates:
            present = [v for v in train[c] if not is_missing(v)]
            if kinds.get(c) == "categorical":
                values, counts = np.unique(present, return_counts=True)
                constant[c] = str(values[counts.argmax()])
            else:
                constant[c] = repr(float(np.mean([float(v) for v in present])))
    out = {}
    for i, (split, table) in enumerate(tables.items()):
        table = table.copy()
        for c in covariates:
            if control == "shuffled":
                continue
            value = constant[c] if control == "mean" else ("0" if control == "zeros" else "1")
            table[c] = pd.Series([value] * len(table), dtype=object)
        if control == "shuffled":
            order = np.random.default_rng([seed, i]).permutation(len(table))
            for c in covariates:
                table[c] = pd.Series(table[c].to_numpy(dtype=object)[order], dtype=object)
        out[split] = table
    return out


def paired_p(values: dict, baseline: dict) -> float:
    """Two-sided paired t-test p-value on the seeds both have (nan with < 2, or no spread in the differences)."""
    seeds = sorted(set(values) & set(baseline))
    if len(seeds) < 2:
        return float("nan")
    a, b = np.array([values[s] for s in seeds]), np.array([baseline[s] for s in seeds])
    # No spread: the t statistic is undefined. Accuracies come from float32
    # metrics, so two equal differences (e.g. one face in 300 each) can
    # differ by ~1e-7; that rounding noise must not pass for a tiny variance.
    if np.allclose(a - b, (a - b)[0], rtol=0, atol=1e-6):
        return float("nan")
    return float(stats.ttest_rel(a, b).pvalue)


def cell_config(cfg: StudyConfig, name: str, covariates: list[str], control: str, run_dir: Path) -> CellConfig:
    kind, position = model_kind(name)
    names = {f.name for f in dataclasses.fields(AttractivenessConfig)}
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k in names}
    values.update(model=kind, covariates=list(covariates), seeds=list(cfg.seeds), run_dir=str(run_dir),
                  covariate_control=control)
    if position:
        values["hybrid_positions"] = [position]
    return CellConfig(**values)


def run_cell(cell: CellConfig, data) -> dict:
    """The cell over its seeds (resumed); `{"seeds": {seed: {split_metric: value}}, "metrics": run_seeds' result}`."""
    tables, note, table_data = data
    table_data = dataclasses.replace(table_data, covariates=list(cell.covariates))
    # Coded with the true covariates' statistics: a control changes the values the model sees, not their coding.
    coding = fit_coding(tables["train"], cell.covariates, table_data.kinds) if cell.covariates else None
    assigned = assign_covariates(tables, cell.covariates, cell.covariate_control, cell.split_seed, table_data.kinds)
    metrics = run_seeds(cell, (assigned, note, table_data, coding), export=False)  # each cell's model stays in its folder
    summary = json.loads((Path(cell.run_dir) / "summary.json").read_text())
    return {"seeds": {int(r["seed"]): r for r in summary["runs"]}, "metrics": metrics}


def _slug(covariates: list[str]) -> str:
    return "+".join(covariates) or "none"


def _row(model: str, covariates: str, control: str, per_seed: dict, baseline: dict | None) -> dict:
    row = {"covariates": covariates, "model": model, "control": control,
           "seeds": ",".join(map(str, sorted(per_seed)))}
    for split in SPLITS:
        for key in METRICS:
            mean, std, half = interval([r[f"{split}_{key}"] for r in per_seed.values()])
            row[f"{split}_{key}_mean"], row[f"{split}_{key}_std"] = round(mean, 4), round(std, 4)
            if split == "test" and key in ("accuracy", "roc_auc"):
                row[f"test_{key}_ci95_low"] = "" if math.isnan(half) else round(mean - half, 4)
                row[f"test_{key}_ci95_high"] = "" if math.isnan(half) else round(mean + half, 4)
    for key, short in (("accuracy", ""), ("roc_auc", "_auc")):
        if baseline is None:
            row[f"delta{short}_vs_baseline"], row[f"p{short}_paired_vs_baseline"] = "", ""
            continue
        ours = {s: r[f"test_{key}"] for s, r in per_seed.items()}
        base = {s: r[f"test_{key}"] for s, r in baseline.items()}
        common = sorted(set(ours) & set(base))
        row[f"delta{short}_vs_baseline"] = round(float(np.mean([ours[s] - base[s] for s in common])), 4) if common else ""
        p = paired_p(ours, base)
        row[f"p{short}_paired_vs_baseline"] = "" if math.isnan(p) else float(f"{p:.4g}")
    return row


def _floor_row(covariates: list[str], floor: dict, template: dict) -> dict:
    row = {k: "" for k in template}
    row.update(covariates=_slug(covariates), model="covariates_only_logreg", control="true", seeds="-")
    for split in SPLITS:
        for key in METRICS:
            row[f"{split}_{key}_mean"], row[f"{split}_{key}_std"] = round(floor[split][key], 4), 0.0
    return row


def _plot(rows: list[dict], out_png: Path) -> Path:
    names = [r["model"] if r["model"] == "baseline" else f"{r['model']} {r['control']} ({r['covariates']})"
             for r in rows]
    key = "roc_auc" if all(r["test_roc_auc_mean"] == r["test_roc_auc_mean"] for r in rows) else "accuracy"
    means = [r[f"test_{key}_mean"] for r in rows]
    halves = [r[f"test_{key}_ci95_high"] - r[f"test_{key}_mean"] if r[f"test_{key}_ci95_high"] != "" else 0.0
              for r in rows]
    return plot_bars(names, means, halves, out_png, ylabel=f"test {key.replace('_', ' ')}",
                     title="mean over seeds, 95% t-interval")


def load_with_sets(cfg) -> tuple[tuple, list[list[str]]]:
    """`(data, covariate sets)`: the data with every column of the sets, and `--covariate-sets` as lists.

    By default CelebA's two sets, or a table's covariates (--covariates) as one set.
    """
    sets = cfg.covariate_sets
    if sets is None and cfg.table_file() is None:
        sets = CELEBA_COVARIATE_SETS
    if sets is None:  # a table: its covariates (--covariates, or every other column) as one set
        data = load_data(cfg)
        return data, [list(data[2].covariates)]
    sets = [[c for c in str(s).split("+") if c] for s in sets]
    every = sorted({c for s in sets for c in s})
    return load_data(dataclasses.replace(cfg, covariates=every)), sets  # unknown names fail before any training


def run_study(cfg: StudyConfig) -> list[dict]:
    root = Path(cfg.run_dir)
    data, covariate_sets = load_with_sets(cfg)
    tables, _, table_data = data
    baseline = None
    if "baseline" in cfg.models:
        cell = cell_config(cfg, "baseline", [], "true", root / "cells" / "baseline")
        baseline = run_cell(cell, data)["seeds"]
        keras.backend.clear_session()
    rows = [] if baseline is None else [_row("baseline", "none", "-", baseline, None)]
    for covariates in covariate_sets:
        for name in (m for m in cfg.models if m != "baseline"):
            for control in cfg.controls:
                cell = cell_config(cfg, name, covariates, control, root / "cells" / _slug(covariates) / name / control)
                log.info("study cell %s / %s / %s, seeds %s", _slug(covariates), name, control, cfg.seeds)
                rows.append(_row(name, _slug(covariates), control, run_cell(cell, data)["seeds"], baseline))
                keras.backend.clear_session()
    if not rows:
        raise ValueError("--models is empty; give at least one model")
    num_classes = len(table_data.class_names)
    floors = [_floor_row(c, covariate_floor(tables, fit_coding(tables["train"], c, table_data.kinds), num_classes),
                         rows[0]) for c in covariate_sets]
    write_table(rows + floors, root / "study", digits=4,
                formats={"p_paired_vs_baseline": "{:.4g}", "p_auc_paired_vs_baseline": "{:.4g}"})
    _plot(rows, root / "study.png")
    return rows + floors


def main(argv=None) -> list[dict]:
    cfg = parse_config(StudyConfig, argv, parser=study_parser())
    setup_logging(cfg.quiet)
    rows = run_study(cfg)
    root = Path(cfg.run_dir)
    print((root / "study.md").read_text())
    print(f"study written to {root / 'study.csv'}, {root / 'study.md'} and {root / 'study.png'}")
    return rows


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
