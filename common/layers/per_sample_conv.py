"""PerSampleConv: the rank-generic base of the convolutions whose kernel differs per sample.

`HybridConv1D/2D/3D` (kernel `W0 + sum_l s_il W_l`), `CondConv2D` (kernel
`sum_e r_ie W_e`) and `FiLMConv2D` (kernel `W0` scaled per filter) share it:
the convolution hyper-parameters, their checks, the output shape, copying a
Keras `ConvND` in `from_conv*`, and the ways of applying one kernel per
sample without a Python loop over the batch:

- `"grouped"`: the per-sample kernels stacked into one grouped convolution
  with the batch folded into the channels (one cuDNN call on a GPU);
- `"map"`: one ordinary convolution per sample inside the graph
  (`keras.ops.map`: `tf.map_fn` / `jax.lax.map`); under XLA (TensorFlow's
  `jit_compile=True`, JAX) with a written-out gradient, per sample: the
  kernel gradient as one contraction per kernel offset of that sample's
  shifted image view with its upstream gradient, the input gradient as a
  forward convolution with the flipped kernel (the backend's own
  transposed convolution where strides exceed 1);
- `"patches"`: im2col (the `prod(kernel_size)` shifted views of the input
  concatenated along the channels) and one batched matrix multiply with the
  per-sample kernels; it materialises `prod(kernel_size)` times the input;
- `"expanded"` (`expanded_conv.py`): one plain convolution with the parts of
  the kernel side by side, then a per-sample weighted sum; `1 + n` times the
  multiply-adds, but only builtin TensorFlow Lite ops with a free batch (what
  `hybridvision export --format tflite` uses). "auto" never picks it.

The first three cost the multiply-adds of one plain convolution. Which is fastest
depends on the device and on whether XLA compiles the step; `"auto"` picks
from what was measured (`PerSampleConv._auto_implementation`): "grouped" on
a GPU / TPU; on a CPU "map" from 4 M multiply-adds per sample
(`_MAP_MIN_MULTIPLY_ADDS`), below that "patches" under XLA and, without XLA,
"grouped" where TensorFlow can differentiate a grouped convolution on this
CPU, else "map". "patches" materialises `prod(kernel_size)` times the
layer's input (and as much again for its gradient); "map" holds one
sample's patches at a time. The measurements are in
`docs/results/bench_hybrid_conv/notes.md`.
"""

import itertools
import math

import keras
from keras import ops

from hybridvision.common.layers._backend_probes import (
    _accelerator_visible,
    _compiled_by_xla,
    _grouped_conv_differentiable_on_cpu,
)

# Imported into this module's namespace, where tests monkeypatch them.
from hybridvision.common.layers.expanded_conv import expanded_conv

_IMPLEMENTATIONS = ("auto", "grouped", "map", "patches", "expanded")
# Per-sample multiply-adds from which "auto" maps over the batch on a CPU
# (TensorFlow without XLA).
_MAP_MIN_MULTIPLY_ADDS = 2**22
_SPATIAL_LETTERS = "pqr"  # einsum letters for up to three spatial axes
_KERAS_CONV = {1: "Conv1D", 2: "Conv2D", 3: "Conv3D"}


def _tuple(value, rank, name, owner):
    if isinstance(value, int):
        value = (value,) * rank
    value = tuple(value)
    if len(value) != rank or not all(isinstance(v, int) and v > 0 for v in value):
        what = {1: "a positive int", 2: "a positive int or a pair of positive ints"}.get(
            rank, f"a positive int or a tuple of {rank} positive ints"
        )
        raise ValueError(f"{owner}: `{name}` must be {what}; received {name}={value!r}.")
    return value


def _pad(x, widths):
    """Zero-pad `x` by `widths` ((before, after) per axis); the amounts may be tensors on TF."""
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        return tf.pad(x, widths)
    return ops.pad(x, widths)


def _input_gradient(function, inputs, upstream):
    """The vector-Jacobian product of `function` at `inputs` with `upstream` (TensorFlow or JAX)."""
    if keras.config.backend() == "jax":
        import jax

        return jax.vjp(function, inputs)[1](upstream)[0]
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = function(inputs)
    return tape.gradient(outputs, inputs, output_gradients=upstream)


