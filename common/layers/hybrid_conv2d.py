"""HybridConv2D: a 2D convolution whose kernel depends on per-sample covariates."""

import keras
from keras import ops


def _pair(value, name):
    if isinstance(value, int):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
        raise ValueError(
            f"HybridConv2D: `{name}` must be a positive int or a pair of positive ints; "
            f"received {name}={value!r}."
        )
    return value


_IMPLEMENTATIONS = ("auto", "grouped", "map")
# Per-sample multiply-adds from which "auto" maps over the batch on a CPU.
_MAP_MIN_MULTIPLY_ADDS = 2**22


def _accelerator_visible():
    """Whether the backend sees a GPU or TPU (decides `implementation="auto"`)."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(
            tf.config.list_logical_devices("GPU")
            or tf.config.list_logical_devices("TPU")
        )
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


@keras.saving.register_keras_serializable(package="hybridvision")
class HybridConv2D(keras.layers.Layer):
    """2D convolution with a per-sample kernel built from structured covariates.

    The ShortFuse "hybrid filter": sample `i` with covariates
    `s_i = (s_i1, ..., s_id)` is convolved with its own kernel
    `k_i = W0 + sum_l s_il * W_l`, then the shared bias and the activation are
    applied. `W0` has the shape of a `keras.layers.Conv2D` kernel, so a
    pretrained convolution can be turned into a hybrid one with
    `HybridConv2D.from_conv2d`; with all `W_l = 0` (the default
    `covariate_initializer`) the layer is exactly that convolution, and training
    moves it away from there. All `W_l` are trainable weights.

    The batch is never looped over in Python, and both ways of applying the
    per-sample kernels cost the FLOPs of one plain convolution: `"grouped"`
    stacks them into one grouped convolution with the batch folded into the
    channels; `"map"` maps one ordinary convolution per sample inside the
    graph (`keras.ops.map`, a `tf.map_fn` / `jax.lax.map`). Measured on a
    2-core CPU (batch 32, 64x64x64 -> 64, 3x3, d = 3, train step), `"map"`
    took about 0.4x the time of `"grouped"` (and 0.17x at 4x4x512 -> 512),
    but 1.6x on tiny maps where the loop overhead dominates; on a GPU one
    grouped cuDNN call is the better bet. So `"auto"` picks `"grouped"` on a
    GPU / TPU or for convolutions under about 4 M multiply-adds per sample,
    and `"map"` otherwise.

    Args:
        filters: int, number of output channels.
        kernel_size: int or pair of ints, the convolution window.
        num_covariates: int, `d`, the width of the covariate vector.
        strides: int or pair of ints. Cannot be combined with
            `dilation_rate > 1`.
        padding: `"valid"` or `"same"` (TensorFlow semantics, as `Conv2D`).
        dilation_rate: int or pair of ints.
        activation: activation name or callable, applied after the bias.
        use_bias: bool, whether to add a (shared) bias.
        kernel_initializer: initializer for `W0` (`kernel`).
        covariate_initializer: initializer for `W_1..W_d`
            (`covariate_kernels`); zeros makes a fresh layer a plain conv.
        bias_initializer: initializer for the bias.
        kernel_regularizer, covariate_regularizer, bias_regularizer:
            optional regularizers for `W0`, `W_1..W_d` and the bias.
        kernel_constraint, bias_constraint, covariate_constraint: optional
            constraints for `W0`, the bias and `W_1..W_d`.
        implementation: `"auto"` (default), `"grouped"` or `"map"`: how the
            per-sample kernels are applied; the same result at a different
            speed (see above).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: a list `[images, covariates]`; `images` of shape
            `(batch, height, width, channels)` (channels last), `covariates` of
            shape `(batch, num_covariates)`, any numeric dtype (cast to the
            compute dtype). Output: `(batch, new_height, new_width, filters)`.

    Example:
    ```python
    images = keras.Input((64, 64, 3))
    covariates = keras.Input((2,))  # e.g. Male, Young as 0/1
    x = HybridConv2D(16, 3, num_covariates=2, padding="same")([images, covariates])
    # or start from a trained convolution, exactly where it was:
    hybrid = HybridConv2D.from_conv2d(trained_conv, num_covariates=2)
    ```

    Reference:
        Fiterau et al., "ShortFuse: Biomedical Time Series Representations in
        the Presence of Structured Information", MLHC 2017;
        Liu & Fiterau, hybrid convolutions with structured covariates on
        CelebA, 2021.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        num_covariates,
        strides=1,
        padding="valid",
        dilation_rate=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        covariate_initializer="zeros",
        bias_initializer="zeros",
        kernel_regularizer=None,
        covariate_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        covariate_constraint=None,
        implementation="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters <= 0:
            raise ValueError(
                f"HybridConv2D: `filters` must be a positive int; received {filters!r}."
            )
        if not isinstance(num_covariates, int) or num_covariates <= 0:
            raise ValueError(
                "HybridConv2D: `num_covariates` must be a positive int (the width of the "
                f"covariate vector); received {num_covariates!r}."
            )
        padding = str(padding).lower()
        if padding not in ("valid", "same"):
            raise ValueError(
                f"HybridConv2D: `padding` must be 'valid' or 'same'; received {padding!r}."
            )
        self.filters = filters
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.num_covariates = num_covariates
        self.strides = _pair(strides, "strides")
        self.padding = padding
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        if implementation not in _IMPLEMENTATIONS:
            raise ValueError(
                f"HybridConv2D: `implementation` must be one of {_IMPLEMENTATIONS}; "
                f"received {implementation!r}."
            )
        self.implementation = implementation
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "HybridConv2D: `strides > 1` cannot be combined with `dilation_rate > 1` "
                f"(as in Conv2D); received strides={self.strides}, "
                f"dilation_rate={self.dilation_rate}."
            )
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.covariate_initializer = keras.initializers.get(covariate_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.covariate_regularizer = keras.regularizers.get(covariate_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.covariate_constraint = keras.constraints.get(covariate_constraint)
        # Keras compiles models with XLA by default on TensorFlow ("auto"), and
        # XLA on CPU lowers the grouped convolution to a naive loop: ~17 s
        # instead of ~0.3 s for the benchmark's train step. Opting out keeps
        # TensorFlow's own (oneDNN / cuDNN) grouped kernels.
        if keras.config.backend() == "tensorflow":
            self.supports_jit = False

    def _split_shapes(self, input_shape):
        if not (
            isinstance(input_shape, (list, tuple))
            and len(input_shape) == 2
            and isinstance(input_shape[0], (list, tuple))
        ):
            raise ValueError(
                "HybridConv2D must be called on a list [images, covariates]; "
                f"received input shape {input_shape}."
            )
        image_shape, covariate_shape = (tuple(s) for s in input_shape)
        if len(image_shape) != 4 or image_shape[-1] is None:
            raise ValueError(
                "HybridConv2D: images must have shape (batch, height, width, channels) with "
                f"known channels (channels_last); received {image_shape}."
            )
        if len(covariate_shape) != 2 or covariate_shape[-1] not in (
            None,
            self.num_covariates,
        ):
            raise ValueError(
                f"HybridConv2D: covariates must have shape (batch, {self.num_covariates}) "
                f"(num_covariates={self.num_covariates}); received {covariate_shape}. Pass "
                "one column per covariate or change `num_covariates`."
            )
        return image_shape, covariate_shape

    def build(self, input_shape):
        image_shape, _ = self._split_shapes(input_shape)
        kernel_shape = (*self.kernel_size, image_shape[-1], self.filters)
        self.kernel = self.add_weight(
            name="kernel",
            shape=kernel_shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.covariate_kernels = self.add_weight(
            name="covariate_kernels",
            shape=(self.num_covariates, *kernel_shape),
            initializer=self.covariate_initializer,
            regularizer=self.covariate_regularizer,
            constraint=self.covariate_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None

    def call(self, inputs):
        images, covariates = inputs
        covariates = ops.cast(covariates, self.compute_dtype)
        if (
            covariates.shape[-1] is not None
            and covariates.shape[-1] != self.num_covariates
        ):
            raise ValueError(
                f"HybridConv2D: covariates must have {self.num_covariates} columns "
                f"(num_covariates); received shape {tuple(covariates.shape)}."
            )
        implementation = self.implementation
        if implementation == "auto":
            implementation = self._auto_implementation(images.shape)
        if implementation == "map":
            outputs = self._mapped_conv(images, covariates)
        else:
            outputs = self._folded_grouped_conv(images, covariates)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _auto_implementation(self, image_shape):
        if _accelerator_visible():
            return "grouped"
        # On a CPU the per-sample map wins once each sample's convolution is
        # big enough to hide the loop's per-iteration overhead. Train step,
        # loaded 2-core CPU, map time / grouped time: 1.6 at 0.6 M
        # multiply-adds per sample (16x16x16 -> 16), 0.7-1.6 at 9.4 M,
        # 0.4 at 151 M (64x64x64 -> 64), 0.17 at 38 M (4x4x512 -> 512).
        height, width, channels = image_shape[1:]
        if height is None or width is None:
            return "map"
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        per_sample = (height // sh) * (width // sw) * channels * self.filters * kh * kw
        return "map" if per_sample >= _MAP_MIN_MULTIPLY_ADDS else "grouped"

    def _mapped_conv(self, images, covariates):
        kernels = ops.einsum("bl,lhwio->bhwio", covariates, self.covariate_kernels)
        kernels = kernels + self.kernel[None]
        return ops.map(
            lambda pair: self._conv(pair[0][None], pair[1])[0], (images, kernels)
        )

    def _folded_grouped_conv(self, images, covariates):
        # Per-sample kernels laid out (kh, kw, cin, batch, cout) so that one
        # reshape gives a grouped-conv kernel with the batch as the groups.
        kernels = ops.einsum("bl,lhwio->hwibo", covariates, self.covariate_kernels)
        kernels = kernels + self.kernel[:, :, :, None, :]
        kh, kw, cin = self.kernel.shape[:3]
        kernels = ops.reshape(kernels, (kh, kw, cin, -1))

        # Fold the batch into the channels: (1, H, W, batch * cin).
        _, height, width, _ = ops.shape(images)
        folded = ops.reshape(
            ops.transpose(images, (1, 2, 0, 3)), (1, height, width, -1)
        )
        if self.compute_dtype == "float16" and not _accelerator_visible():
            # TensorFlow has no CPU gradient for a float16 grouped convolution
            # ("not supported on CPU"), so mixed_float16 on a CPU runs it in
            # float32.
            outputs = self._conv(
                ops.cast(folded, "float32"), ops.cast(kernels, "float32")
            )
            outputs = ops.cast(outputs, "float16")
        else:
            outputs = self._conv(folded, kernels)
        _, out_height, out_width, _ = ops.shape(outputs)
        outputs = ops.reshape(outputs, (out_height, out_width, -1, self.filters))
        return ops.transpose(outputs, (2, 0, 1, 3))

    def _conv(self, inputs, kernel):
        # Why not keras.ops.conv on TensorFlow: it forces XLA for every grouped
        # convolution, and XLA's CPU grouped conv took 16.8 s per train step
        # here versus 0.29 s for tf.nn.conv2d (oneDNN grouped kernel), batch
        # 32, 64x64x64 -> 64, 3x3. Other backends (JAX) group natively.
        # Measured alternatives (same shape, d=3, train step, loaded 2-core
        # CPU, ratio to a plain Conv2D): this grouped conv ~1.2-1.5x; im2col
        # + batched matmul 2.5-7.5x; one conv over (1+d)x stacked channels
        # 2.4-3.7x; the in-graph per-sample map ("map") ~0.5x.
        if keras.config.backend() == "tensorflow":
            import tensorflow as tf

            return tf.nn.conv2d(
                inputs,
                kernel,
                strides=self.strides,
                padding=self.padding.upper(),
                dilations=self.dilation_rate,
            )
        return ops.conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding,
            data_format="channels_last",
            dilation_rate=self.dilation_rate,
        )

    def compute_output_shape(self, input_shape):
        image_shape, _ = self._split_shapes(input_shape)
        spatial = []
        for size, k, s, d in zip(
            image_shape[1:3], self.kernel_size, self.strides, self.dilation_rate
        ):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // s))
            else:
                spatial.append((size - d * (k - 1) - 1) // s + 1)
        return (image_shape[0], *spatial, self.filters)

    @classmethod
    def from_conv2d(cls, conv, num_covariates, **overrides):
        """Build a HybridConv2D that starts exactly where a built Conv2D is.

        Copies the convolution's hyper-parameters (filters, kernel size,
        strides, padding, dilation, activation, bias, initializers,
        regularizers, constraints, dtype policy), sets `W0` and the bias to
        its weights and every `W_l` to zero. `overrides` replace any of the
        copied constructor arguments (e.g. `name=`, `covariate_regularizer=`).

        Args:
            conv: a built `keras.layers.Conv2D` (channels_last, groups=1).
            num_covariates: int, the width of the covariate vector.
            **overrides: constructor arguments to use instead of the copies.

        Returns:
            A built `HybridConv2D`; called on `[x, covariates]` it returns
            `conv(x)` for any covariates until its covariate kernels train.
        """
        if not isinstance(conv, keras.layers.Conv2D):
            # ValueError like every other bad-argument error of this project.
            raise ValueError(  # noqa: TRY004
                "HybridConv2D.from_conv2d: `conv` must be a keras.layers.Conv2D; "
                f"received {type(conv).__name__}."
            )
        if not conv.built:
            raise ValueError(
                f"HybridConv2D.from_conv2d: Conv2D '{conv.name}' is not built; call it on "
                "an input (or build it) first so its kernel exists."
            )
        if conv.data_format != "channels_last" or conv.groups != 1:
            raise ValueError(
                f"HybridConv2D.from_conv2d: Conv2D '{conv.name}' must use "
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
        layer = cls(num_covariates=num_covariates, **copied)
        in_channels = conv.kernel.shape[2]
        layer.build([(None, None, None, in_channels), (None, num_covariates)])
        if tuple(layer.kernel.shape) != tuple(conv.kernel.shape):
            raise ValueError(
                f"HybridConv2D.from_conv2d: overrides change the kernel shape from "
                f"{tuple(conv.kernel.shape)} to {tuple(layer.kernel.shape)}; only override "
                "arguments that keep the shape (not filters / kernel_size)."
            )
        layer.kernel.assign(conv.kernel)
        layer.covariate_kernels.assign(ops.zeros(layer.covariate_kernels.shape))
        if layer.use_bias:
            if conv.use_bias:
                layer.bias.assign(conv.bias)
            else:
                layer.bias.assign(ops.zeros(layer.bias.shape))
        return layer

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "num_covariates": self.num_covariates,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "covariate_initializer": keras.initializers.serialize(
                    self.covariate_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "covariate_regularizer": keras.regularizers.serialize(
                    self.covariate_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(
                    self.kernel_constraint
                ),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "covariate_constraint": keras.constraints.serialize(
                    self.covariate_constraint
                ),
                "implementation": self.implementation,
            }
        )
        return config
