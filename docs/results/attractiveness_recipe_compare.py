"""attractiveness's recipe options against its defaults, compared on the validation split only.

    python docs/results/attractiveness_recipe_compare.py --data-dir ../shared/data/celeba_sample \
        --run-dir runs/results/attractiveness_recipe_val

(`docs/results/regenerate.sh attractiveness_recipe_val` runs it and stores its output.)

Trains `hybridvision attractiveness train --model baseline --covariates Male --cache` on the CelebA
sample (its seeded 1400/300/300 split) with the defaults and with one recipe option at a time
(CANDIDATES): one run folder per candidate and seed under --run-dir; a finished run is read back, not
trained again. Every candidate runs seed 0. A candidate whose seed-0 validation accuracy reaches the
defaults' also runs seeds 1 and 2 (and then so do the defaults): one seed of 300 faces cannot move a
default. The choice is the higher mean validation accuracy over the seeds both have; test accuracy is
printed for the record and chooses nothing.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SETTINGS = ["--model", "baseline", "--covariates", "Male", "--cache"]
CANDIDATES = {  # folder: (what it is, its flags)
    "default": ("the app's defaults: constant learning rate, no MixUp, no RandAugment", []),
    "cosine": ("cosine decay after one epoch of linear warm-up", ["--lr-schedule", "cosine", "--warmup-epochs", "1"]),
    "mixup": ("MixUp of the training batches, alpha 0.2", ["--mixup", "0.2"]),
    "randaugment": ("RandAugment, two operations per image", ["--randaugment", "2"]),
}
MORE_SEEDS = (1, 2)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-dir", default="../shared/data/celeba_sample")
parser.add_argument("--run-dir", default="runs/results/attractiveness_recipe_val")
parser.add_argument("--quiet", action="store_true")
args = parser.parse_args()
root = Path(args.run_dir)


def run(folder: str, seed: int) -> tuple:
    """(val accuracy, test accuracy) of one candidate and seed, trained unless its run folder has finished."""
    path = root / f"{folder}_seed{seed}"
    if not (path / "metrics.json").exists():
        done = subprocess.run([sys.executable, "-m", "hybridvision.apps.attractiveness.train", "--data-dir", args.data_dir,
                               *SETTINGS, *CANDIDATES[folder][1], "--seed", str(seed), "--run-dir", str(path),
                               "--quiet"], capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"candidate {folder}, seed {seed} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    metrics = json.loads((path / "metrics.json").read_text())
    return metrics["val"]["accuracy"], metrics["test"]["accuracy"]


results = {folder: {0: run(folder, 0)} for folder in CANDIDATES}
followed = [f for f in CANDIDATES if f != "default" and results[f][0][0] >= results["default"][0][0]]
if followed:
    for folder in ["default", *followed]:
        for seed in MORE_SEEDS:
            results[folder][seed] = run(folder, seed)

print("Validation: the 300 val faces of the seeded split; the test faces are printed, not used.\n")
for folder, (what, flags) in CANDIDATES.items():
    print(f"- `{folder}`: {what} ({' '.join(flags) or 'no extra flags'})")
print("\n| candidate | seed | val accuracy | test accuracy |\n|---|---:|---:|---:|")
for folder, by_seed in results.items():
    for seed, (val, test) in by_seed.items():
        print(f"| {folder} | {seed} | {val:.4f} | {test:.4f} |")
print("\nMean over the seeds each candidate ran, beside the defaults on the same seeds "
      "(the choice: the higher val accuracy):\n")
print("| candidate | seeds | val accuracy | test accuracy | defaults' val accuracy, same seeds |\n|---|---|---:|---:|---:|")
for folder, by_seed in results.items():
    val, test = np.mean(list(by_seed.values()), axis=0)
    base = np.mean([results["default"][s][0] for s in by_seed])
    print(f"| {folder} | {','.join(map(str, by_seed))} | {val:.4f} | {test:.4f} | {base:.4f} |")
