"""Scale: cost per image and peak memory from 2,000 images to 200,000.

Run from the repository root:

    python -m benchmarks.scale [--sizes 2000,20000,200000] [--out DIR] [--json]

For every size N it writes N small synthetic JPEGs (one 16x16 image encoded
once and written N times, so generating stays cheap) in the real layouts:

- CelebA's official layout (`img_align_celeba/`, `list_attr_celeba.txt`,
  `list_eval_partition.txt`, 80/10/10 partitions), as the attractiveness app
  reads it;
- class folders `train/<class>/`, `val/<class>/` (hard links to the same
  files, 90/10), as orientation_light reads them;

then, in a fresh subprocess per size (so each size's peak memory is its own),
times per image, in one run:

- `annotations`: `read_celeba` and `read_class_folders` (train split);
- `decode_check_cold` / `_warm` / `_next_run`: `validate_images` over the
  CelebA images: first time, again in the same process, and in a new run
  (the in-process cache emptied, the cache kept on disk);
- `stat_files`: one `os.stat` per CelebA image, the floor of a next run's
  check (it stats each file for its (mtime, size) key): the file system's
  own cost, which grows with the number of files in a folder;
- `attractiveness_epoch` / `orientation_light_epoch`: one epoch of `fit`
  through each app's tf.data pipeline (`image_table.from_celeba` +
  `image_table.make_dataset`, target Attractive, images only;
  `class_folders.make_dataset`) with a tiny model, no cache, batch 32;
- `bare_fit`: the same tiny model's `fit` on one in-memory batch of the same
  shape, repeated (200 steps, best of 3): the model's step; `input_share_*` = (epoch - bare) / epoch
  is the part of a step the input pipeline costs;
- `predict`: `label_folder` over `img_align_celeba/` with the tiny model.

Then, in one more subprocess (`--app-images`, default 512; 0 skips it), each
app's training step with its default model (`APP_ARGS`, random weights) on
synthetic faces of CelebA's size (178x218): an epoch through the app's own
pipeline against bare `fit` on the same batches held in memory (`app_step`:
`ratio` = bare / app time per image, best of `TIMED_EPOCHS` each; `cpu_ratio`
the same in CPU seconds; and the pipeline's own cost per image without the model).

Peak memory is `ru_maxrss` of the child, after each phase (`rss_mb_after`)
and in all (`peak_rss_mb`). The JSON (`--json`: the last line) has per-image
costs in microseconds per size, `ratio_largest_over_smallest` per phase (1.0:
cost grows linearly with N) and the peak RSS per size. Each phase is timed
once per size (at large N one pass is long enough); on a shared machine the
figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IMAGE_SIZE = 16
BATCH = 32
BARE_STEPS = 200
CLASSES = ("left", "center", "right")
APPS = ("attractiveness", "orientation_light")
# The app-step measurement: each app's own defaults (its default model family) from random weights:
# attractiveness: the hybrid EfficientNet-Lite0 with the Male covariate at 128 px (its size without
# pretrained weights), batch 32, random flips, no cache; orientation_light: the from_scratch CNN at
# 64 px, batch 16, in-memory cache. Images: CelebA's aligned size, JPEG-decoded and resized every epoch.
APP_IMAGES = 512
APP_ARGS = {"attractiveness": ["--weights", "none"], "orientation_light": []}
CELEBA_SIZE = (178, 218)  # (width, height) of img_align_celeba's faces
TIMED_EPOCHS = 3
PHASES = ("read_celeba", "read_class_folders", "decode_check_cold", "decode_check_warm", "decode_check_next_run",
          "stat_files", "attractiveness_epoch", "orientation_light_epoch", "bare_fit", "predict")


def jpeg_bytes(size=(IMAGE_SIZE, IMAGE_SIZE), seed=0) -> bytes:
    """One JPEG of `size` (width, height): a coarse random pattern, smoothly enlarged."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (16, 16, 3) if max(size) > 32 else (4, 4, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(coarse).resize(size, Image.BILINEAR).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def generate(root, n, seed=0, size=(IMAGE_SIZE, IMAGE_SIZE)):
    """N images of `size` in CelebA's layout under `root/celeba` and as class folders under `root/folders`."""
    from hybridvision.common.data.names import CELEBA_ATTRIBUTE_NAMES

    root = Path(root)
    celeba, folders = root / "celeba", root / "folders"
    images = celeba / "img_align_celeba"
    images.mkdir(parents=True)
    data = jpeg_bytes(size)

    def name(i):  # made when written: the benchmark holds no list of N names
        return f"{i + 1:06d}.jpg"

    for i in range(n):
        with open(images / name(i), "wb") as f:
            f.write(data)
    rng = np.random.default_rng(seed)
    with open(celeba / "list_attr_celeba.txt", "w") as f:
        f.write(f"{n}\n{' '.join(CELEBA_ATTRIBUTE_NAMES)}\n")
        for start in range(0, n, 10_000):  # in chunks: the benchmark's own memory stays flat
            values = np.where(rng.random((min(10_000, n - start), len(CELEBA_ATTRIBUTE_NAMES))) < 0.5, " 1", "-1")
            f.writelines(f"{name(start + i)} {' '.join(row)}\n" for i, row in enumerate(values))
    with open(celeba / "list_eval_partition.txt", "w") as f:
        f.writelines(f"{name(i)} {0 if i < 0.8 * n else 1 if i < 0.9 * n else 2}\n" for i in range(n))
    for split in ("train", "val"):
        for class_name in CLASSES:
            (folders / split / class_name).mkdir(parents=True)
    for i in range(n):
        split = "train" if i < 0.9 * n else "val"
        os.link(images / name(i), folders / split / CLASSES[i % len(CLASSES)] / name(i))
    return celeba, folders


