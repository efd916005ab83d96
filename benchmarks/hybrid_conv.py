"""HybridConv2D speed: train-step time against a plain Conv2D and a per-sample loop.

Run from the repository root:

    python -m benchmarks.hybrid_conv [--json] [--quick]

At batch 32, 64x64x64 -> 64 channels, 3x3 kernel, "same" padding, for
d = 1, 3 and 8 covariates, it times one train step (forward + backward:
the gradients of the loss with respect to the layer's weights and its input
image, as for a layer in the middle of a network) of

- hybrid: `HybridConv2D` as built by default (`implementation="auto"`:
  the in-graph per-sample map on a CPU, the batch-folded grouped
  convolution on a GPU);
- grouped: `HybridConv2D(implementation="grouped")`, for comparison;
- conv: a plain `keras.layers.Conv2D` of the same shape (the floor: the
  hybrid layer does the same FLOPs plus building the per-sample kernels);
- loop: the thesis's reference, an eager Python loop over the batch that
  builds `W0 + sum_l s_il W_l` and runs one convolution per sample.

hybrid and conv run as `tf.function`s without XLA (HybridConv2D opts out of
XLA on TensorFlow; see its comments), loop runs eagerly as the thesis did.
The three are timed side by side in interleaved rounds after warm-up calls,
so load from other processes hits all of them alike; each figure is the
median over the rounds. With `--json` the last line is one JSON object with
`hybrid_over_conv_d<d>` and `loop_over_hybrid_d<d>` for every d (ratios of
times: hybrid / conv, loop / hybrid) plus the raw medians in milliseconds.
`--quick` shrinks everything to a smoke test of a few seconds.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

# Each measured shape builds fresh tf.functions on purpose; TF's retracing
# warning about that would only clutter the table.
tf.get_logger().setLevel("ERROR")

from common.layers import HybridConv2D  # noqa: E402  (after the logger is quietened)
from common.layers.hybrid_conv2d import _accelerator_visible  # noqa: E402


def _train_step(layer, images, covariates=None):
    """Returns a callable running forward + backward once and syncing the result."""
    variables = list(layer.trainable_variables)

    def step(x, s):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x) if s is None else layer([x, s])
            loss = tf.reduce_mean(tf.square(y))
        return tape.gradient(loss, [x, *variables])

    return step


def _loop_step(layer, images, covariates):
    """The thesis's per-sample loop, eager, over the same weights as `layer`."""
    w0, wl, bias = layer.kernel, layer.covariate_kernels, layer.bias
    padding = layer.padding.upper()

    def step(x, s):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = []
            for i in range(x.shape[0]):
                kernel = w0 + tf.tensordot(s[i], wl, axes=1)
                outputs.append(tf.nn.conv2d(x[i : i + 1], kernel, 1, padding))
            y = tf.concat(outputs, axis=0) + bias
            loss = tf.reduce_mean(tf.square(y))
        return tape.gradient(loss, [x, w0, wl, bias])

    return step


def _timed(step, images, covariates):
    start = time.perf_counter()
    grads = step(images, covariates)
    # Pull one value back so asynchronous execution has finished.
    float(tf.reduce_sum(grads[0]))
    return time.perf_counter() - start


def measure(batch, size, channels, filters, kernel_size, d, warmup, repeats, seed=0):
    """Median train-step seconds of hybrid, conv and loop for one shape."""
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.normal(size=(batch, size, size, channels)), tf.float32)
    covariates = tf.constant(rng.normal(size=(batch, d)), tf.float32)

    hybrid = HybridConv2D(
        filters, kernel_size, d, padding="same", covariate_initializer="glorot_uniform"
    )
    hybrid([images, covariates])
    grouped = HybridConv2D(
        filters, kernel_size, d, padding="same", implementation="grouped"
    )
    grouped([images, covariates])
    conv = keras.layers.Conv2D(filters, kernel_size, padding="same")
    conv(images)
    steps = {
        "hybrid": (
            tf.function(_train_step(hybrid, images, covariates), jit_compile=False),
            covariates,
        ),
        "grouped": (
            tf.function(_train_step(grouped, images, covariates), jit_compile=False),
            covariates,
        ),
        "conv": (tf.function(_train_step(conv, images), jit_compile=False), None),
        "loop": (_loop_step(hybrid, images, covariates), covariates),
    }
    for step, s in steps.values():
        for _ in range(warmup):
            _timed(step, images, s)
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, (step, s) in steps.items():
            times[name].append(_timed(step, images, s))
    return {name: statistics.median(values) for name, values in times.items()}, times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--channels", type=int, default=64, help="input channels")
    parser.add_argument("--filters", type=int, default=64, help="output channels")
    parser.add_argument("--kernel-size", type=int, default=3)
    parser.add_argument(
        "--covariates", type=int, nargs="+", default=[1, 3, 8], help="values of d"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed calls per method"
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed rounds; the median counts"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny shapes and few rounds: a smoke test"
    )
    parser.add_argument(
        "--json", action="store_true", help="end with one JSON line of results"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.size, args.channels, args.filters = 4, 16, 8, 8
        args.warmup, args.repeats = 1, 2
    if 3 not in args.covariates:
        raise SystemExit(
            "--covariates must include 3 (the headline ratios are at d = 3)."
        )

    result = {}
    print(
        f"train step (forward + backward), batch {args.batch_size}, "
        f"{args.size}x{args.size}x{args.channels} -> {args.filters}, "
        f"{args.kernel_size}x{args.kernel_size}; median of {args.repeats} rounds"
    )
    print(
        f"{'d':>3} {'conv ms':>9} {'hybrid ms':>10} {'grouped ms':>11} {'loop ms':>9} "
        f"{'hybrid/conv':>12} {'loop/hybrid':>12}"
    )
    for d in args.covariates:
        medians, _ = measure(
            args.batch_size,
            args.size,
            args.channels,
            args.filters,
            args.kernel_size,
            d,
            args.warmup,
            args.repeats,
        )
        hybrid_over_conv = medians["hybrid"] / medians["conv"]
        loop_over_hybrid = medians["loop"] / medians["hybrid"]
        print(
            f"{d:>3} {1e3 * medians['conv']:9.1f} {1e3 * medians['hybrid']:10.1f} "
            f"{1e3 * medians['grouped']:11.1f} "
            f"{1e3 * medians['loop']:9.1f} {hybrid_over_conv:12.2f} {loop_over_hybrid:12.2f}"
        )
        result[f"hybrid_over_conv_d{d}"] = round(hybrid_over_conv, 3)
        result[f"loop_over_hybrid_d{d}"] = round(loop_over_hybrid, 3)
        result[f"grouped_over_conv_d{d}"] = round(
            medians["grouped"] / medians["conv"], 3
        )
        for name, seconds in medians.items():
            result[f"{name}_ms_d{d}"] = round(1e3 * seconds, 2)
    result.update(
        {
            "batch_size": args.batch_size,
            "image_size": args.size,
            "channels": args.channels,
            "filters": args.filters,
            "kernel_size": args.kernel_size,
            "repeats": args.repeats,
            "quick": args.quick,
            "backend": keras.config.backend(),
            "hybrid_implementation": "grouped" if _accelerator_visible() else "map",
            "gpu": bool(tf.config.list_physical_devices("GPU")),
            "cpu_cores": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
        }
    )
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
