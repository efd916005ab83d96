"""--covariate-lr-multiplier on a real image + covariates table: validation (and test) ROC AUC per model, value and seed.

    python docs/results/covariate_lr_compare.py --data-dir ../shared/data/ham10000_sample \
        --run-dir runs/results/attractiveness_covariate_lr

(`docs/results/regenerate.sh attractiveness_covariate_lr` runs it and stores its output.)

Trains `hybridvision attractiveness train` on the HAM10000 sample (target malignant; covariates age, sex,
body site) with EfficientNet-Lite0 at 96 px for 3 epochs (the settings of the stored covariates study),
late fusion and the hybrid at the last conv, multipliers 1, 10 and 100, seeds 0 and 1: one run folder
each under --run-dir; a finished run is read back, not trained again. Prints one row per run and the
mean over the seeds per (model, multiplier), validation first: the split the default was chosen on;
and, for late fusion, how far its covariate weights got: the largest |weight x multiplier| of the
head's covariate rows in the best checkpoint (they start at 0).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

DATA = ["--target", "malignant", "--covariates", "age,sex,localization"]
SETTINGS = ["--image-size", "96", "--epochs", "3", "--cache", "--export-anyway"]
MODELS, MULTIPLIERS, SEEDS = ("late_fusion", "hybrid"), (1, 10, 100), (0, 1)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-dir", default="../shared/data/ham10000_sample")
parser.add_argument("--run-dir", default="runs/results/attractiveness_covariate_lr")
parser.add_argument("--quiet", action="store_true")
args = parser.parse_args()


def covariate_weight(path, multiplier):
    """The largest effective weight of late fusion's covariate rows (the last rows of its head's kernel)."""
    import keras

    import hybridvision  # noqa: F401 - the suite's layers, for loading

    model = keras.saving.load_model(path, compile=False)
    width = model.get_layer("fusion").input[1].shape[-1]
    return float(abs(model.get_layer("target_fused").get_weights()[0][-width:]).max() * multiplier)


root = Path(args.run_dir)
rows = []
for seed in SEEDS:
    for model in MODELS:
        for multiplier in MULTIPLIERS:
            run = root / f"{model}_x{multiplier}_seed{seed}"
            if not (run / "metrics.json").exists():
                subprocess.run([sys.executable, "-m", "hybridvision.apps.attractiveness.train", "--data-dir", args.data_dir, *DATA, *SETTINGS,
                                "--model", model, "--covariate-lr-multiplier", str(multiplier), "--seed", str(seed),
                                "--run-dir", str(run), "--quiet"], check=True, capture_output=True)
            metrics = json.loads((run / "metrics.json").read_text())
            rows.append((model, multiplier, seed, metrics["val"]["roc_auc"], metrics["test"]["roc_auc"],
                         covariate_weight(run / "best.keras", multiplier) if model == "late_fusion" else None))

print("| model | multiplier | seed | val ROC AUC | test ROC AUC | largest covariate weight |\n|---|---:|---:|---:|---:|---:|")
for model, multiplier, seed, val, test, weight in rows:
    print(f"| {model} | {multiplier} | {seed} | {val:.4f} | {test:.4f} | {'-' if weight is None else f'{weight:.4f}'} |")
print("\nMean over the seeds:\n\n| model | multiplier | val ROC AUC | test ROC AUC |\n|---|---:|---:|---:|")
for model in MODELS:
    for multiplier in MULTIPLIERS:
        picked = [r for r in rows if r[0] == model and r[1] == multiplier]
        val, test = (np.mean([r[k] for r in picked]) for k in (3, 4))
        print(f"| {model} | {multiplier} | {val:.4f} | {test:.4f} |")
