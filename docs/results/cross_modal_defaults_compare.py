"""cross_modal's fine-tuning defaults, compared on the training domains' validation split only.

    python docs/results/cross_modal_defaults_compare.py --data-dir ../shared/data/pacs_small \
        --run-dir runs/results/cross_modal_defaults_val

(`docs/results/regenerate.sh cross_modal_defaults_val` runs it and stores its output.)

Runs `hybridvision cross_modal train --protocol domainbed` (each domain held out in turn; the model
trains on 80% of each other domain and picks its checkpoint on the other 20%) with the defaults
and with one default changed at a time (CANDIDATES), seed 0: one domainbed run folder per
candidate under --run-dir, its finished cells read back, not trained again. Prints one row per
held-out domain and candidate, then the mean per candidate. The choice is made on the validation
columns: images of the training domains only. The held-out domain's test accuracy is printed
after them, for the record; it chooses nothing.
"""

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

CANDIDATES = {  # folder: (what it is, its flags)
    "default": ("the app's defaults", []),
    "finetune_layers_20": ("only the top 20 layers fine-tuned", ["--finetune-layers", "20"]),
    "no_color_augmentation": ("no random grayscale, no colour jitter", ["--grayscale", "0", "--color-jitter", "0"]),
    "cosine": ("cosine learning-rate decay in each phase", ["--lr-schedule", "cosine"]),
    "learning_rate_1e-4": ("a learning rate 10x lower: 1e-4 for the head, 1e-5 when fine-tuning",
                           ["--learning-rate", "1e-4"]),
    "finetune_epochs_12": ("12 fine-tuning epochs instead of 8", ["--finetune-epochs", "12"]),
    "edge_views_0.3": ("30% of the training images as edge drawings", ["--edge-views", "0.3"]),
}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-dir", default="../shared/data/pacs_small")
parser.add_argument("--run-dir", default="runs/results/cross_modal_defaults_val")
parser.add_argument("--seeds", default="0")
parser.add_argument("--candidates", default=",".join(CANDIDATES),
                    help="the candidates to run, comma-separated (default: all)")
parser.add_argument("--quiet", action="store_true")
args = parser.parse_args()
unknown = sorted(set(args.candidates.split(",")) - set(CANDIDATES))
if unknown:
    sys.exit(f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
CANDIDATES = {name: CANDIDATES[name] for name in args.candidates.split(",")}


def best_epoch(cell: Path, domain: str) -> tuple:
    """The fine-tuning phase's checkpoint (the one tested): its epoch's validation loss and accuracy."""
    phase = f"without_{domain}_finetune"
    best = json.loads((cell / f"best_{phase}.json").read_text())
    with open(cell / f"history_{phase}.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if int(r["epoch"]) == best["epoch"])
    return float(row["val_loss"]), float(row["val_accuracy"])


root = Path(args.run_dir)
rows = []
for folder, (_, flags) in CANDIDATES.items():
    done = subprocess.run([sys.executable, "-m", "hybridvision.apps.cross_modal.train", "--data-dir", args.data_dir,
                           "--protocol", "domainbed", "--seeds", args.seeds, *flags, "--run-dir", str(root / folder),
                           "--quiet"], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"candidate {folder} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    cells = json.loads((root / folder / "metrics.json").read_text())["cells"]  # {domain: {seed: run folder}}
    for domain, by_seed in cells.items():
        for seed, cell in by_seed.items():
            test = json.loads(Path(cell, "metrics.json").read_text())["test"]["per_modality"][domain]["accuracy"]
            rows.append((folder, domain, seed, *best_epoch(Path(cell), domain), test))

print("Validation: 20% of each training domain (the three not held out); test: every image of the held-out one.\n")
for folder, (what, flags) in CANDIDATES.items():
    print(f"- `{folder}`: {what} ({' '.join(flags) or 'no extra flags'})")
print("\n| candidate | held out | seed | val loss | val accuracy | held-out test accuracy |\n|---|---|---:|---:|---:|---:|")
for folder, domain, seed, val_loss, val_acc, test in rows:
    print(f"| {folder} | {domain} | {seed} | {val_loss:.4f} | {val_acc:.4f} | {test:.4f} |")
print("\nMean over the held-out domains and seeds (the choice: the higher val accuracy):\n")
print("| candidate | val loss | val accuracy | held-out test accuracy |\n|---|---:|---:|---:|")
for folder in CANDIDATES:
    val_loss, val_acc, test = np.array([r[3:] for r in rows if r[0] == folder]).mean(axis=0)
    print(f"| {folder} | {val_loss:.4f} | {val_acc:.4f} | {test:.4f} |")
