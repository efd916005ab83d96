"""Frozen Lite0 pooled features at several input sizes -> logistic regression (C chosen on val).

An ad-hoc settings check (docs/results/attractiveness_settings.md), run from the repository root:
    PYTHONPATH=. python docs/results/attractiveness_probe/probe.py 128,160,224 > output.txt
It writes the features to /tmp/f/feats<size>.npz.
Kept as the record of that check: it was written against the code of the time (top-level `apps` / `common`
packages and CelebA's own tf.data builder, both gone since) and no longer runs as it is.
"""
import sys
import time

import numpy as np
import tensorflow as tf
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from apps.attractiveness.config import AttractivenessConfig
from apps.attractiveness.train import load_tables
from common.backbones import build_backbone, preprocess
from common.data.celeba import make_dataset

cfg = AttractivenessConfig(data_dir="/work/shared/data/celeba_sample", covariates=[])
tables, note = load_tables(cfg)
print(note, flush=True)
for size in [int(s) for s in sys.argv[1].split(",")]:
    t = time.time()
    m = build_backbone("efficientnet_lite0", (size, size, 3), weights="imagenet", pooling="avg")
    feats, ys, males = {}, {}, {}
    for split in ("train", "val", "test"):
        for flip in ((False, True) if split == "train" else (False,)):
            ds = make_dataset(tables[split], "Attractive", None, (size, size), 64, shuffle=False)
            ds = ds.map(lambda x, y: (preprocess("efficientnet_lite0")(x), y))  # raw 0..255 images since the probe ran
            if flip:
                ds = ds.map(lambda x, y: (tf.reverse(x, [2]), y))
            f = m.predict(ds, verbose=0)
            feats[split + ("_flip" if flip else "")] = f
        ys[split] = tables[split]["Attractive"].to_numpy()
        males[split] = tables[split]["Male"].to_numpy()
    np.savez(f"/tmp/f/feats{size}.npz", **feats, **{f"y_{k}": v for k, v in ys.items()}, **{f"male_{k}": v for k, v in males.items()})
    print(f"size {size}: features in {time.time()-t:.0f}s", flush=True)
    for with_male in (False, True):
        for aug in (False, True):
            X = {s: feats[s] for s in ("train", "val", "test")}
            ytr = ys["train"]
            if aug:
                X["train"] = np.concatenate([feats["train"], feats["train_flip"]])
                ytr = np.concatenate([ytr, ytr])
            if with_male:
                mtr = np.concatenate([males["train"]] * (2 if aug else 1))
                X = {s: np.c_[X[s], (mtr if s == "train" else males[s]) * 3.0] for s in X}
            sc = StandardScaler().fit(X["train"])
            best = None
            for C in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0):
                clf = LogisticRegression(C=C, max_iter=3000).fit(sc.transform(X["train"]), ytr)
                va = clf.score(sc.transform(X["val"]), ys["val"])
                te = clf.score(sc.transform(X["test"]), ys["test"])
                if best is None or va > best[1]:
                    best = (C, va, te)
            print(f"size {size} male={with_male} flipaug={aug}: best C {best[0]} val {best[1]:.3f} test {best[2]:.3f}", flush=True)
