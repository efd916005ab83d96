"""Feature-extraction speed with the pretrained EfficientNet-Lite0 backbone.

Run from the repository root:

    python -m benchmarks.feature_extraction [--data-dir DIR] [--json]

Times, side by side in one run, over the same image files (a class-folder
tree; default ../shared/data/pacs_small, else generated JPEGs), at 150x150
(the cross_modal default), batch 32:

- pipeline: `hybridvision.common.features.compute_features`, what the apps use: files
  decoded and resized in parallel by tf.data, then the extractor
  (ImageNet standardisation + Lite0 + global average pooling);
- bare: `model.predict` of the same extractor on the same images already
  decoded into one in-memory tensor: the model's own speed, the ceiling.

`pipeline_over_bare` (pipeline images/s / bare images/s) near 1 means the
input pipeline keeps up with the network. Each is timed in interleaved
rounds and its best round counts (least disturbed by other processes).
`--quick` shrinks everything to a smoke test of a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "pacs_small"


def image_files(root, limit):
    files = sorted(str(p) for p in Path(root).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise FileNotFoundError(f"no .jpg/.png images under {root}; pass --data-dir with a class-folder tree")
    return (files * (limit // len(files) + 1))[:limit]


def build_extractor(image_size, weights):
    import keras

    from hybridvision.common.backbones import build_backbone, preprocessing_layer

    inputs = keras.Input((image_size, image_size, 3))
    base = build_backbone("efficientnet_lite0", (image_size, image_size, 3), weights=weights, pooling="avg")
    return keras.Model(inputs, base(preprocessing_layer("efficientnet_lite0")(inputs)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="image tree (default: ../shared/data/pacs_small, else generated)")
    parser.add_argument("--images", type=int, default=640, help="images timed per way and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the best counts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--weights", default="imagenet", help="imagenet (offline, from the weight package) or none")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    parser.add_argument("--quick", action="store_true", help="tiny images and one short round: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds, args.batch_size, args.image_size = 16, 1, 8, 32

    from hybridvision.common.data.images import decode_image
    from hybridvision.common.features import compute_features

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_dir or (DEFAULT_DATA if DEFAULT_DATA.is_dir() else None)
        if root is None:
            from benchmarks.input_pipeline import make_jpegs

            root = make_jpegs(os.path.join(tmp, "jpegs"), classes=2, per_class=max(8, args.images // 4), size=96)
        files = image_files(root, args.images)
        size = (args.image_size, args.image_size)
        extractor = build_extractor(args.image_size, args.weights)
        tensor = np.stack([np.asarray(decode_image(f, size)) for f in files]).astype("float32")

        def pipeline():
            return compute_features(extractor, files, size, args.batch_size)

        def bare():
            return extractor.predict(tensor, batch_size=args.batch_size, verbose=0)

        # Warm-up (graph tracing) of both, and a check that they compute the same features.
        np.testing.assert_allclose(pipeline()[:4], bare()[:4], rtol=1e-3, atol=1e-3)
        best = {"pipeline": float("inf"), "bare": float("inf")}
        for _ in range(args.rounds):
            for name, fn in (("pipeline", pipeline), ("bare", bare)):
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    result = {
        "backbone": "efficientnet_lite0",
        "weights": args.weights,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "images": len(files),
        "pipeline_images_per_s": len(files) / best["pipeline"],
        "bare_predict_images_per_s": len(files) / best["bare"],
        "pipeline_over_bare": best["bare"] / best["pipeline"],
        "quick": bool(args.quick),
    }
    print(f"Lite0 features at {args.image_size} px, batch {args.batch_size}, {len(files)} images, best of "
          f"{args.rounds}: pipeline {result['pipeline_images_per_s']:.1f} img/s, bare predict "
          f"{result['bare_predict_images_per_s']:.1f} img/s -> pipeline / bare {result['pipeline_over_bare']:.2f}")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
