"""HybridConv2D speed: train-step time against the fastest plain convolution, with and without XLA.

Run from the repository root:

    python -m benchmarks.hybrid_conv [--json] [--quick]

At batch 32, 64x64x64 -> 64 channels, 3x3 kernel, "same" padding, it times
one train step (forward + backward: the gradients of the loss with respect
to the layer's weights and its input, as for a layer in the middle of a
network) of

- plain convolutions, the floor (they do the multiply-adds the hybrid layer
  does, without building per-sample kernels):
  - `conv`: a `keras.layers.Conv2D`, batched;
  - `mapped`: the same convolution mapped over the samples in the graph
    (`tf.map_fn`, one `tf.nn.conv2d` per sample): on 2 CPU cores this is
    about as fast as, or faster than, the batched Conv2D;
- `hybrid`: `HybridConv2D` as built by default (`implementation="auto"`),
  for each d in `--covariates` (default 1, 3, 8);
- `loop`: the thesis's reference, an eager Python loop over the batch that
  builds `W0 + sum_l s_il W_l` and runs one convolution per sample (the
  anchor to beat);
- at d = 3 only (to keep the run short): `grouped`
  (`HybridConv2D(implementation="grouped")`; only where it can be trained:
  TensorFlow has no CPU gradient for a grouped convolution unless its oneDNN
  kernels are on, which it does by default only on some CPUs, e.g. with
  AVX-512; the JSON says `"grouped_timed"`), `film` (`FiLMConv2D`) and
  `condconv` (`CondConv2D`, 4 experts, routed by the input and the 3
  covariates).

Every method but `loop` runs as a `tf.function` twice: without XLA and with
`jit_compile=True` (suffix `_jit`; `grouped` only without, its XLA CPU
lowering is a naive loop). `HybridConv2D`'s `"auto"` resolves per trace:
at this size on a CPU `"map"` both ways (under XLA with the layer's
written-out per-sample gradient); on a GPU `"grouped"` both ways.
`mapped_jit` (the plain convolution mapped inside an XLA while loop, with
the automatic gradient) took 14-28 s per step on 2 CPU cores (its gradient
convolutions inside the loop are XLA's slow generic ones), 30-60x
`conv_jit`, which alone would more than double the run; so by default
(`--mapped-jit auto`) it is timed only with a GPU / TPU (or in the tiny
`--quick` run), and on a CPU the
floor under XLA is `conv_jit` (the JSON says `"mapped_jit_timed": false`).
`--mapped-jit on` times it anyway (once: in the first round only, when it is
over 3x `conv_jit` there; that one time still counts for the floor).

All methods are timed side by side in interleaved rounds after warm-up
calls, so load from other processes hits them alike; each figure is the
median over the rounds. The ratios are against the fastest plain
convolution of the same run: `hybrid_over_fastest_plain_d<d>` = hybrid /
min(conv, mapped) (all without XLA), `hybrid_over_fastest_plain_jit_d<d>` =
hybrid_jit / min(conv_jit, mapped_jit) (all under XLA), and
`hybrid_jit_over_fastest_plain_any_d<d>` = hybrid_jit / the fastest plain
convolution with or without XLA (on a CPU, XLA's convolutions are slower
than TensorFlow's oneDNN ones, so this is the stricter figure for the jit
path). Also `loop_over_hybrid_d<d>` (and `_jit`), `hybrid_over_conv_d<d>`,
the same for film / condconv / grouped at d = 3, and the raw medians in
milliseconds (`conv_ms`, `mapped_jit_ms`, `hybrid_ms_d3`, `hybrid_jit_ms_d3`,
`loop_ms_d3`, `film_jit_ms_d3`, ...; `conv_ms_d<d>` repeats `conv_ms`). With `--json` the last line is one JSON
object with all of these. `--quick` shrinks everything to a smoke test.
"""

import argparse
import json
import os
import re
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

# Each measured shape builds fresh tf.functions on purpose; TF's retracing
# warning about that would only clutter the table.
tf.get_logger().setLevel("ERROR")

from hybridvision.common.layers import CondConv2D, FiLMConv2D, HybridConv2D  # noqa: E402
from hybridvision.common.layers.hybrid_conv2d import _accelerator_visible  # noqa: E402
from hybridvision.common.layers.per_sample_conv import _grouped_conv_differentiable_on_cpu  # noqa: E402

