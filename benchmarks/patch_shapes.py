"""Patch-phase training speed: square patches against patches that keep their shape (bucketed batches).

    python -m benchmarks.patch_shapes --data-dir ../shared/data/voc_sample --image-size 128 --json
    python -m benchmarks.patch_shapes --quick --json       # tiny SYNTHETIC data, small backbone

For each `--patch-shape` (square: every crop resized to the `--image-size`
square; keep: own aspect ratio and size, longest side at most
`--image-size`, batches of one size bucket) it builds the app's models, runs
one untimed warm-up epoch of the patch model (tracing every batch shape and
filling the decoded-patch cache), then times `--epochs` epochs of
`patch_model.fit` over the train patches, the two shapes' epochs
alternating so that a busy machine slows both alike. Reports train patches
per second (median epoch), batches per epoch and mean pixels per patch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

SHAPES = ("square", "keep")


def measure(data_dir=None, backbone="efficientnet_lite0", image_size=128, batch_size=16, epochs=3, min_patch=64,
            patch_bucket=32, pooling="spp", patch_cache=None, quick=False) -> dict:
    import keras

    from hybridvision.apps.patch_training.config import PatchTrainingConfig
    from hybridvision.apps.patch_training.models import build_models, compile_models
    from hybridvision.apps.patch_training.train import load_data, patch_datasets, shape_summary
    from hybridvision.common.data.voc import cache_patches, patch_table

    base = PatchTrainingConfig(data_dir=data_dir, backbone=backbone, image_size=image_size, batch_size=batch_size,
                               min_patch=min_patch, patch_bucket=patch_bucket, patch_pooling=pooling,
                               patch_cache=patch_cache, cache=True, quiet=True)
    splits, _ = load_data(base)
    patches = {s: cache_patches(patch_table(splits[s][1], base.min_patch), base.patch_cache) for s in ("train", "val")}
    n = len(patches["train"])
    models, datasets, results = {}, {}, {}
    for shape in SHAPES:
        cfg = dataclasses.replace(base, patch_shape=shape)
        keras.utils.set_random_seed(0)
        full, patch = build_models(cfg.backbone, cfg.image_size, cfg.weights, cfg.patch_pooling, cfg.patch_hidden,
                                   cfg.dropout, patch_shape=shape)
        compile_models(full, patch, [1.0] * 20, cfg.learning_rate, cfg.optimizer, cfg.momentum)
        train, _ = patch_datasets(cfg, patches, cfg.batch_size)
        start = time.perf_counter()
        patch.fit(train, epochs=1, verbose=0)  # warm-up: traces each shape, fills the cache
        models[shape], datasets[shape] = patch, train
        results[shape] = {"warmup_seconds": time.perf_counter() - start, "batches": int(train.cardinality()),
                          "epoch_seconds": [], **shape_summary(cfg, patches["train"])}
    for _ in range(epochs):
        for shape in SHAPES:
            start = time.perf_counter()
            models[shape].fit(datasets[shape], epochs=1, verbose=0)
            results[shape]["epoch_seconds"].append(time.perf_counter() - start)
    for r in results.values():
        r["median_epoch_seconds"] = statistics.median(r["epoch_seconds"])
        r["patches_per_second"] = n / r["median_epoch_seconds"]
    return {
        "settings": {"data_dir": data_dir or "SYNTHETIC demo", "backbone": base.backbone, "image_size": image_size,
                     "batch_size": batch_size, "epochs_timed": epochs, "train_patches": n, "pooling": pooling,
                     "patch_bucket": patch_bucket, "min_patch": min_patch},
        "square": results["square"], "keep": results["keep"],
        "keep_over_square_speed": results["keep"]["patches_per_second"] / results["square"]["patches_per_second"],
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.patch_shapes", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="VOC folder (default: the SYNTHETIC demo data)")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per shape")
    parser.add_argument("--min-patch", type=int, default=64)
    parser.add_argument("--patch-cache", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny SYNTHETIC data, small backbone, 32 px: a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    kwargs = dict(data_dir=args.data_dir, backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size,
                  epochs=args.epochs, min_patch=args.min_patch, patch_cache=args.patch_cache)
    if args.quick:
        import tempfile

        from hybridvision.common.data.demo import generate

        # Its own folder: the shared demo data (.cache/demo_data) stays at the demo scale.
        tiny = generate("voc", Path(tempfile.mkdtemp(prefix="patch_shapes_")) / "voc", scale="tiny") / "VOC2012"
        kwargs.update(data_dir=args.data_dir or str(tiny), backbone="small", image_size=32,
                      batch_size=4, epochs=1, min_patch=16, patch_bucket=16)
    result = measure(**kwargs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for shape in SHAPES:
            r = result[shape]
            print(f"{shape}: {r['patches_per_second']:.1f} patches/s (median of {len(r['epoch_seconds'])} epochs), "
                  f"{r['batches']} batches, {r['mean_pixels']:.0f} px per patch")
        print(f"keep / square speed: {result['keep_over_square_speed']:.2f}")
    return result


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
