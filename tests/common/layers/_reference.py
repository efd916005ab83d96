"""NumPy references for the per-sample convolutions (any rank), in float64."""

import itertools

import keras
import numpy as np


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x)).astype("float64")


def numpy_conv(sample, kernel, strides, padding, dilation):
    """Direct N-D convolution of one (*spatial, C) sample; TensorFlow padding rules."""
    rank = sample.ndim - 1
    ks = kernel.shape[:rank]
    spans = [(k - 1) * d + 1 for k, d in zip(ks, dilation)]
    widths, out = [], []
    for size, s, span in zip(sample.shape[:rank], strides, spans):
        if padding == "same":
            n = -(-size // s)
            total = max((n - 1) * s + span - size, 0)
            widths.append((total // 2, total - total // 2))
        elif padding == "causal":
            n = -(-size // s)
            widths.append((span - 1, 0))
        else:
            n = (size - span) // s + 1
            widths.append((0, 0))
        out.append(n)
    sample = np.pad(sample, widths + [(0, 0)])
    output = np.zeros((*out, kernel.shape[-1]))
    for offset in itertools.product(*(range(k) for k in ks)):
        index = tuple(
            slice(o * d, o * d + (n - 1) * s + 1, s) for o, n, s, d in zip(offset, out, strides, dilation)
        )
        output += sample[index] @ kernel[offset]
    return output


def numpy_per_sample_conv(samples, kernels, layer):
    """Convolve sample i with kernels[i] using the layer's strides / padding / dilation."""
    return np.stack(
        [
            numpy_conv(x.astype("float64"), k, layer.strides, layer.padding, layer.dilation_rate)
            for x, k in zip(samples, kernels)
        ]
    )


def numpy_hybrid(samples, covariates, layer):
    """HybridConv{1,2,3}D: kernel W0 + sum_l s_l W_l, shared bias, activation (relu / None only)."""
    w0, wl = to_numpy(layer.kernel), to_numpy(layer.covariate_kernels)
    kernels = [w0 + np.tensordot(np.asarray(s, "float64"), wl, axes=1) for s in covariates]
    out = numpy_per_sample_conv(samples, kernels, layer)
    if layer.use_bias:
        out = out + to_numpy(layer.bias)
    return _activate(out, layer)


def _activate(out, layer):
    name = keras.activations.serialize(layer.activation)
    if name in (None, "linear"):
        return out
    if name == "relu":
        return np.maximum(out, 0.0)
    raise ValueError(f"reference has no activation {name!r}")


def random_inputs(batch, spatial, channels, num_covariates, seed=0):
    rng = np.random.default_rng(seed)
    samples = rng.normal(size=(batch, *spatial, channels)).astype("float32")
    covariates = rng.normal(size=(batch, num_covariates)).astype("float32")
    return samples, covariates