def tiny_model(classes):
    import keras

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if classes == 2:
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
        model.compile("sgd", "binary_crossentropy")
    else:
        model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
        model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def peak_rss_mb() -> float:
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return round(kib / 1024, 1)


def fit_seconds(model, dataset) -> float:
    model.fit(dataset.take(2), epochs=1, verbose=0)  # traces the train step once (not timed)
    start = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0)
    return time.perf_counter() - start


def measure(n, out) -> dict:
    """Everything for one size, in this process (the child)."""
    import logging

    logging.getLogger("hybridvision").setLevel(logging.ERROR)
    os.environ["HYBRIDVISION_CACHE_DIR"] = str(Path(out) / "cache")
    import tensorflow as tf

    from hybridvision.common.data import class_folders, images
    from hybridvision.common.data.celeba import read_celeba
    from hybridvision.common.data.image_table import from_celeba
    from hybridvision.common.data.image_table import make_dataset as table_dataset
    from hybridvision.common.predict import label_folder

    seconds, rss = {}, {"start": peak_rss_mb()}

    def timed(phase, function):
        start = time.perf_counter()
        result = function()
        seconds[phase] = time.perf_counter() - start
        rss[phase] = peak_rss_mb()
        return result

    start = time.perf_counter()
    celeba, folders = generate(Path(out) / "data", n)
    generate_s = time.perf_counter() - start
    rss["generate"] = peak_rss_mb()

    table = timed("read_celeba", lambda: read_celeba(celeba))
    timed("read_class_folders", lambda: class_folders.read_class_folders(folders, "train"))
    paths = list(table["path"])
    images._VALIDATION_CACHE.clear()
    good, _ = timed("decode_check_cold", lambda: images.validate_images(paths))
    assert len(good) == n, (len(good), n)
    timed("decode_check_warm", lambda: images.validate_images(paths))
    images._VALIDATION_CACHE.clear()  # a new run: only what is kept on disk is left
    timed("decode_check_next_run", lambda: images.validate_images(paths))
    # The floor of a next run's check: one os.stat per file (its (mtime, size) key), nothing of the suite's.
    timed("stat_files", lambda: sum(1 for path in paths if os.stat(path)))
    paths = good = table = None  # the benchmark's own lists and table of N rows are not kept for the phases below

    def attractiveness():
        tables, _, _ = from_celeba(celeba, "Attractive", [], seed=0)
        ds = table_dataset(tables["train"], None, 2, (IMAGE_SIZE, IMAGE_SIZE), BATCH, shuffle=True, seed=0)
        return fit_seconds(tiny_model(2), ds), len(tables["train"])

    seconds_fit, n_attr = timed("attractiveness_epoch", attractiveness)
    seconds["attractiveness_epoch"] = seconds_fit

    def orientation():
        train = class_folders.read_class_folders(folders, "train")
        ds = class_folders.make_dataset(train, (IMAGE_SIZE, IMAGE_SIZE), BATCH, shuffle=True, seed=0,
                                        cache=False, validate=False)
        return fit_seconds(tiny_model(3), ds), len(train)

    seconds_fit, n_orient = timed("orientation_light_epoch", orientation)
    seconds["orientation_light_epoch"] = seconds_fit

    def bare():
        x = tf.random.uniform((BATCH, IMAGE_SIZE, IMAGE_SIZE, 3), 0, 255)
        y = tf.zeros((BATCH,), tf.int32)
        ds = tf.data.Dataset.from_tensors((x, y)).repeat(BARE_STEPS)
        model = tiny_model(3)
        return min(fit_seconds(model, ds) for _ in range(3))  # short: the least disturbed of 3

    seconds["bare_fit"] = timed("bare_fit", bare)

    def predict():
        return label_folder(tiny_model(3), celeba / "img_align_celeba", Path(out) / "labels.csv", list(CLASSES),
                            batch_size=64, progress=False)

    summary = timed("predict", predict)
    assert summary["labelled"] == n, summary

    counts = {phase: n for phase in PHASES}
    counts.update(read_class_folders=n_orient, attractiveness_epoch=n_attr, orientation_light_epoch=n_orient,
                  bare_fit=BARE_STEPS * BATCH)
    per_image = {phase: round(1e6 * seconds[phase] / counts[phase], 2) for phase in PHASES}
    share = {}
    for app in ("attractiveness", "orientation_light"):
        epoch = per_image[f"{app}_epoch"]
        share[app] = round(max(0.0, epoch - per_image["bare_fit"]) / epoch, 3)
    return {
        "images": n,
        "generate_s": round(generate_s, 2),
        "seconds": {phase: round(s, 3) for phase, s in seconds.items()},
        "us_per_image": per_image,
        "input_share_of_step": share,
        "rss_mb_after": rss,
        "peak_rss_mb": peak_rss_mb(),
    }


