"""Sweep the switch epoch of the patch curriculum and write the report's figures.

    hybridvision patch_training sweep --switch-epochs 0,2,5,7,10 --out runs/sweep
    hybridvision patch_training sweep --backbone small --image-size 64 --epochs 6 --switch-epochs 0,2,4 --out /tmp/sweep
    hybridvision patch_training sweep --switch-epochs 0,1,2,3 --full-epochs 10 --out runs/sweep_same_full

Every K runs `train.run_experiment` with `--switch-epoch K` in `DIR/K<k>/`
(the data is read once; every K starts from the same seeded weights). With
`--epochs` every K trains that many epochs in all (the report's fixed
budget: a larger K leaves fewer whole-image epochs); with `--full-epochs N`
every K trains K + N, so each gets the same whole-image training. After
each K, `DIR/sweep.csv` (switch_epoch, epochs, precision, recall, map, chance_map,
tp, fp, fn, tn, train_seconds, patch_seconds, full_seconds, run_dir),
`DIR/sweep.md`, `DIR/sweep_per_class_ap.md` (AP per class and K, with each
class's chance AP) and the plots against K (`sweep_precision_recall.png`,
`sweep_confusion.png`, `sweep_map.png`, `sweep_time.png`) are rewritten, so
an interrupted sweep shows what it has. Running the same command again
resumes it: finished K are read back from their metrics.json, an unfinished
one resumes at its last finished epoch. Every other flag is train.py's.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from hybridvision.apps.patch_training.config import PatchTrainingConfig, SweepConfig, sweep_parser
from hybridvision.apps.patch_training.train import load_data, run_experiment
from hybridvision.common.config import parse_config
from hybridvision.common.plots import plot_lines
from hybridvision.common.repeat import repeat
from hybridvision.common.run import setup_logging
from hybridvision.common.tables import markdown_table, write_table

log = logging.getLogger("hybridvision")

COLUMNS = [
    "switch_epoch", "epochs", "precision", "recall", "map", "chance_map", "tp", "fp", "fn", "tn",
    "train_seconds", "patch_seconds", "full_seconds", "run_dir",
]  # fmt: skip
SHOWN = ["switch_epoch", "epochs", "precision", "recall", "map", "chance_map", "tp", "fp", "fn", "tn",
         "train_seconds", "patch_seconds", "full_seconds"]


def _run_config(sweep: SweepConfig, k: int, out: Path) -> PatchTrainingConfig:
    fields = {f.name: getattr(sweep, f.name) for f in dataclasses.fields(PatchTrainingConfig)}
    epochs = k + sweep.full_epochs if sweep.full_epochs else sweep.epochs
    return PatchTrainingConfig(**{**fields, "switch_epoch": k, "epochs": epochs, "run_dir": str(out / f"K{k}")})


def row_of(k: int, metrics: dict, run_dir) -> dict:
    """One sweep.csv row from a run's metrics.json."""
    val, phases = metrics["val"], metrics.get("phase_seconds", {})
    return {
        "switch_epoch": k,
        "epochs": metrics.get("epochs"),
        **{key: val[key] for key in ("precision", "recall", "map", "chance_map", "tp", "fp", "fn", "tn")},
        "train_seconds": metrics["train_seconds"],
        "patch_seconds": phases.get("patches") or 0.0,
        "full_seconds": phases.get("full") or 0.0,
        "run_dir": str(run_dir),
        # Not a sweep.csv column: the per-class table.
        "per_class_ap": val.get("per_class_ap", {}),
        "per_class_chance_ap": val.get("per_class_chance_ap", {}),
    }


