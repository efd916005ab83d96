"""GPU figures in one run: layer, app training step and input pipeline (TensorFlow backend).

Run from the repository root on a machine with an NVIDIA GPU:

    python -m benchmarks.gpu [--out gpu.json]        # or: make bench-gpu
    python -m benchmarks.gpu --cpu-smoke             # a tiny dry run on the CPU (what the tests run)

Without a GPU (and without `--cpu-smoke`) it exits with status 2 and one
line saying so. It measures, on the first GPU:

- `layer`: one train step (forward + backward: gradients with respect to the
  weights and the input, as for a layer inside a network) of
  `HybridConv2D` (`implementation="auto"`, the batch-folded grouped
  convolution on a GPU) and of a plain `Conv2D` of the same shape (batch 64,
  64x64x64 -> 64 channels, 3x3, "same", 3 covariates), each as a
  `tf.function` without and with XLA (`jit_compile`), in float32 and
  under `mixed_float16`: median milliseconds, and hybrid / conv ratios.
- `app_step`: images/s of the training step of orientation_light's
  from_scratch model (`model.fit` on batches already in memory, batch 128,
  64x64 images, 3 classes), with `--mixed-precision off` and
  `mixed_float16`, set up as the app does (`hybridvision.common.distribute.Distribution`,
  the app's `build_model`/`compile_model`).
- `input_pipeline`: images/s that `hybridvision.common.data.class_folders.make_dataset`
  delivers alone (generated JPEGs, decoded and resized to 64x64, the app's
  affine augmentation), without and with the in-memory cache the app uses,
  against the fastest training step above: `pipeline_over_step` < 1 means
  the GPU would wait for the input; and images/s of `model.fit` fed by the
  cached pipeline (`end_to_end`).

The last line of stdout is one JSON object with all of it plus the device's
name, TensorFlow's version and the sizes used. Figures are medians over
timed rounds after warm-up calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NO_GPU = ("benchmarks.gpu: no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty); "
          "run it on a machine with an NVIDIA GPU and TensorFlow's CUDA build (see the README's GPU install), "
          "or pass --cpu-smoke for a tiny dry run on the CPU")

SIZES = {
    "gpu": dict(batch=64, size=64, channels=64, filters=64, covariates=3, layer_rounds=20, warmup=5,
                app_batch=128, app_image=64, app_steps=50, pipeline_images=3000, jpeg_size=128),
    "smoke": dict(batch=2, size=8, channels=4, filters=4, covariates=2, layer_rounds=2, warmup=1,
                  app_batch=4, app_image=16, app_steps=1, pipeline_images=24, jpeg_size=32, dense_units=8),
}
POLICIES = ("float32", "mixed_float16")


def gpu_name() -> str | None:
    """The first GPU's name, or None when TensorFlow sees none."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    try:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name") or gpus[0].name
    except (RuntimeError, ValueError):
        return gpus[0].name


def _median_ms(step, rounds: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def layer_step_ms(kind: str, jit: bool, policy: str, s: dict) -> float:
    """Median ms of one forward + backward step of `kind` ("hybrid" or "conv")."""
    import keras
    import numpy as np
    import tensorflow as tf

    from hybridvision.common.layers import HybridConv2D

    keras.mixed_precision.set_global_policy(policy)
    try:
        rng = np.random.default_rng(0)
        images = tf.constant(rng.normal(size=(s["batch"], s["size"], s["size"], s["channels"])), tf.float32)
        covariates = tf.constant(rng.normal(size=(s["batch"], s["covariates"])), tf.float32)
        if kind == "hybrid":
            layer = HybridConv2D(s["filters"], 3, s["covariates"], padding="same", covariate_initializer="glorot_uniform")
            layer([images, covariates])
        else:
            layer = keras.layers.Conv2D(s["filters"], 3, padding="same")
            layer(images)
        variables = list(layer.trainable_variables)

        @tf.function(jit_compile=jit)
        def step(x, c):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer([x, c]) if kind == "hybrid" else layer(x)
                loss = tf.reduce_mean(tf.square(tf.cast(y, tf.float32)))
            grads = tape.gradient(loss, [x, *variables])
            return tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in grads])

        return _median_ms(lambda: float(step(images, covariates)), s["layer_rounds"], s["warmup"])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def layer_figures(s: dict) -> dict:
    figures = {}
    for policy in POLICIES:
        for jit in (False, True):
            tag = f"{policy}_{'xla' if jit else 'no_xla'}"
            hybrid, conv = layer_step_ms("hybrid", jit, policy, s), layer_step_ms("conv", jit, policy, s)
            figures[tag] = {"hybrid_ms": hybrid, "conv_ms": conv, "hybrid_over_conv": hybrid / conv}
    return figures


