"""Repeated-run comparison of the digit-pair models: the report's table.

    python -m apps.digit_pairs.compare --rounds 10 --data-dir ../shared/data/mnist --out runs/digit_pairs/cmp

Trains every model of `--models` `--rounds` times, round k with seed
`--seed + k` (new random pairs and a new initialisation each round), each
round a normal run directory `OUT/runs/<model>/seed<seed>/`. Then writes
`OUT/comparison.csv` (model, train_mean, train_std, test_mean, test_std),
`OUT/comparison.md` (also the number of rounds per model) and `OUT/comparison.png` (test accuracy, std error bars);
they are rewritten after every round, so a partial table is always there.

Running the same command again resumes: finished rounds are read back from
their metrics.json, an interrupted round resumes from its last epoch. A
round trained with other settings (say another `--epochs`) is an error, not
silently mixed in. Every training flag of `apps.digit_pairs.train` applies
to all rounds; its `--model` and `--run-dir` are ignored here.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import time
from pathlib import Path

import keras

from apps.digit_pairs.config import MODELS, DigitPairsConfig
from apps.digit_pairs.train import run_experiment
from common.config import option, parse_config
from common.metrics import mean_std
from common.plots import plot_bars

log = logging.getLogger("hybridvision")

# Test accuracy, mean of 10 runs, from the report (docs/reports.md: digit_pairs); siamese: no number given.
REPORTED = {"fc": 0.740, "fc_dropout": 0.764, "cnn": 0.825, "deep_cnn": 0.830, "aux": 0.956}
COLUMNS = ("model", "train_mean", "train_std", "test_mean", "test_std")
_NOT_COMPARED = ("run_dir", "quiet")


@dataclasses.dataclass
class CompareConfig(DigitPairsConfig):
    """The training settings plus how many rounds of which models."""

    rounds: int = option(10, "training runs per model (docs/reports.md: 10), round k uses seed --seed + k", min=1)
    models: list[str] = option(list(MODELS), "models to compare", choices=MODELS)
    out: str = option("runs/digit_pairs/comparison", "folder for comparison.csv/.md/.png and runs/<model>/seed<k>/")


def round_config(cfg: CompareConfig, model: str, k: int) -> DigitPairsConfig:
    """The training config of round `k` of `model`."""
    settings = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(DigitPairsConfig)}
    seed = cfg.seed + k
    settings.update(model=model, seed=seed, quiet=True, run_dir=str(Path(cfg.out) / "runs" / model / f"seed{seed}"))
    return DigitPairsConfig(**settings)


def _check_same_settings(run_cfg: DigitPairsConfig) -> None:
    saved_file = Path(run_cfg.run_dir) / "config.json"
    if not saved_file.exists():
        return
    saved = json.loads(saved_file.read_text())
    wanted = run_cfg.to_dict()
    changed = sorted(k for k in wanted if k not in _NOT_COMPARED and saved.get(k) != wanted[k])
    if changed:
        diff = ", ".join(f"{k}: {saved.get(k)!r} there, {wanted[k]!r} now" for k in changed)
        raise ValueError(
            f"{run_cfg.run_dir} was trained with other settings ({diff}); pass another --out or delete that folder"
        )


def summarise(results: dict) -> list[dict]:
    """One row per model with mean and std of train and test accuracy over its finished rounds."""
    rows = []
    for model, metrics in results.items():
        if not metrics:
            continue
        train_mean, train_std = mean_std([m["train"]["accuracy"] for m in metrics])
        test_mean, test_std = mean_std([m["test"]["accuracy"] for m in metrics])
        rows.append(
            {"model": model, "train_mean": train_mean, "train_std": train_std,
             "test_mean": test_mean, "test_std": test_std, "n": len(metrics)}
        )
    return rows


def write_tables(rows: list[dict], out: Path, title: str = "") -> None:
    """comparison.csv, comparison.md and comparison.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "comparison.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{r[k]:.4f}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})
    lines = [
        f"# Digit-pair comparison{': ' + title if title else ''}",
        "",
        "| model | rounds | train accuracy | test accuracy | report (test) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        reported = f"{REPORTED[r['model']]:.3f}" if r["model"] in REPORTED else "-"
        lines.append(
            f"| {r['model']} | {r['n']} | {r['train_mean']:.3f} ± {r['train_std']:.3f} "
            f"| {r['test_mean']:.3f} ± {r['test_std']:.3f} | {reported} |"
        )
    lines += ["", "Mean ± sample standard deviation over the rounds (one seed each)."]
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    if rows:
        plot_bars(
            [r["model"] for r in rows], [r["test_mean"] for r in rows], [r["test_std"] for r in rows],
            out / "comparison.png", ylabel="test accuracy", title="digit pairs: mean ± std over rounds",
        )


def compare(cfg: CompareConfig) -> list[dict]:
    """Runs (or resumes) every round and returns the summary rows."""
    if cfg.rounds < 1:
        raise ValueError(f"--rounds must be at least 1, got {cfg.rounds}")
    out = Path(cfg.out)
    models = list(dict.fromkeys(cfg.models))
    title = f"{cfg.rounds} rounds, {cfg.epochs} epochs, data {cfg.data_dir or 'SYNTHETIC demo digits'}"
    results = {m: [] for m in models}
    total, done, trained_seconds, trained = len(models) * cfg.rounds, 0, 0.0, 0
    # Rounds outermost: a comparison stopped part-way has every model at the same number of rounds.
    for k in range(cfg.rounds):
        for model in models:
            run_cfg = round_config(cfg, model, k)
            _check_same_settings(run_cfg)
            metrics_file = Path(run_cfg.run_dir) / "metrics.json"
            start = time.time()
            if metrics_file.exists():
                metrics, how = json.loads(metrics_file.read_text()), "finished earlier"
            else:
                metrics = run_experiment(run_cfg, saved_models_dir=out / "saved_models", export_name=f"{model}_seed{run_cfg.seed}")
                keras.backend.clear_session()
                trained_seconds += time.time() - start
                trained += 1
                how = f"{time.time() - start:.0f} s"
            results[model].append(metrics)
            done += 1
            left = ""
            if trained:
                left = f"; about {trained_seconds / trained * (total - done) / 60:.1f} min left"
            print(
                f"[{done}/{total}] {model} seed {run_cfg.seed}: train {metrics['train']['accuracy']:.3f} "
                f"test {metrics['test']['accuracy']:.3f} ({how}{left})",
                flush=True,
            )
            write_tables(summarise(results), out, title)
    rows = summarise(results)
    print((out / "comparison.md").read_text(), flush=True)
    print(f"comparison written to {out / 'comparison.csv'}, .md and .png", flush=True)
    return rows


def main(argv=None) -> list[dict]:
    cfg = parse_config(CompareConfig, argv, description=__doc__.splitlines()[0], prog="python -m apps.digit_pairs.compare")
    return compare(cfg)


if __name__ == "__main__":
    from common.cli import main_entry

    main_entry(main)