def app_model_and_data(app, celeba, folders, extra=()):
    """`(compiled model, train dataset)` as the app's `train` builds them, with `APP_ARGS[app]` and `extra`."""
    from hybridvision.common.config import parse_config

    if app == "attractiveness":
        from hybridvision.apps.attractiveness.config import AttractivenessConfig, train_parser
        from hybridvision.apps.attractiveness.data import load_data, make_datasets
        from hybridvision.apps.attractiveness.models import build_coded_model, compile_model
        from hybridvision.common.covariate_coding import fit_coding

        cfg = parse_config(AttractivenessConfig, ["--data-dir", str(celeba), *APP_ARGS[app], *extra],
                           parser=train_parser())
        tables, _, data = load_data(cfg)
        coding = fit_coding(tables["train"], data.covariates, data.kinds) if cfg.model != "baseline" else None
        dataset = make_datasets(cfg, tables, coding, 2, cfg.batch_size)["train"]
        return compile_model(build_coded_model(cfg, coding, 2), cfg, cfg.learning_rate, 2), dataset, cfg
    from hybridvision.apps.orientation_light.config import OrientationLightConfig, train_parser
    from hybridvision.apps.orientation_light.data import load_tables, make_datasets
    from hybridvision.apps.orientation_light.models import build_model, compile_model

    cfg = parse_config(OrientationLightConfig, ["--data-dir", str(folders), *APP_ARGS[app], *extra],
                       parser=train_parser())
    tables, class_names, _ = load_tables(cfg)
    dataset = make_datasets(cfg, tables, class_names, cfg.batch_size)["train"]
    return compile_model(build_model(cfg, len(class_names)), cfg), dataset, cfg


def step_ratio(model, app_dataset) -> dict:
    """An epoch through the app's pipeline vs bare `fit` on the same batches held in memory.

    One untimed epoch first (traces the step, fills an in-memory cache where the app keeps one); then
    `TIMED_EPOCHS` of each, alternating, best of each. `ratio` = bare / app time per image (1.0: the
    pipeline costs the step nothing); `cpu_ratio` the same in the process's CPU seconds (all its threads:
    the pipeline's work included), which other jobs on a shared machine disturb far less than the
    clock; then one pass of the pipeline alone (its own cost per image).
    """
    import tensorflow as tf

    model.fit(app_dataset, epochs=1, verbose=0)
    batches = list(app_dataset)  # one epoch's batches, decoded and augmented, now in memory
    app_images = sum(int(tf.nest.flatten(b)[0].shape[0]) for b in batches)
    size = int(tf.nest.flatten(batches[0])[0].shape[0])
    full = [b for b in batches if int(tf.nest.flatten(b)[0].shape[0]) == size]  # the same shape every step
    in_memory = tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(lambda *t: tf.stack(t), *full))
    in_memory = in_memory.prefetch(tf.data.AUTOTUNE)
    model.fit(in_memory.take(1), epochs=1, verbose=0)  # traces the step for this input (not timed)
    app_s, bare_s, app_cpu, bare_cpu = [], [], [], []
    for _ in range(TIMED_EPOCHS):
        for times, cpu, dataset in ((app_s, app_cpu, app_dataset), (bare_s, bare_cpu, in_memory)):
            start, start_cpu = time.perf_counter(), time.process_time()
            model.fit(dataset, epochs=1, verbose=0)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    start = time.perf_counter()
    for _ in app_dataset:  # the pipeline alone, no model: its own cost per image
        pass
    alone_us = 1e6 * (time.perf_counter() - start) / app_images
    app_us, bare_us = 1e6 * min(app_s) / app_images, 1e6 * min(bare_s) / (len(full) * size)
    return {"images": app_images, "batch_size": size, "us_per_image_app": round(app_us, 1),
            "us_per_image_bare": round(bare_us, 1), "us_per_image_pipeline_alone": round(alone_us, 1),
            "ratio": round(bare_us / app_us, 3),
            "cpu_ratio": round((min(bare_cpu) / (len(full) * size)) / (min(app_cpu) / app_images), 3)}


