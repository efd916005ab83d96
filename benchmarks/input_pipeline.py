"""Input-pipeline speed: our tf.data + AffineAugmentation vs ImageDataGenerator.

Run from the repository root:

    python -m benchmarks.input_pipeline [--data-dir DIR] [--json]

All three pipelines read the same image files (a class-folder tree; default
../shared/data/pacs_small, else generated JPEGs), resize to 150x150 and
deliver batches of 32, in one run:

- ours: `make_dataset` (parallel decode, no cache) + `AffineAugmentation`
  with rotation 40, shifts 0.2, shear 0.2, zoom 0.2, horizontal flip,
  rescale 1/255, fill "nearest", bilinear;
- ImageDataGenerator (tf_keras): the same knobs, `flow_from_directory`
  with bilinear resizing, iterated in the calling thread as Keras 2's
  `fit` did without workers;
- decode ceiling: ours without augmentation (decode + resize only);
- chained Keras layers: ours with RandomRotation, RandomTranslation,
  RandomZoom and RandomFlip instead of the one fused warp (no shear, so it
  does a little less work).

Each pipeline is timed in several interleaved rounds, each on a fresh
iterator with its warm-up batches excluded; a pipeline's figure is its best
round, which is the least disturbed by other processes on a shared machine.
With `--json` the last line is one JSON object with
`speedup_vs_imagedatagenerator` (ours / IDG) and `fraction_of_decode_ceiling`
(ours / decode-only), plus the raw images/s.
tf_keras is a benchmark-only dependency: `pip install -r requirements-bench.txt`;
`--no-imagedatagenerator` runs without it (and without the speedup figure).
`--quick` shrinks everything to a smoke test of a few seconds.
"""

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

KNOBS = {
    "rotation_range": 40,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "shear_range": 0.2,
    "zoom_range": 0.2,
    "horizontal_flip": True,
    "rescale": 1 / 255,
    "fill_mode": "nearest",
}
DEFAULT_DATA = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "pacs_small"
)


def make_jpegs(root, classes=4, per_class=100, size=227, seed=0):
    """Writes smooth random JPEGs in `<root>/<class>/` (a stand-in for real photos)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = Path(root) / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            image = Image.fromarray(coarse).resize((size, size), Image.BILINEAR)
            image.save(folder / f"{i:04d}.jpg", quality=90)
    return root


def images_per_second(batches, num_images, warmup_batches):
    """Times pulling `num_images` from an iterator of (images, labels) batches."""
    for _ in range(warmup_batches):
        next(batches)
    seen = 0
    start = time.perf_counter()
    while seen < num_images:
        images, _ = next(batches)
        seen += len(images)
    return seen / (time.perf_counter() - start)


def chained_keras_layers():
    """The same knobs as Keras 3's separate preprocessing layers (less the shear)."""
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomRotation(
                KNOBS["rotation_range"] / 360, fill_mode="nearest", seed=0
            ),
            keras.layers.RandomTranslation(0.2, 0.2, fill_mode="nearest", seed=0),
            keras.layers.RandomZoom(0.2, 0.2, fill_mode="nearest", seed=0),
            keras.layers.RandomFlip("horizontal", seed=0),
            keras.layers.Rescaling(KNOBS["rescale"]),
        ]
    )


def ours(data_dir, image_size, batch_size, augment):
    """Returns a function that starts a fresh iterator over our pipeline.

    `augment`: None, "fused" (AffineAugmentation) or "chained" (Keras layers).
    """
    from hybridvision.common.data.affine_augment import AffineAugmentation
    from hybridvision.common.data.class_folders import make_dataset, read_class_folders

    layer = {
        None: None,
        "fused": lambda: AffineAugmentation(**KNOBS, seed=0),
        "chained": chained_keras_layers,
    }[augment]
    layer = layer() if layer else None
    dataset = make_dataset(
        read_class_folders(data_dir), image_size, batch_size, augment=layer, cache=False
    )
    return lambda: iter(dataset.repeat().as_numpy_iterator())


def image_data_generator(data_dir, image_size, batch_size):
    """Returns a function that iterates ImageDataGenerator.flow_from_directory."""
    from tf_keras.preprocessing.image import ImageDataGenerator

    flow = ImageDataGenerator(**KNOBS).flow_from_directory(
        str(data_dir),
        target_size=image_size,
        batch_size=batch_size,
        class_mode="sparse",
        interpolation="bilinear",
        seed=0,
    )
    return lambda: iter(flow)


