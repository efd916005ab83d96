"""The CelebA baseline of today's code and of the code that made attractiveness_study_lite0, made repeatable.

    python docs/results/celeba_order_check.py --data-dir ../shared/data/celeba_sample \
        --run-dir runs/results/celeba_order_check

(`docs/results/regenerate.sh celeba_order_check` runs it and stores its output; it needs the git history of
this repository; 4 runs of 8-10 min on 2 cores.)

celeba_path_check shows that today's code and the code of commit OLD_COMMIT feed the same images, targets
and covariates. Two things still made their runs differ at one seed:

- the order in which the training rows are first drawn: the old code shuffled a
  `Dataset.from_tensor_slices` of the rows in a buffer, today's pipeline draws a permutation of row
  numbers (`hybridvision.common.data.pipeline.cached_images`);
- the random flips: the flip layer runs inside a parallel `Dataset.map` and draws from its seed generator
  in thread order, so even one code run twice at one seed parts after the first epoch (with the cache,
  the input pipeline then runs ahead of training).

This script removes both, and nothing else: at seeds 0 and 1 it trains the old code's baseline (its own
train command, extracted from git) and today's baseline (all defaults) with the training rows handed over
as a dataset (the old code's buffer shuffle), both under TensorFlow's op determinism (today's code:
`--deterministic`; the old code, which has no such flag: the same TensorFlow call before its command).
It prints both runs' per-epoch history and test accuracy and whether they are identical, every digit of
history.csv compared. A finished run is read back.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

# The same commit, its extraction from git and one line format for both codes' histories.
from celeba_old_code_baseline import COLUMNS, OLD_COMMIT, epochs_of, old_code_tree

SEEDS = (0, 1)
# The old code's train command, run after turning on op determinism (its flag did not exist yet).
DETERMINISTIC = ("import runpy, sys, tensorflow as tf; tf.config.experimental.enable_op_determinism(); "
                 "sys.argv[0] = 'train'; runpy.run_module('apps.attractiveness.train', run_name='__main__')")
# Today's code with the training rows drawn as the old code drew them (a dataset shuffled in a buffer of all of
# it, which `cached_images` takes as well), then its own train command.
OLD_ORDER = ("import sys, tensorflow as tf; import hybridvision.common.data.pipeline as p; rows = p.cached_images; "
             "p.cached_images = lambda columns, *a, **k: rows(tf.data.Dataset.from_tensor_slices(columns), *a, **k); "
             "from hybridvision.apps.attractiveness import train; train.main(sys.argv[1:])")


def history_of(run_dir: Path) -> list[tuple[str, ...]]:
    """history.csv's rows as the text of the columns both codes log: compared digit for digit."""
    with open(run_dir / "history.csv", newline="") as file:
        return [tuple(row[key] for key in COLUMNS) for row in csv.DictReader(file)]


def test_accuracy(run_dir: Path) -> float:
    """The run's test accuracy, to 4 decimals (the old code logs it in float32, today's code in float64)."""
    return round(float(json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"]), 4)


def train(code: str, args: list[str], run_dir: Path, cwd=None, env=None) -> None:
    """One run of `python -c code args` unless run_dir holds a finished one (its metrics.json)."""
    if not (run_dir / "metrics.json").exists():
        subprocess.run([sys.executable, "-c", code, *args, "--run-dir", str(run_dir)], cwd=cwd, env=env, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the CelebA sample (img_align_celeba/, list_attr_celeba.txt)")
    parser.add_argument("--run-dir", default="runs/results/celeba_order_check",
                        help="folder of the runs (old/seed<k>/, new/seed<k>/)")
    parser.add_argument("--quiet", action="store_true", help="print only the results")
    args = parser.parse_args(argv)
    runs = Path(args.run_dir).resolve()
    common = ["--data-dir", str(Path(args.data_dir).resolve()), "--cache", "--model", "baseline",
              *(["--quiet"] if args.quiet else [])]
    with old_code_tree() as old_code:
        env = {**os.environ, "PYTHONPATH": old_code}
        for seed in SEEDS:
            train(DETERMINISTIC, [*common, "--covariates", "", "--seed", str(seed)], runs / "old" / f"seed{seed}",
                  cwd=old_code, env=env)
            train(OLD_ORDER, [*common, "--deterministic", "--seed", str(seed)], runs / "new" / f"seed{seed}")
    print(f"both under op determinism, the training rows in the old code's order; per epoch, "
          f"{' / '.join(COLUMNS)}")
    for seed in SEEDS:
        old, new = runs / "old" / f"seed{seed}", runs / "new" / f"seed{seed}"
        for name, run_dir in ((f"code of {OLD_COMMIT}", old), ("today's code", new)):
            print(f"seed {seed}, {name}: test accuracy {test_accuracy(run_dir):.4f}; {epochs_of(run_dir / 'history.csv')}")
        same = history_of(old) == history_of(new) and test_accuracy(old) == test_accuracy(new)
        print(f"seed {seed}: every digit of the histories and the test accuracy "
              f"{'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