def write_outputs(rows: list[dict], out: Path, title: str = "") -> None:
    """sweep.csv, sweep.md, sweep_per_class_ap.md and the plots against K, from the rows so far."""
    rows = sorted(rows, key=lambda r: r["switch_epoch"])
    write_table(rows, out / "sweep", columns=COLUMNS, shown=SHOWN, title=f"Patch curriculum sweep: {title}",
                headers={"switch_epoch": "K", "map": "mAP", "chance_map": "chance mAP", "tp": "TP", "fp": "FP",
                         "fn": "FN", "tn": "TN", "train_seconds": "train s", "patch_seconds": "patch s",
                         "full_seconds": "full s"},
                formats={k: "{:.0f}" for k in ("train_seconds", "patch_seconds", "full_seconds")},
                notes=["K = epochs on patches before the switch to full images (0 = baseline); epochs = patch and "
                       "whole-image epochs together; metrics on val."])
    ks = [r["switch_epoch"] for r in rows]
    write_per_class_table(rows, out / "sweep_per_class_ap.md", title)

    def series(*names):
        return {n: [r[n] for r in rows] for n in names}

    plot_lines(ks, series("precision", "recall"), out / "sweep_precision_recall.png", "switch epoch K", "micro average", "precision and recall vs K")
    plot_lines(ks, series("tp", "fp", "fn", "tn"), out / "sweep_confusion.png", "switch epoch K", "count (summed over classes)", "TP / FP / FN / TN vs K")
    plot_lines(ks, series("map", "chance_map"), out / "sweep_map.png", "switch epoch K", "mAP", "val mAP vs K")
    plot_lines(ks, series("train_seconds", "patch_seconds", "full_seconds"), out / "sweep_time.png", "switch epoch K", "seconds", "training time vs K")  # fmt: skip


def write_per_class_table(rows: list[dict], path: Path, title: str = "") -> Path:
    """Val AP per class (rows) and switch epoch K (columns), with each class's chance AP."""
    chance = {}
    for r in rows:
        chance.update(r.get("per_class_chance_ap") or {})
    names = [n for n in chance] + sorted({n for r in rows for n in r.get("per_class_ap") or {}} - set(chance))
    table = [{"class": name, "chance AP": chance.get(name),
              **{f"K={r['switch_epoch']}": (r.get("per_class_ap") or {}).get(name) for r in rows}} for name in names]
    table.append({"class": "**mAP**", "chance AP": rows[0]["chance_map"] if rows else None,
                  **{f"K={r['switch_epoch']}": r["map"] for r in rows}})
    path.write_text(markdown_table(table, title=f"Per-class val AP: {title}",
                                   notes=["Classes without a val positive have no AP and are not listed."]))
    return path


def sweep(config: SweepConfig) -> list[dict]:
    """Runs (or resumes) every switch epoch; returns the sweep.csv rows."""
    setup_logging(config.quiet)
    ks = sorted(set(config.switch_epochs))
    if not ks:
        raise ValueError("--switch-epochs is empty; give a comma-separated list such as 0,2,5")
    bad = [k for k in ks if not 0 <= k <= config.epochs] if not config.full_epochs else []
    if bad:
        raise ValueError(f"--switch-epochs {bad} outside 0..--epochs {config.epochs}; raise --epochs or drop them")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    # One seed (--seed) per K, in DIR/K<k>: the switch epochs are the settings.
    configs = {k: {config.seed: _run_config(config, k, out)} for k in ks}
    budget = f"K + {config.full_epochs} epochs" if config.full_epochs else f"{config.epochs} epochs"
    title = f"{config.backbone}, {config.patch_shape} patches, {budget}, data {config.data_dir or 'SYNTHETIC demo'}"
    data, rows = None, []

    def train(cfg):
        nonlocal data
        data = data or load_data(cfg)  # read once, for the first K that trains
        return run_experiment(cfg, data, export_name=f"{out.name}_K{cfg.switch_epoch}")

    def progress(k, _seed, metrics, seconds):
        if seconds is None:
            log.info("K=%d already finished in %s; reading its metrics", k, configs[k][config.seed].run_dir)
        run_config = configs[k][config.seed]
        rows.append(row_of(k, {**metrics, "epochs": run_config.epochs}, run_config.run_dir))
        write_outputs(rows, out, title=title)

    repeat(configs, train, fix="pass a new --out or the same flags as before to resume that sweep", on_result=progress)
    log.info("sweep written to %s", out / "sweep.csv")
    print((out / "sweep.md").read_text(), flush=True)
    return rows


def main(argv=None) -> list[dict]:
    config = parse_config(SweepConfig, argv, parser=sweep_parser())
    return sweep(config)


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