# mapped_jit is dropped after the first round when it is this much slower than conv_jit.
_MAPPED_JIT_DROP_FACTOR = 3.0
_EXTRAS_D = 3  # grouped / film / condconv are timed at this d only


def _grouped_trainable():
    """Whether `implementation="grouped"` can be trained here (a GPU, or TensorFlow's oneDNN CPU kernels)."""
    return _accelerator_visible() or _grouped_conv_differentiable_on_cpu()


def _train_step(call, variables):
    """A function running forward + backward once; returns the gradients."""

    def step(x, s):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_mean(tf.square(call(x, s)))
        return tape.gradient(loss, [x, *variables])

    return step


def _layer_step(layer, with_covariates):
    if with_covariates:
        return _train_step(lambda x, s: layer([x, s]), layer.trainable_variables)
    return _train_step(lambda x, s: layer(x), layer.trainable_variables)


def _mapped_step(conv):
    """The plain convolution mapped over the samples (one tf.nn.conv2d each)."""
    padding = conv.padding.upper()

    def call(x, s):
        kernel = conv.kernel
        y = tf.map_fn(
            lambda xi: tf.nn.conv2d(xi[None], kernel, conv.strides, padding)[0],
            x,
            fn_output_signature=x.dtype,
        )
        return y + conv.bias

    return _train_step(call, conv.trainable_variables)


def _loop_step(layer):
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


def build_steps(batch, size, channels, filters, kernel_size, covariate_counts, mapped_jit=True, seed=0):
    """{name: (step, images, covariates)} for every method (see the module docstring)."""
    rng = np.random.default_rng(seed)
    images = tf.constant(rng.normal(size=(batch, size, size, channels)), tf.float32)
    steps = {}
    # grouped / film / condconv at _EXTRAS_D, or at the only d when there is one.
    extras_d = covariate_counts[0] if len(covariate_counts) == 1 else _EXTRAS_D

    def both(name, make_step, s):
        steps[name] = (tf.function(make_step(), jit_compile=False), s)
        steps[f"{name}_jit"] = (tf.function(make_step(), jit_compile=True), s)

    conv = keras.layers.Conv2D(filters, kernel_size, padding="same")
    conv(images)
    both("conv", lambda: _layer_step(conv, False), None)
    both("mapped", lambda: _mapped_step(conv), None)
    if not mapped_jit:
        del steps["mapped_jit"]
    for d in covariate_counts:
        s = tf.constant(rng.normal(size=(batch, d)), tf.float32)
        hybrid = HybridConv2D(filters, kernel_size, d, padding="same", covariate_initializer="glorot_uniform")
        hybrid([images, s])
        both(f"hybrid_d{d}", lambda layer=hybrid: _layer_step(layer, True), s)
        steps[f"loop_d{d}"] = (_loop_step(hybrid), s)
        if d == extras_d:
            if _grouped_trainable():
                grouped = HybridConv2D(filters, kernel_size, d, padding="same", implementation="grouped")
                grouped([images, s])
                steps["grouped"] = (tf.function(_layer_step(grouped, True), jit_compile=False), s)
            film = FiLMConv2D(filters, kernel_size, d, padding="same", scale_initializer="glorot_uniform")
            film([images, s])
            both("film", lambda: _layer_step(film, True), s)
            condconv = CondConv2D(filters, kernel_size, num_experts=4, num_covariates=d, padding="same")
            condconv([images, s])
            both("condconv", lambda: _layer_step(condconv, True), s)
    return steps, images


def measure_rounds(steps, images, warmup, repeats, log=print):
    """Interleaved timing rounds of `build_steps`'s steps; returns ({name: median s}, {name: [s]})."""
    for name, (step, s) in steps.items():
        start = time.perf_counter()
        for _ in range(warmup):
            _timed(step, images, s)
        log(f"  warm-up {name}: {time.perf_counter() - start:.1f} s (incl. tracing / XLA compile)")
    times = {name: [] for name in steps}
    active = list(steps)
    for round_index in range(repeats):
        for name in active:
            step, s = steps[name]
            times[name].append(_timed(step, images, s))
        if round_index == 0 and "mapped_jit" in active:
            if times["mapped_jit"][0] > _MAPPED_JIT_DROP_FACTOR * times["conv_jit"][0]:
                active.remove("mapped_jit")
                log(
                    f"  mapped_jit took {times['mapped_jit'][0]:.2f} s, over "
                    f"{_MAPPED_JIT_DROP_FACTOR:g}x conv_jit: timed in this round only"
                )
    return {name: statistics.median(values) for name, values in times.items()}, times