def app_steps(n, out, extra=()) -> dict:
    """`step_ratio` of each app's default model and pipeline on `n` synthetic CelebA-sized faces."""
    import logging

    logging.getLogger("hybridvision").setLevel(logging.ERROR)
    os.environ["HYBRIDVISION_CACHE_DIR"] = str(Path(out) / "cache")
    celeba, folders = generate(Path(out) / "data", n, size=CELEBA_SIZE)
    result = {}
    for app in APPS:
        model, dataset, cfg = app_model_and_data(app, celeba, folders, extra)
        result[app] = {"model": getattr(cfg, "backbone", cfg.model) if app == "attractiveness" else cfg.model,
                       "image_size": cfg.image_size, "cache": cfg.cache, **step_ratio(model, dataset)}
    return result


def run_child(n, out, flag="--child") -> dict:
    """`measure(n)` (or `app_steps(n)` with `--app-child`) in a fresh interpreter: each size's peak memory is its own."""
    command = [sys.executable, "-m", "benchmarks.scale", flag, str(n), "--out", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode:
        raise SystemExit(f"size {n} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(results) -> dict:
    """Per-image ratios largest/smallest size per phase, the peaks, the shares."""
    small, large = results[0], results[-1]
    ratios = {phase: round(large["us_per_image"][phase] / small["us_per_image"][phase], 3)
              if small["us_per_image"][phase] > 0 else None for phase in PHASES}
    return {
        "sizes": [r["images"] for r in results],
        "ratio_largest_over_smallest": ratios,
        "worst_ratio": max((v, k) for k, v in ratios.items() if v is not None and k != "decode_check_warm"),
        "peak_rss_mb": {str(r["images"]): r["peak_rss_mb"] for r in results},
        "peak_rss_growth_mb": round(large["peak_rss_mb"] - small["peak_rss_mb"], 1),
        "input_share_of_step": {str(r["images"]): r["input_share_of_step"] for r in results},
        "us_per_image": {str(r["images"]): r["us_per_image"] for r in results},
        "per_size": results,
        "image_size": IMAGE_SIZE,
        "batch_size": BATCH,
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2000,20000,200000", help="comma-separated image counts")
    parser.add_argument("--out", help="folder for the generated images (default: a temporary folder, removed)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    parser.add_argument("--app-images", type=int, default=APP_IMAGES,
                        help=f"images of the app-step measurement (default {APP_IMAGES}; 0: skip it)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--app-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.out)))
        return None
    if args.app_child:
        print(json.dumps(app_steps(args.app_child, args.out)))
        return None
    try:
        sizes = [int(v) for v in args.sizes.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--sizes {args.sizes!r}: give comma-separated image counts, e.g. 2000,20000") from None
    if not sizes or min(sizes) < 10:
        raise SystemExit(f"--sizes {args.sizes!r}: give at least one count of 10 images or more")
    sizes = sorted(sizes)
    results = []
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for n in sizes:
            folder = Path(tmp) / str(n)
            results.append(run_child(n, folder))
            shutil.rmtree(folder, ignore_errors=True)
            r = results[-1]
            print(f"N={n}: " + ", ".join(f"{k} {v:.1f} us" for k, v in r["us_per_image"].items())
                  + f"; peak RSS {r['peak_rss_mb']} MB", flush=True)
        if args.app_images:
            folder = Path(tmp) / "app_step"
            steps = run_child(args.app_images, folder, flag="--app-child")
            shutil.rmtree(folder, ignore_errors=True)
            for app, r in steps.items():
                print(f"app step {app} ({r['model']}, {r['image_size']} px, batch {r['batch_size']}, "
                      f"cache {r['cache']}, {r['images']} images): {r['us_per_image_app']} us per image through "
                      f"the app's pipeline, {r['us_per_image_bare']} us bare, {r['us_per_image_pipeline_alone']} us the "
                      f"pipeline alone; bare / app {r['ratio']} (CPU seconds: {r['cpu_ratio']})", flush=True)
    result = summarize(results)
    if args.app_images:
        result["app_step"] = steps
    print("per image, largest over smallest: "
          + ", ".join(f"{k} {v}" for k, v in result["ratio_largest_over_smallest"].items()))
    print("peak RSS MB: " + ", ".join(f"{k}: {v}" for k, v in result["peak_rss_mb"].items()))
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
