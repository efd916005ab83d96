"""Does today's CelebA path feed the models the same data as the code that made attractiveness_study_lite0?

    python docs/results/celeba_path_check.py --data-dir ../shared/data/celeba_sample \
        --run-dir runs/results/celeba_path_check

(`docs/results/regenerate.sh celeba_path_check` runs it and stores its output; it needs the git history
of this repository.)

The stored five-seed study attractiveness_study_lite0 was made at commit OLD_COMMIT, when CelebA had a
reader and a tf.data pipeline of its own. Today CelebA is read as a table (`from_celeba`) and fed by the
pipeline of every image + covariates table. This script extracts the old `common/` package from git,
builds the train, val and test splits of the sample with it (no shuffle, 224 px, the target Attractive and
the covariate Male), builds the same splits with today's code, and says whether the files, their order,
the decoded pixels, the targets and the covariate values are equal. Training itself is not compared here:
it draws other batches today (the shuffle changed) and does not repeat exactly on a CPU.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

OLD_COMMIT = "98662ae"  # made docs/results/attractiveness_study_lite0
SPLITS = ("train", "val", "test")
SIZE = (224, 224)

# Runs in a subprocess with the old `common/` package first on the path.
OLD_READER = f"""
import sys, numpy as np
from common.data.celeba import read_celeba, split_partitions, make_dataset
tables, note = split_partitions(read_celeba(sys.argv[1]), seed=0)
for name in {SPLITS!r}:
    ds = make_dataset(tables[name], "Attractive", ["Male"], image_size={SIZE!r}, batch_size=100, shuffle=False)
    xs, cs, ys = [], [], []
    for (x, c), y in ds:
        xs.append(x.numpy()); cs.append(c.numpy()); ys.append(y.numpy())
    names = [p.split("/")[-1] for p in tables[name]["path"].astype(str)]
    np.savez(f"{{sys.argv[2]}}/old_{{name}}.npz", x=np.concatenate(xs), c=np.concatenate(cs),
             y=np.concatenate(ys), names=np.array(names))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the CelebA sample (img_align_celeba/, list_attr_celeba.txt)")
    parser.add_argument("--run-dir", default="runs/results/celeba_path_check", help="folder for the old code and arrays")
    parser.add_argument("--quiet", action="store_true", help="(accepted for regenerate.sh; prints the same)")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    old_code = run_dir / "old_code"
    old_code.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", OLD_COMMIT, "common"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
    # Run inside the old code's folder: `python -c` puts the working directory first on the path.
    env = {**os.environ, "PYTHONPATH": str(old_code.resolve())}
    subprocess.run([sys.executable, "-c", OLD_READER, str(Path(args.data_dir).resolve()), str(run_dir.resolve())],
                   env=env, cwd=old_code, check=True)

    from hybridvision.common.data.image_table import from_celeba, make_dataset

    tables, note, _ = from_celeba(args.data_dir, "Attractive", ["Male"], seed=0)
    print(f"today's split: {note}")
    print(f"old code: commit {OLD_COMMIT} (common/data/celeba.py); today's: hybridvision.common.data.image_table")
    for name in SPLITS:
        old = np.load(run_dir / f"old_{name}.npz")
        xs, ys = [], []
        for x, y in make_dataset(tables[name], image_size=SIZE, batch_size=100, shuffle=False):
            xs.append(x.numpy())
            ys.append(y.numpy())
        x, y = np.concatenate(xs), np.concatenate(ys)
        names = [p.split("/")[-1] for p in tables[name]["path"].astype(str)]
        male = np.array([float(v) for v in tables[name]["Male"]], dtype="float32").reshape(-1, 1)
        print(f"{name}: {len(y)} images (old: {len(old['y'])}); same files in the same order: "
              f"{names == list(old['names'])}; pixels equal: {np.array_equal(x, old['x'])}; targets equal: "
              f"{np.array_equal(y, old['y'])}; Male equal: {np.array_equal(male, old['c'])}")


if __name__ == "__main__":
    main()