def measure(batch, size, channels, filters, kernel_size, d, warmup, repeats, seed=0, jit=False):
    """Median train-step seconds of hybrid, grouped (where trainable), conv and loop for one d (as before the jit columns).

    The single-d view `notebooks/hybrid_conv2d.py` uses; `jit=True` adds
    `hybrid_jit` and `conv_jit`. Returns ({name: median s}, {name: [s]}).
    """
    steps, images = build_steps(batch, size, channels, filters, kernel_size, [d], mapped_jit=False, seed=seed)
    names = {f"hybrid_d{d}": "hybrid", "grouped": "grouped", "conv": "conv", f"loop_d{d}": "loop"}
    if jit:
        names.update({f"hybrid_d{d}_jit": "hybrid_jit", "conv_jit": "conv_jit"})
    # `grouped` is built only where it can be trained (see `_grouped_trainable`).
    steps = {new: steps[old] for old, new in names.items() if old in steps}
    return measure_rounds(steps, images, warmup, repeats, log=lambda line: None)


def _ms_key(name):
    """The JSON key of a method's median: hybrid_d3_jit -> hybrid_jit_ms_d3, film -> film_ms_d3, conv -> conv_ms."""
    match = re.fullmatch(r"(\w+?)_d(\d+)(_jit)?", name)
    if match:
        return f"{match[1]}{match[3] or ''}_ms_d{match[2]}"
    if name.split("_")[0] in ("film", "condconv", "grouped"):
        return f"{name}_ms_d{_EXTRAS_D}"
    return f"{name}_ms"


