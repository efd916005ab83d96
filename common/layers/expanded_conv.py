"""The "expanded" way of applying per-sample kernels: one plain convolution, then a per-sample sum.

The per-sample kernel of `PerSampleConv` is linear in its parts,
`k_i = base + sum_n c_in W_n`, and so is a convolution in its kernel:

    conv(x_i, k_i) = conv(x_i, base) + sum_n c_in * conv(x_i, W_n).

So one ordinary convolution of the whole batch with the `(1 + n) * filters`
kernels side by side, followed by a per-sample weighted sum over the groups
of `filters` output channels, gives every sample its own convolution. Only
standard operations with the batch as an ordinary axis (a convolution, a
reshape, a multiply, a sum): any batch size, no loop, no grouped convolution,
so TensorFlow Lite converts it with builtin ops (the "grouped" convolution
folds the batch into the channels and "map" is a `tf.map_fn` loop, neither
of which it can express with a free batch). The price is `1 + n` times the
multiply-adds of one convolution, which is why it is not a training
default; `hybridvision export --format tflite` switches to it.
"""

from keras import ops


def expanded_conv(layer, images, coefficients, stacked, base=None):
    """`layer`'s convolution of sample `i` with `base + sum_n coefficients[i, n] * stacked[n]` (no bias).

    `images` (batch, *spatial, in), `coefficients` (batch, n), `stacked`
    (n, *kernel_size, in, out), `base` (*kernel_size, in, out) or None.
    """
    rank = layer.rank
    if base is not None:
        # The base kernel is one more part, with coefficient 1 for every sample.
        stacked = ops.concatenate([base[None], stacked], axis=0)
        ones = ops.ones_like(coefficients[:, :1])
        coefficients = ops.concatenate([ones, coefficients], axis=1)
    parts = stacked.shape[0]
    # (parts, *kernel_size, in, out) -> (*kernel_size, in, parts * out): the
    # output channels of part p are [p * out, (p + 1) * out).
    kernel = ops.transpose(stacked, (*range(1, rank + 2), 0, rank + 2))
    kernel = ops.reshape(kernel, (*layer.kernel_size, kernel.shape[-3], parts * layer.filters))
    padding = layer.padding
    if padding == "causal":  # no causal convolution op: pad in front, then "valid"
        images = layer._explicit_padding(images)
        padding = "valid"
    outputs = layer._conv(images, kernel, padding)
    # (batch, *out_spatial, parts * out) -> (batch, *out_spatial, parts, out),
    # weighted by each sample's coefficients and summed over the parts.
    shape = ops.shape(outputs)
    outputs = ops.reshape(outputs, (-1, *shape[1:-1], parts, layer.filters))
    weights = ops.reshape(coefficients, (-1, *([1] * rank), parts, 1))
    return ops.sum(outputs * weights, axis=-2)
