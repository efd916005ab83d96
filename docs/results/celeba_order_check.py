"""Today's CelebA baseline with the training images drawn in the order of the code that made attractiveness_study_lite0.

    python docs/results/celeba_order_check.py --data-dir ../shared/data/celeba_sample \
        --run-dir runs/results/celeba_order_check

(`docs/results/regenerate.sh celeba_order_check` runs it and stores its output; 2 runs of 8-10 min on 2 cores.)

celeba_path_check shows that today's code and the code of commit 98662ae feed the same images, targets and
covariates; attractiveness_lite0_old_code trains that commit's baseline on this machine. One difference is
left in training: the order in which the training rows are first drawn. The old code shuffled a
`Dataset.from_tensor_slices` of the rows in a buffer; today's pipeline draws a permutation of row numbers
(`hybridvision.common.data.pipeline.cached_images`). This script trains today's baseline (all defaults,
seeds 0 and 1; a finished run is read back) with the rows handed over as a dataset, which takes the buffer
shuffle of the old code, and prints each run's per-epoch history, to compare line by line with the old
code's runs.
"""

import argparse
import json
from pathlib import Path

from celeba_old_code_baseline import epochs_of  # the same line format as the old code's runs

SEEDS = (0, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the CelebA sample (img_align_celeba/, list_attr_celeba.txt)")
    parser.add_argument("--run-dir", default="runs/results/celeba_order_check", help="folder of the runs (seed<k>/)")
    parser.add_argument("--quiet", action="store_true", help="print only the results")
    args = parser.parse_args(argv)

    import tensorflow as tf

    import hybridvision.common.data.pipeline as pipeline
    from hybridvision.apps.attractiveness import train

    rows_in_order = pipeline.cached_images

    def rows_as_a_dataset(columns, *rest, **options):
        # A dataset of known length is shuffled in a buffer of all of it: the old code's order.
        return rows_in_order(tf.data.Dataset.from_tensor_slices(columns), *rest, **options)

    pipeline.cached_images = rows_as_a_dataset
    print("today's code, training rows in the old code's order (Dataset.from_tensor_slices + shuffle)")
    for seed in SEEDS:
        run_dir = Path(args.run_dir) / f"seed{seed}"
        if (run_dir / "metrics.json").exists():  # a finished run is read back
            metrics = json.loads((run_dir / "metrics.json").read_text())
        else:
            metrics = train.main(["--data-dir", args.data_dir, "--cache", "--model", "baseline", "--seed", str(seed),
                                  "--run-dir", str(run_dir), *(["--quiet"] if args.quiet else [])])
        epochs = epochs_of(run_dir / "history.csv")
        print(f"seed {seed}: test accuracy {metrics['test']['accuracy']:.4f}; per epoch, loss / accuracy / val_loss / "
              f"val_accuracy: {epochs}")


if __name__ == "__main__":
    main()