def _app_model(policy: str, s: dict):
    from hybridvision.apps.orientation_light.config import OrientationLightConfig
    from hybridvision.apps.orientation_light.models import build_model, compile_model
    from hybridvision.common.distribute import Distribution

    extra = {"dense_units": s["dense_units"]} if "dense_units" in s else {}
    cfg = OrientationLightConfig(model="from_scratch", weights="none", image_size=s["app_image"],
                                 batch_size=s["app_batch"], mixed_precision=policy, **extra)
    dist = Distribution.from_config(cfg)
    with dist.scope():
        model = compile_model(build_model(cfg, 3), cfg)
    return model


def _fit_images_per_s(model, dataset, steps: int, batch: int) -> float:
    if steps > 1:  # build, trace, compile (in a --cpu-smoke run the one timed step does it)
        model.fit(dataset, steps_per_epoch=max(1, steps // 5), epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return steps * batch / (time.perf_counter() - start)


def app_step_figures(s: dict) -> dict:
    """images/s of the app's training step on in-memory batches, per precision policy."""
    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(s["app_batch"], s["app_image"], s["app_image"], 3)).astype("float32")
    y = rng.integers(0, 3, size=s["app_batch"]).astype("int32")
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)
    figures = {}
    for policy in POLICIES:
        keras.utils.set_random_seed(0)
        model = _app_model("off" if policy == "float32" else policy, s)
        figures[policy] = {"images_per_s": _fit_images_per_s(model, dataset, s["app_steps"], s["app_batch"]),
                           "parameters": model.count_params()}
        keras.mixed_precision.set_global_policy("float32")
    return figures


def input_pipeline_figures(s: dict, fastest_step: float, workdir: str) -> dict:
    """images/s of the app's input pipeline alone (uncached, cached) and of fit fed by it."""
    from benchmarks.input_pipeline import make_jpegs
    from hybridvision.common.data.affine_augment import AffineAugmentation
    from hybridvision.common.data.class_folders import make_dataset, read_class_folders

    per_class = max(4, s["pipeline_images"] // 3)
    table = read_class_folders(make_jpegs(os.path.join(workdir, "jpegs"), classes=3, per_class=per_class,
                                          size=s["jpeg_size"]))
    size = (s["app_image"], s["app_image"])

    def pipeline(cache: bool):
        augment = AffineAugmentation(rotation_range=10, width_shift_range=0.1, height_shift_range=0.1,
                                     zoom_range=0.1, seed=0)
        return make_dataset(table, size, s["app_batch"], shuffle=True, seed=0, augment=augment, cache=cache)

    figures = {"images": len(table)}
    for cache in (False, True):
        dataset = pipeline(cache)
        for _ in dataset:  # warm-up pass (fills the cache when there is one)
            pass
        start, seen = time.perf_counter(), 0
        for images, _ in dataset:
            seen += int(images.shape[0])
        rate = seen / (time.perf_counter() - start)
        figures["cached" if cache else "uncached"] = {"images_per_s": rate, "pipeline_over_step": rate / fastest_step}
    model = _app_model("off", s)
    figures["end_to_end"] = {"images_per_s": _fit_images_per_s(model, pipeline(True).repeat(), s["app_steps"],
                                                               s["app_batch"]),
                             "policy": "float32", "cached": True}
    return figures


def run(smoke: bool) -> dict:
    import tensorflow as tf

    name = gpu_name()
    if name is None and not smoke:
        raise SystemExit(2)
    s = SIZES["smoke" if smoke else "gpu"]
    if smoke:
        tf.config.set_visible_devices([], "GPU")  # a dry run stays on the CPU even where a GPU is
    result = {"device": "CPU (--cpu-smoke: sizes too small to mean anything)" if smoke else name,
              "tensorflow": tf.__version__, "cpu_smoke": smoke, "sizes": s}
    result["layer"] = layer_figures(s)
    result["app_step"] = app_step_figures(s)
    fastest = max(v["images_per_s"] for v in result["app_step"].values())
    with tempfile.TemporaryDirectory() as workdir:
        result["input_pipeline"] = input_pipeline_figures(s, fastest, workdir)
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="a tiny dry run on the CPU (tests the code, measures nothing)")
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args(argv)
    import tensorflow as tf

    if not args.cpu_smoke and not tf.config.list_physical_devices("GPU"):
        print(NO_GPU, file=sys.stderr)
        raise SystemExit(2)
    tf.get_logger().setLevel("ERROR")
    result = run(args.cpu_smoke)
    text = json.dumps(result, sort_keys=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