class PerSampleConv(keras.layers.Layer):
    """Base of N-D convolutions applying a different kernel to each sample (channels last).

    Not used directly (like Keras's `BaseConv`): subclasses build their
    weights, compute the per-sample kernels and call `_per_sample_conv` (or,
    when the per-sample kernel factorises, `_conv` with one shared kernel).

    Args:
        rank: 1, 2 or 3, the number of spatial axes.
        filters, kernel_size, strides, padding, dilation_rate, activation,
        use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, kernel_constraint, bias_constraint: as for
            `keras.layers.ConvND` (`padding`: `"valid"`, `"same"`, and for
            rank 1 also `"causal"`).
        implementation: `"auto"`, `"grouped"`, `"map"`, `"patches"` or
            `"expanded"`: how the per-sample kernels are applied (the same
            result at a different speed; see the module docstring).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).
    """

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        dilation_rate=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        implementation="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = type(self).__name__
        if rank not in (1, 2, 3):
            raise ValueError(f"{owner}: `rank` must be 1, 2 or 3; received {rank!r}.")
        self.rank = rank
        if not isinstance(filters, int) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(f"{owner}: `filters` must be a positive int; received {filters!r}.")
        padding = str(padding).lower()
        paddings = ("valid", "same", "causal") if rank == 1 else ("valid", "same")
        if padding not in paddings:
            raise ValueError(
                f"{owner}: `padding` must be {' or '.join(repr(p) for p in paddings)}; "
                f"received {padding!r}."
            )
        if implementation not in _IMPLEMENTATIONS:
            raise ValueError(
                f"{owner}: `implementation` must be one of {_IMPLEMENTATIONS}; "
                f"received {implementation!r}."
            )
        self.filters = filters
        self.kernel_size = _tuple(kernel_size, rank, "kernel_size", owner)
        self.strides = _tuple(strides, rank, "strides", owner)
        self.padding = padding
        self.dilation_rate = _tuple(dilation_rate, rank, "dilation_rate", owner)
        self.implementation = implementation
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"{owner}: `strides > 1` cannot be combined with `dilation_rate > 1` "
                f"(as in Conv{rank}D); received strides={self.strides}, "
                f"dilation_rate={self.dilation_rate}."
            )
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    # ------------------------------------------------------------ shapes

    def _check_image_shape(self, image_shape, what="images"):
        image_shape = tuple(image_shape)
        axes = ", ".join(["length"] if self.rank == 1 else ["height", "width", "depth"][: self.rank])
        if len(image_shape) != self.rank + 2 or image_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__}: {what} must have shape (batch, {axes}, channels) with "
                f"known channels (channels_last); received {image_shape}."
            )
        return image_shape

    def _check_covariate_shape(self, covariate_shape, num_covariates):
        covariate_shape = tuple(covariate_shape)
        if len(covariate_shape) != 2 or covariate_shape[-1] not in (None, num_covariates):
            raise ValueError(
                f"{type(self).__name__}: covariates must have shape (batch, {num_covariates}) "
                f"(num_covariates={num_covariates}); received {covariate_shape}. Pass "
                "one column per covariate or change `num_covariates`."
            )
        return covariate_shape

    def _output_shape_of(self, image_shape):
        spatial = []
        for size, k, s, d in zip(
            image_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate
        ):
            if size is None:
                spatial.append(None)
            elif self.padding in ("same", "causal"):
                spatial.append(-(-size // s))
            else:
                spatial.append((size - d * (k - 1) - 1) // s + 1)
        return (image_shape[0], *spatial, self.filters)

    def _kernel_shape(self, in_channels):
        return (*self.kernel_size, in_channels, self.filters)

    # ------------------------------------------------------------ convolutions

    def _explicit_padding(self, images):
        """Zero-pad `images` so that a "valid" convolution gives the layer's output."""
        if self.padding == "valid":
            return images
        shape = ops.shape(images)
        widths = [(0, 0)]
        for axis, (k, s, d) in enumerate(zip(self.kernel_size, self.strides, self.dilation_rate)):
            span = d * (k - 1) + 1
            if self.padding == "causal":
                widths.append((span - 1, 0))
                continue
            size = shape[1 + axis]
            if s == 1:
                total = span - 1
            elif isinstance(size, int):
                total = max((-(-size // s) - 1) * s + span - size, 0)
            else:  # unknown size in a TensorFlow graph
                total = ops.maximum((-(-size // s) - 1) * s + span - size, 0)
            widths.append((total // 2, total - total // 2))
        widths.append((0, 0))
        return _pad(images, widths)

    def _conv(self, inputs, kernel, padding=None):
        """One convolution of `inputs` with `kernel` (grouped if the channels are a multiple)."""
        padding = self.padding if padding is None else padding
        grouped = inputs.shape[-1] is not None and inputs.shape[-1] != kernel.shape[-2]
        # Why not keras.ops.conv on TensorFlow: it forces XLA for every grouped
        # convolution, and XLA's CPU grouped conv is a naive loop, many times
        # slower than tf.nn.conv2d's oneDNN grouped kernel (bench_hybrid_conv/
        # notes.md). TensorFlow has no grouped Conv3D kernel on a CPU, so that
        # one goes through keras.ops.conv (XLA) after all. Other backends
        # (JAX) group natively.
        if keras.config.backend() == "tensorflow" and not (grouped and self.rank == 3):
            import tensorflow as tf

            if self.rank < 3:
                # conv1d / conv2d, not tf.nn.convolution: with dilation > 1 that one
                # needs the kernel's shape fully known, and the grouped kernel's
                # channels are the batch, unknown when traced with a free batch
                # (SavedModel export).
                conv = tf.nn.conv1d if self.rank == 1 else tf.nn.conv2d
                return conv(inputs, kernel, self.strides, padding.upper(), dilations=self.dilation_rate)
            return tf.nn.convolution(
                inputs,
                kernel,
                strides=self.strides,
                padding=padding.upper(),
                dilations=self.dilation_rate,
            )
        return ops.conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=padding,
            data_format="channels_last",
            dilation_rate=self.dilation_rate,
        )

    def _auto_implementation(self, image_shape, xla=False):
        """The implementation "auto" stands for, given the image shape and whether XLA compiles.

        On a CPU the per-sample map wins once each sample's convolution is
        big enough to hide the loop's per-iteration overhead, with or without
        XLA (under XLA with its written-out gradient). Below that: under XLA
        "patches" (XLA's CPU grouped convolution is a naive loop); without
        XLA "grouped" where TensorFlow can differentiate a grouped
        convolution on this CPU (with oneDNN) and "map" where it cannot.
        Measurements: docs/results/bench_hybrid_conv/notes.md.
        """
        if _accelerator_visible():
            return "grouped"
        spatial, channels = image_shape[1:-1], image_shape[-1]
        if any(size is None for size in spatial):
            return "map"
        per_sample = channels * self.filters
        for size, k, s in zip(spatial, self.kernel_size, self.strides):
            per_sample *= (size // s) * k
        if per_sample >= _MAP_MIN_MULTIPLY_ADDS:
            return "map"
        if xla:
            return "patches"
        if self.rank == 3 and keras.config.backend() == "tensorflow":
            return "map"  # no grouped Conv3D kernel on a TensorFlow CPU
        return "grouped" if _grouped_conv_differentiable_on_cpu() else "map"

    def _resolved_implementation(self, images):
        if self.implementation != "auto":
            return self.implementation
        return self._auto_implementation(tuple(images.shape), xla=_compiled_by_xla())

    def _per_sample_kernels(self, coefficients, stacked, base, layout):
        """`base + sum_n coefficients[:, n] * stacked[n]` for each sample.

        `coefficients` (batch, n), `stacked` (n, *kernel_size, in, out),
        `base` (*kernel_size, in, out) or None. `layout` "batch_first" gives
        (batch, *kernel_size, in, out); "grouped" gives (*kernel_size, in,
        batch, out), the layout a grouped convolution reshapes into.
        """
        sp = _SPATIAL_LETTERS[: self.rank]
        if layout == "batch_first":
            kernels = ops.einsum(f"bn,n{sp}io->b{sp}io", coefficients, stacked)
            if base is not None:
                kernels = kernels + base[None]
        else:
            kernels = ops.einsum(f"bn,n{sp}io->{sp}ibo", coefficients, stacked)
            if base is not None:
                kernels = kernels + ops.expand_dims(base, -2)
        return kernels

    def _per_sample_conv(self, images, coefficients, stacked, base=None):
        """Convolve sample `i` with `base + sum_n coefficients[i, n] * stacked[n]` (no bias)."""
        implementation = self._resolved_implementation(images)
        if implementation == "expanded":
            return expanded_conv(self, images, coefficients, stacked, base)
        layout = "grouped" if implementation == "grouped" else "batch_first"
        kernels = self._per_sample_kernels(coefficients, stacked, base, layout)
        if implementation == "grouped":
            return self._grouped_conv(images, kernels)
        if implementation == "patches":
            return self._patches_conv(images, kernels)
        return self._mapped_conv(images, kernels)

    def _mapped_conv(self, images, kernels):
        if self.padding == "causal":
            images = self._explicit_padding(images)
        padding = "valid" if self.padding == "causal" else self.padding

        def conv(image, kernel):
            return self._conv(image[None], kernel, padding)[0]

        if keras.config.backend() not in ("tensorflow", "jax") or not _compiled_by_xla():
            return ops.map(lambda pair: conv(*pair), (images, kernels))

        # Under XLA the gradient is written out per sample: differentiating
        # the loop gives one kernel-gradient convolution per sample (the whole
        # image as the window), which XLA's CPU backend runs very slowly. Here
        # each sample's kernel gradient is one contraction per kernel offset
        # (its image view against the upstream gradient) and its input
        # gradient a forward convolution (see `_sample_input_gradient`).
        # Without XLA the automatic gradient (oneDNN / Eigen backprop kernels)
        # is as fast or faster. Measured, with the variants tried and not
        # kept: docs/results/bench_hybrid_conv/notes.md.
        @ops.custom_gradient
        def mapped(images, kernels):
            spatial = "dhw"[3 - self.rank:]
            contraction = f"{spatial}c,{spatial}f->cf"  # one sample's view x upstream gradient

            def grad(*args, upstream=None):
                if upstream is None:
                    (upstream,) = args

                def sample_gradients(triple):
                    image, kernel, upstream_i = triple
                    image_gradient = self._sample_input_gradient(image, kernel, upstream_i, padding)
                    # One contraction over the output positions per kernel
                    # offset, on a strided view of the image: XLA reads the
                    # view in place, where a concatenated im2col (the same
                    # numbers) is copied first.
                    views, _ = self._patch_views(image[None], padding)
                    kernel_gradient = ops.stack([ops.einsum(contraction, view[0], upstream_i) for view in views])
                    return image_gradient, ops.reshape(kernel_gradient, ops.shape(kernel))

                return ops.map(sample_gradients, (images, kernels, upstream))

            return ops.map(lambda pair: conv(*pair), (images, kernels)), grad

        return mapped(images, kernels)

    def _sample_input_gradient(self, image, kernel, upstream, padding):
        """The gradient with respect to one sample `image` of `self._conv(image[None], kernel, padding)[0]`.

        With unit strides it is the forward convolution of the upstream
        gradient, zero-padded so that every input position sees every
        kernel offset that touched it, with the kernel flipped in space and
        its input and output channels swapped (the textbook identity). XLA's
        CPU backend runs that as its fast forward convolution, faster than
        the backend's own input gradient (a transposed convolution).
        Strided convolutions keep the backend's own.
        """
        if max(self.strides) > 1:
            return _input_gradient(
                lambda x: self._conv(x[None], kernel, padding)[0], image, upstream
            )
        widths = [(0, 0)]
        for k, d in zip(self.kernel_size, self.dilation_rate):
            span = d * (k - 1) + 1
            if padding == "same":  # the forward pass padded (total // 2, total - total // 2)
                total = span - 1
                widths.append((total - total // 2, total // 2))
            else:  # "valid": the full correlation
                widths.append((span - 1, span - 1))
        widths.append((0, 0))
        flipped = ops.swapaxes(ops.flip(kernel, axis=tuple(range(self.rank))), -1, -2)
        return self._conv(_pad(upstream[None], widths), flipped, "valid")[0]

    def _grouped_conv(self, images, kernels):
        # kernels: (*kernel_size, cin, batch, cout) -> (*kernel_size, cin, batch * cout).
        kernels = ops.reshape(kernels, (*self.kernel_size, kernels.shape[-3], -1))
        if self.padding == "causal":
            images = self._explicit_padding(images)
        padding = "valid" if self.padding == "causal" else self.padding
        # Fold the batch into the channels: (1, *spatial, batch * cin).
        shape = ops.shape(images)
        axes = tuple(range(1, self.rank + 1))
        folded = ops.reshape(
            ops.transpose(images, (*axes, 0, self.rank + 1)), (1, *shape[1:-1], -1)
        )
        if self.compute_dtype == "float16" and not _accelerator_visible():
            # TensorFlow has no CPU gradient for a float16 grouped convolution
            # ("not supported on CPU"), so mixed_float16 on a CPU runs it in
            # float32.
            outputs = self._conv(
                ops.cast(folded, "float32"), ops.cast(kernels, "float32"), padding
            )
            outputs = ops.cast(outputs, "float16")
        else:
            outputs = self._conv(folded, kernels, padding)
        out_spatial = ops.shape(outputs)[1:-1]
        outputs = ops.reshape(outputs, (*out_spatial, -1, self.filters))
        return ops.transpose(outputs, (self.rank, *range(self.rank), self.rank + 1))

    def _patches(self, images, padding):
        """im2col: (patches (batch, positions, prod(kernel_size) * in), output spatial sizes).

        The views of `_patch_views` concatenated along the channels, so that
        a kernel reshaped to (prod(kernel_size) * in, out) multiplies it.
        """
        views, out_sizes = self._patch_views(images, padding)
        patches = views[0] if len(views) == 1 else ops.concatenate(views, axis=-1)
        depth = math.prod(self.kernel_size) * images.shape[-1]
        return ops.reshape(patches, (ops.shape(images)[0], -1, depth)), out_sizes

    def _patch_views(self, images, padding):
        """(one strided view per kernel offset, in the kernel's row-major order; output spatial sizes).

        Each view has the output's spatial shape: the (explicitly padded,
        unless `padding` is "valid") input positions that the offset meets.
        """
        if padding != "valid":
            images = self._explicit_padding(images)
        shape = ops.shape(images)
        out_sizes = []
        for size, k, s, d in zip(shape[1:-1], self.kernel_size, self.strides, self.dilation_rate):
            out_sizes.append((size - d * (k - 1) - 1) // s + 1)
        views = []
        for offset in itertools.product(*(range(k) for k in self.kernel_size)):
            index = [slice(None)]
            for o, n, s, d in zip(offset, out_sizes, self.strides, self.dilation_rate):
                index.append(slice(o * d, o * d + (n - 1) * s + 1, s))
            index.append(slice(None))
            views.append(images[tuple(index)])
        return views, out_sizes

    def _patches_conv(self, images, kernels):
        # im2col and one batched (batch, positions, k*cin) x (batch, k*cin,
        # cout) matrix multiply: dot_general with a batch dimension.
        patches, out_sizes = self._patches(images, self.padding)
        batch = ops.shape(images)[0]
        outputs = ops.matmul(patches, ops.reshape(kernels, (batch, patches.shape[-1], self.filters)))
        return ops.reshape(outputs, (batch, *out_sizes, self.filters))

    # ------------------------------------------------------------ from_conv / config

    @classmethod
    def _from_keras_conv(cls, conv, method, rank, **overrides):
        """Constructor arguments copied from a built Keras `Conv{rank}D` (checked)."""
        expected = getattr(keras.layers, _KERAS_CONV[rank])
        where = f"{cls.__name__}.{method}"
        if not isinstance(conv, expected):
            # ValueError like every other bad-argument error of this project.
            raise ValueError(  # noqa: TRY004
                f"{where}: `conv` must be a keras.layers.{expected.__name__}; "
                f"received {type(conv).__name__}."
            )
        if not conv.built:
            raise ValueError(
                f"{where}: {expected.__name__} '{conv.name}' is not built; call it on "
                "an input (or build it) first so its kernel exists."
            )
        if conv.data_format != "channels_last" or conv.groups != 1:
            raise ValueError(
                f"{where}: {expected.__name__} '{conv.name}' must use "
                "data_format='channels_last' and groups=1; received "
                f"data_format={conv.data_format!r}, groups={conv.groups}."
            )
        copied = {
            key: getattr(conv, key)
            for key in (
                "filters",
                "kernel_size",
                "strides",
                "padding",
                "dilation_rate",
                "activation",
                "use_bias",
                "kernel_initializer",
                "bias_initializer",
                "kernel_regularizer",
                "bias_regularizer",
                "kernel_constraint",
                "bias_constraint",
            )
        }
        copied["dtype"] = conv.dtype_policy
        copied.update(overrides)
        return copied

    @staticmethod
    def _check_same_kernel_shape(where, conv, kernel_shape):
        if tuple(kernel_shape) != tuple(conv.kernel.shape):
            raise ValueError(
                f"{where}: overrides change the kernel shape from "
                f"{tuple(conv.kernel.shape)} to {tuple(kernel_shape)}; only override "
                "arguments that keep the shape (not filters / kernel_size)."
            )

    def get_config(self):
        # `rank` is not in the config: the concrete classes fix it (as Keras's
        # Conv2D does over BaseConv).
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "implementation": self.implementation,
            }
        )
        return config
