"""Repeated-run comparison of the digit-pair models: the report's table.

    hybridvision digit_pairs compare --rounds 10 --data-dir ../shared/data/mnist --out runs/digit_pairs/cmp

Trains every model of `--models` `--rounds` times, round k with seed
`--seed + k` (new random pairs and a new initialisation each round), each
round a normal run directory `OUT/runs/<model>/seed<seed>/` (`hybridvision.common.repeat`). Then writes
`OUT/comparison.csv` (model, train_mean, train_std, test_mean, test_std, n and the 95%
t-interval of train and test accuracy), `OUT/comparison.md` (also the number of rounds per
model) and `OUT/comparison.png` (test accuracy, std error bars); they are rewritten after
every round, so a partial table is always there.

Running the same command again resumes: finished rounds are read back from
their metrics.json, an interrupted round resumes from its last epoch. A
round trained with other settings (say another `--epochs`) is an error, not
silently mixed in. Every training flag of `hybridvision.apps.digit_pairs.train` applies
to all rounds; its `--model` and `--run-dir` are ignored here.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import keras

from hybridvision.apps.digit_pairs.config import CompareConfig, DigitPairsConfig, compare_parser
from hybridvision.apps.digit_pairs.train import run_experiment
from hybridvision.common.config import parse_config
from hybridvision.common.plots import plot_bars
from hybridvision.common.repeat import repeat, summarise
from hybridvision.common.tables import write_table

log = logging.getLogger("hybridvision")

# Test accuracy, mean of 10 runs, from the original report; siamese: no number given.
REPORTED = {"fc": 0.740, "fc_dropout": 0.764, "cnn": 0.825, "deep_cnn": 0.830, "aux": 0.956}
COLUMNS = ["model", "train_mean", "train_std", "test_mean", "test_std", "n",
           "train_ci95_low", "train_ci95_high", "test_ci95_low", "test_ci95_high"]
SHOWN = ["model", "n", "train_mean", "train_std", "test_mean", "test_std", "test_ci95_low", "test_ci95_high", "reported"]


def round_config(cfg: CompareConfig, model: str, k: int) -> DigitPairsConfig:
    """The training config of round `k` of `model`."""
    settings = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(DigitPairsConfig)}
    seed = cfg.seed + k
    settings.update(model=model, seed=seed, quiet=True, run_dir=str(Path(cfg.out) / "runs" / model / f"seed{seed}"))
    return DigitPairsConfig(**settings)


def write_tables(rows: list[dict], out: Path, title: str = "") -> None:
    """comparison.csv, comparison.md and comparison.png in `out`."""
    for row in rows:
        row["reported"] = REPORTED.get(row["model"])
    write_table(rows, out / "comparison", columns=COLUMNS, shown=SHOWN, title=f"Digit-pair comparison: {title}",
                headers={"n": "rounds", "train": "train accuracy", "test": "test accuracy", "reported": "report (test)"},
                notes=["Mean ± sample standard deviation over the rounds (one seed each); 95% CI: mean ± "
                       "t(0.975, n-1) · std / √n."])
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
    configs = {model: {cfg.seed + k: round_config(cfg, model, k) for k in range(cfg.rounds)} for model in models}
    accuracies = {model: {} for model in models}
    trained_seconds = []

    def train(run_cfg):
        metrics = run_experiment(run_cfg, saved_models_dir=out / "saved_models",
                                 export_name=f"{run_cfg.model}_seed{run_cfg.seed}")
        keras.backend.clear_session()
        return metrics

    def progress(model, seed, metrics, seconds):
        accuracies[model][seed] = {split: metrics[split]["accuracy"] for split in ("train", "test")}
        done = sum(map(len, accuracies.values()))
        how = "finished earlier"
        if seconds is not None:
            trained_seconds.append(seconds)
            left = sum(trained_seconds) / len(trained_seconds) * (len(models) * cfg.rounds - done)
            how = f"{seconds:.0f} s; about {left / 60:.1f} min left"
        print(f"[{done}/{len(models) * cfg.rounds}] {model} seed {seed}: train {metrics['train']['accuracy']:.3f} "
              f"test {metrics['test']['accuracy']:.3f} ({how})", flush=True)
        write_tables(summarise(accuracies, key="model"), out, title)

    repeat(configs, train, fix="pass another --out or delete that folder", on_result=progress)
    rows = summarise(accuracies, key="model")
    print((out / "comparison.md").read_text(), flush=True)
    print(f"comparison written to {out / 'comparison.csv'}, .md and .png", flush=True)
    return rows


def main(argv=None) -> list[dict]:
    cfg = parse_config(CompareConfig, argv, parser=compare_parser())
    return compare(cfg)


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
