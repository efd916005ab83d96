"""Sweep the switch epoch of the patch curriculum and write the report's figures.

    python -m apps.patch_training.sweep --switch-epochs 0,2,5,7,10 --out runs/sweep
    python -m apps.patch_training.sweep --backbone small --image-size 64 --epochs 6 --switch-epochs 0,2,4 --out /tmp/sweep

Every K runs `train.run_experiment` with `--switch-epoch K` in `DIR/K<k>/`
(the data is read once; every K starts from the same seeded weights). After
each K, `DIR/sweep.csv` (switch_epoch, precision, recall, map, chance_map,
tp, fp, fn, tn, train_seconds, patch_seconds, full_seconds, run_dir),
`DIR/sweep.md`, `DIR/sweep_per_class_ap.md` (AP per class and K, with each
class's chance AP) and the plots against K (`sweep_precision_recall.png`,
`sweep_confusion.png`, `sweep_map.png`, `sweep_time.png`) are rewritten, so
an interrupted sweep shows what it has. Running the same command again
resumes it: finished K are read back from their metrics.json, an unfinished
one resumes at its last finished epoch. Every other flag is train.py's.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from pathlib import Path

from apps.patch_training.config import PatchTrainingConfig
from apps.patch_training.train import load_data, run_experiment
from common.config import option, parse_config
from common.plots import plot_lines
from common.training import setup_logging

log = logging.getLogger("hybridvision")

COLUMNS = [
    "switch_epoch", "epochs", "precision", "recall", "map", "chance_map", "tp", "fp", "fn", "tn",
    "train_seconds", "patch_seconds", "full_seconds", "run_dir",
]  # fmt: skip
# Settings that may differ between the invocations of one sweep without changing its results.
_FREE = ("run_dir", "quiet", "switch_epoch")


@dataclasses.dataclass
class SweepConfig(PatchTrainingConfig):
    """The curriculum's settings plus the switch epochs to sweep and the output folder."""

    switch_epochs: list[int] = option([0, 2, 5, 7, 10], "switch epochs to compare (docs/reports.md: 0..10, 0 = baseline)", min=0)
    out: str = option("runs/patch_training_sweep", "folder of sweep.csv, sweep.md, the plots and one run per K")

    def check_switch_epoch(self) -> None:
        """--switch-epoch is not used: each run takes one of --switch-epochs (checked by `sweep`)."""


def _run_config(sweep: SweepConfig, k: int, out: Path) -> PatchTrainingConfig:
    fields = {f.name: getattr(sweep, f.name) for f in dataclasses.fields(PatchTrainingConfig)}
    return PatchTrainingConfig(**{**fields, "switch_epoch": k, "run_dir": str(out / f"K{k}")})


def _check_same_settings(cfg: PatchTrainingConfig) -> None:
    """A K folder of an earlier sweep must have the same settings, else mixing them is wrong."""
    saved_file = Path(cfg.run_dir) / "config.json"
    if not saved_file.exists():
        return
    saved = json.loads(saved_file.read_text())
    now = json.loads(json.dumps(cfg.to_dict()))
    # A setting added since that run (absent from its config.json) had its default then.
    defaults = {f.name: f.default for f in dataclasses.fields(PatchTrainingConfig)}
    differ = sorted(k for k in now if k not in _FREE and saved.get(k, defaults.get(k)) != now[k])
    if differ:
        raise ValueError(
            f"{saved_file} was run with other settings ({', '.join(differ)}); "
            "pass a new --out or the same flags as before to resume that sweep"
        )


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
    """sweep.csv, sweep.md and the plots against K, from the rows so far."""
    rows = sorted(rows, key=lambda r: r["switch_epoch"])
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    head = ["K", "precision", "recall", "mAP", "chance mAP", "TP", "FP", "FN", "TN", "train s", "patch s", "full s"]
    lines = [f"# Patch curriculum sweep{': ' + title if title else ''}", "", "| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in rows:
        cells = [r["switch_epoch"], *(f"{r[c]:.3f}" for c in ("precision", "recall", "map", "chance_map"))]
        cells += [r[c] for c in ("tp", "fp", "fn", "tn")]
        cells += [f"{r[c]:.0f}" for c in ("train_seconds", "patch_seconds", "full_seconds")]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", "K = epochs on patches before the switch to full images (0 = baseline); metrics on val.", ""]
    (out / "sweep.md").write_text("\n".join(lines))
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
    head = ["class", "chance AP", *(f"K={r['switch_epoch']}" for r in rows)]
    lines = [f"# Per-class val AP{': ' + title if title else ''}", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name in names:
        cells = [name, f"{chance[name]:.3f}" if name in chance else "-"]
        cells += [f"{r['per_class_ap'][name]:.3f}" if name in (r.get("per_class_ap") or {}) else "-" for r in rows]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| **mAP** | " + (f"{rows[0]['chance_map']:.3f}" if rows else "-") + " | " + " | ".join(f"{r['map']:.3f}" for r in rows) + " |")
    lines += ["", "Classes without a val positive have no AP and are not listed.", ""]
    path.write_text("\n".join(lines))
    return path


def sweep(config: SweepConfig) -> list[dict]:
    """Runs (or resumes) every switch epoch; returns the sweep.csv rows."""
    setup_logging(config.quiet)
    ks = sorted(set(config.switch_epochs))
    if not ks:
        raise ValueError("--switch-epochs is empty; give a comma-separated list such as 0,2,5")
    bad = [k for k in ks if not 0 <= k <= config.epochs]
    if bad:
        raise ValueError(f"--switch-epochs {bad} outside 0..--epochs {config.epochs}; raise --epochs or drop them")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    configs = {k: _run_config(config, k, out) for k in ks}
    for cfg in configs.values():
        _check_same_settings(cfg)
    data, rows = None, []
    for k, cfg in configs.items():
        metrics_file = Path(cfg.run_dir) / "metrics.json"
        if metrics_file.exists():
            log.info("K=%d already finished in %s; reading its metrics", k, cfg.run_dir)
            metrics = json.loads(metrics_file.read_text())
        else:
            data = data or load_data(cfg)
            metrics = run_experiment(cfg, data, export_name=f"{out.name}_K{k}")
        rows.append(row_of(k, {**metrics, "epochs": config.epochs}, cfg.run_dir))
        title = f"{config.backbone}, {config.patch_shape} patches, {config.epochs} epochs, data {config.data_dir or 'SYNTHETIC demo'}"
        write_outputs(rows, out, title=title)
    log.info("sweep written to %s", out / "sweep.csv")
    print((out / "sweep.md").read_text(), flush=True)
    return rows


def main(argv=None) -> list[dict]:
    config = parse_config(
        SweepConfig, argv, description="Sweep --switch-epoch of the patch curriculum", prog="python -m apps.patch_training.sweep"
    )
    return sweep(config)


if __name__ == "__main__":
    from common.cli import main_entry

    main_entry(main)