def ratios(medians, covariate_counts):
    plain = min(medians["conv"], medians["mapped"])
    mapped_jit = medians.get("mapped_jit", float("inf"))  # inf: not timed
    plain_jit = min(medians["conv_jit"], mapped_jit)
    plain_any = min(plain, plain_jit)
    result = {
        "fastest_plain": "conv" if medians["conv"] <= medians["mapped"] else "mapped",
        "fastest_plain_jit": "conv_jit" if medians["conv_jit"] <= mapped_jit else "mapped_jit",
        "mapped_jit_timed": "mapped_jit" in medians,
        "mapped_over_conv": medians["mapped"] / medians["conv"],
        "conv_jit_over_conv": medians["conv_jit"] / medians["conv"],
    }
    for d in covariate_counts:
        hybrid, hybrid_jit, loop = medians[f"hybrid_d{d}"], medians[f"hybrid_d{d}_jit"], medians[f"loop_d{d}"]
        result[f"hybrid_over_fastest_plain_d{d}"] = hybrid / plain
        result[f"hybrid_over_fastest_plain_jit_d{d}"] = hybrid_jit / plain_jit
        result[f"hybrid_jit_over_fastest_plain_any_d{d}"] = hybrid_jit / plain_any
        result[f"hybrid_over_conv_d{d}"] = hybrid / medians["conv"]
        result[f"loop_over_hybrid_d{d}"] = loop / hybrid
        result[f"loop_over_hybrid_jit_d{d}"] = loop / hybrid_jit
    if "film" in medians:
        d = _EXTRAS_D
        for name in ("film", "condconv"):
            result[f"{name}_over_fastest_plain_d{d}"] = medians[name] / plain
            result[f"{name}_over_fastest_plain_jit_d{d}"] = medians[f"{name}_jit"] / plain_jit
    if "grouped" in medians:
        d = _EXTRAS_D
        result[f"grouped_over_conv_d{d}"] = medians["grouped"] / medians["conv"]
        result[f"grouped_over_fastest_plain_d{d}"] = medians["grouped"] / plain
    return {key: round(value, 3) if isinstance(value, float) else value for key, value in result.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--channels", type=int, default=64, help="input channels")
    parser.add_argument("--filters", type=int, default=64, help="output channels")
    parser.add_argument("--kernel-size", type=int, default=3)
    parser.add_argument("--covariates", type=int, nargs="+", default=[1, 3, 8], help="values of d")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per method")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds; the median counts")
    parser.add_argument(
        "--mapped-jit",
        choices=("auto", "on", "off"),
        default="auto",
        help="time the mapped plain conv under XLA (auto: with a GPU / TPU, or --quick; ~30-60x conv_jit on a CPU)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few rounds: a smoke test")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.size, args.channels, args.filters = 4, 16, 8, 8
        args.warmup, args.repeats = 1, 2
    if _EXTRAS_D not in args.covariates:
        raise SystemExit(f"--covariates must include {_EXTRAS_D} (the headline ratios are at d = {_EXTRAS_D}).")

    print(
        f"train step (forward + backward), batch {args.batch_size}, "
        f"{args.size}x{args.size}x{args.channels} -> {args.filters}, "
        f"{args.kernel_size}x{args.kernel_size}; median of {args.repeats} interleaved rounds"
    )
    load_before = os.getloadavg()
    print(f"load average before (1, 5, 15 min): {load_before[0]:.1f}, {load_before[1]:.1f}, {load_before[2]:.1f}")
    start = time.perf_counter()
    mapped_jit = args.mapped_jit == "on" or (args.mapped_jit == "auto" and (args.quick or _accelerator_visible()))
    steps, images = build_steps(
        args.batch_size, args.size, args.channels, args.filters, args.kernel_size, args.covariates, mapped_jit
    )
    medians, _ = measure_rounds(steps, images, args.warmup, args.repeats)
    result = ratios(medians, args.covariates)

    ms = {name: 1e3 * seconds for name, seconds in medians.items()}
    mapped_jit_text = f"{ms['mapped_jit']:.1f}" if "mapped_jit" in ms else "not timed (see --mapped-jit)"
    print(
        f"plain (ms): conv {ms['conv']:.1f}, mapped {ms['mapped']:.1f}, conv_jit {ms['conv_jit']:.1f}, "
        f"mapped_jit {mapped_jit_text}; fastest: {result['fastest_plain']} / {result['fastest_plain_jit']}"
    )
    print(
        f"{'d':>3} {'hybrid ms':>10} {'hybrid_jit ms':>14} {'loop ms':>9} {'hybrid/plain':>13} "
        f"{'jit/plain_jit':>14} {'jit/plain_any':>14} {'loop/hybrid':>12}"
    )
    for d in args.covariates:
        print(
            f"{d:>3} {ms[f'hybrid_d{d}']:10.1f} {ms[f'hybrid_d{d}_jit']:14.1f} {ms[f'loop_d{d}']:9.1f} "
            f"{result[f'hybrid_over_fastest_plain_d{d}']:13.2f} {result[f'hybrid_over_fastest_plain_jit_d{d}']:14.2f} "
            f"{result[f'hybrid_jit_over_fastest_plain_any_d{d}']:14.2f} {result[f'loop_over_hybrid_d{d}']:12.2f}"
        )
    d = _EXTRAS_D
    grouped_text = (
        f"{ms['grouped']:.1f} ms ({result[f'grouped_over_fastest_plain_d{d}']:.2f}x)"
        if "grouped" in ms
        else "not timed (TensorFlow cannot differentiate a grouped convolution on this CPU: no oneDNN)"
    )
    print(
        f"d={d}: film {ms['film']:.1f} ms ({result[f'film_over_fastest_plain_d{d}']:.2f}x plain), "
        f"film_jit {ms['film_jit']:.1f} ms ({result[f'film_over_fastest_plain_jit_d{d}']:.2f}x plain_jit); "
        f"condconv {ms['condconv']:.1f} ms ({result[f'condconv_over_fastest_plain_d{d}']:.2f}x), "
        f"condconv_jit {ms['condconv_jit']:.1f} ms ({result[f'condconv_over_fastest_plain_jit_d{d}']:.2f}x); "
        f"grouped {grouped_text}"
    )
    shape = (None, args.size, args.size, args.channels)
    probe = HybridConv2D(args.filters, args.kernel_size, 1, padding="same")
    result["mapped_jit_ms"] = None  # stays None when not timed
    result.update({_ms_key(name): round(value, 2) for name, value in ms.items()})
    for d in args.covariates:  # the plain times once more under the per-d names older readers use
        result[f"conv_ms_d{d}"] = result["conv_ms"]
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
            "hybrid_implementation": probe._auto_implementation(shape, xla=False),
            "hybrid_implementation_jit": probe._auto_implementation(shape, xla=True),
            "gpu": bool(tf.config.list_physical_devices("GPU")),
            "accelerator": _accelerator_visible(),
            "grouped_timed": "grouped" in medians,
            "load_average_1m_before": round(load_before[0], 2),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
            "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "seconds": round(time.perf_counter() - start, 1),
        }
    )
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
