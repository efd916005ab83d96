"""Trains the image-only CelebA baseline with the code that made attractiveness_study_lite0, on this machine.

    python docs/results/celeba_old_code_baseline.py --data-dir ../shared/data/celeba_sample \
        --run-dir runs/results/attractiveness_lite0_old_code

(`docs/results/regenerate.sh attractiveness_lite0_old_code` runs it and stores its table; it needs the git
history of this repository; 5 runs of 8-10 min on 2 cores.)

attractiveness_lite0_defaults trains the same baseline (Lite0, 224 px, seeds 0-4) with today's code; its
mean came out below the interval of the stored study, which was made at commit OLD_COMMIT in an earlier
session. celeba_path_check shows that both codes feed the same files, pixels, targets and covariates. This
script extracts the `common/` and `apps/` packages of OLD_COMMIT from git and runs that commit's own study
command, baseline only, with the same seeds, so that the old and the new code are compared on one machine,
and prints each run's per-epoch history.
"""

import argparse
import contextlib
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OLD_COMMIT = "98662ae"  # made docs/results/attractiveness_study_lite0
SEEDS = (0, 1, 2, 3, 4)
COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")  # the per-epoch columns both codes log


def epochs_of(history_csv) -> str:
    """A run's history.csv as one line: loss / accuracy / val_loss / val_accuracy per epoch, 4 decimals."""
    with open(history_csv, newline="") as file:
        return ", ".join(" / ".join(f"{float(r[key]):.4f}" for key in COLUMNS) for r in csv.DictReader(file))


@contextlib.contextmanager
def old_code_tree():
    """A temporary folder holding the `common/` and `apps/` packages of OLD_COMMIT, extracted from git."""
    archive = subprocess.run(["git", "archive", OLD_COMMIT, "common", "apps"], capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory() as old_code:
        subprocess.run(["tar", "-x", "-C", old_code], input=archive, check=True)
        yield old_code


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the CelebA sample (img_align_celeba/, list_attr_celeba.txt)")
    parser.add_argument("--run-dir", default="runs/results/attractiveness_lite0_old_code",
                        help="folder of the old study's runs and tables (finished seeds are read back)")
    parser.add_argument("--quiet", action="store_true", help="print only the table")
    args = parser.parse_args(argv)
    with old_code_tree() as old_code:
        command = [sys.executable, "-m", "apps.attractiveness.study", "--data-dir", str(Path(args.data_dir).resolve()),
                   "--cache", "--models", "baseline", "--covariate-sets", "Male", "--controls", "true",
                   "--seeds", ",".join(map(str, SEEDS)), "--run-dir", str(Path(args.run_dir).resolve())]
        if args.quiet:
            command.append("--quiet")
        print(f"code of commit {OLD_COMMIT}: python {' '.join(command[1:])}", flush=True)
        # Run inside the old code's folder: `python -m` puts the working directory first on the path.
        env = {**os.environ, "PYTHONPATH": old_code}
        subprocess.run(command, env=env, cwd=old_code, check=True)
    for seed in SEEDS:  # each run's epochs, to compare line by line with celeba_order_check
        epochs = epochs_of(Path(args.run_dir) / "cells" / "baseline" / f"seed{seed}" / "history.csv")
        print(f"seed {seed}: per epoch, loss / accuracy / val_loss / val_accuracy: {epochs}")


if __name__ == "__main__":
    main()