def best_rates(pipelines, rounds, **timing):
    """Times every pipeline once per round, interleaved; returns each one's rates."""
    rates = {name: [] for name in pipelines}
    for _ in range(rounds):
        for name, start in pipelines.items():
            batches = start()
            rates[name].append(images_per_second(batches, **timing))
            # Stop its background prefetching before timing the next one.
            del batches
            gc.collect()
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir",
        help="class-folder tree (default: ../shared/data/pacs_small, else generated)",
    )
    parser.add_argument(
        "--images", type=int, default=960, help="images timed per pipeline and round"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved timing rounds; the best counts",
    )
    parser.add_argument("--warmup-batches", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument(
        "--json", action="store_true", help="end with one JSON line of results"
    )
    parser.add_argument(
        "--no-imagedatagenerator",
        action="store_true",
        help="skip the tf_keras ImageDataGenerator comparison (no speedup figure)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny images and one short round: a smoke test",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.rounds, args.warmup_batches = 32, 1, 1
        args.batch_size, args.image_size = 8, 32
    with_idg = not args.no_imagedatagenerator

    try:
        if with_idg:
            import tf_keras  # noqa: F401
    except ImportError:
        raise SystemExit(
            "This benchmark compares against tf_keras's ImageDataGenerator; install it with "
            "`pip install -r requirements-bench.txt` (or `pip install 'tf-keras>=2.18,<2.22'`), "
            "or pass --no-imagedatagenerator."
        ) from None

    with tempfile.TemporaryDirectory() as tmp:
        if args.data_dir:
            data_dir = Path(args.data_dir)
        elif DEFAULT_DATA.is_dir():
            data_dir = DEFAULT_DATA.resolve()
        else:
            per_class = 8 if args.quick else 100
            data_dir = make_jpegs(Path(tmp) / "jpegs", per_class=per_class)
        size = (args.image_size, args.image_size)
        timing = {"num_images": args.images, "warmup_batches": args.warmup_batches}
        pipelines = {
            "decode_only": ours(data_dir, size, args.batch_size, augment=None),
            "ours": ours(data_dir, size, args.batch_size, augment="fused"),
            "chained": ours(data_dir, size, args.batch_size, augment="chained"),
        }
        if with_idg:
            pipelines["idg"] = image_data_generator(data_dir, size, args.batch_size)
        rates = best_rates(pipelines, args.rounds, **timing)
    decode_only, augmented, chained = (
        max(rates[name]) for name in ("decode_only", "ours", "chained")
    )
    idg = max(rates["idg"]) if with_idg else None

    result = {
        "speedup_vs_imagedatagenerator": round(augmented / idg, 2) if idg else None,
        "fraction_of_decode_ceiling": round(augmented / decode_only, 3),
        "ours_augmented_images_per_s": round(augmented, 1),
        "imagedatagenerator_images_per_s": round(idg, 1) if idg else None,
        "decode_only_images_per_s": round(decode_only, 1),
        "speedup_vs_chained_keras_layers": round(augmented / chained, 2),
        "chained_keras_layers_images_per_s": round(chained, 1),
        "rounds_images_per_s": {
            name: [round(r, 1) for r in values] for name, values in rates.items()
        },
        "images_timed_per_round": args.images,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "cpu_cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "data_dir": str(data_dir)
        if args.data_dir or DEFAULT_DATA.is_dir()
        else "generated JPEGs",
    }
    print(f"ours (tf.data + AffineAugmentation):         {augmented:8.1f} images/s")
    if idg:
        print(f"ImageDataGenerator.flow_from_directory:      {idg:8.1f} images/s")
    print(f"decode-only ceiling (ours, no augmentation): {decode_only:8.1f} images/s")
    print(f"ours with chained Keras layers:              {chained:8.1f} images/s")
    print(
        f"speedup vs ImageDataGenerator {result['speedup_vs_imagedatagenerator']}x, "
        f"vs chained Keras layers {result['speedup_vs_chained_keras_layers']}x; "
        f"fraction of the decode ceiling {result['fraction_of_decode_ceiling']}"
    )
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
