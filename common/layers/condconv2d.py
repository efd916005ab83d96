"""CondConv2D: a 2D convolution whose kernel is mixed per sample from expert kernels."""

import math

import keras
import numpy as np
from keras import ops

from hybridvision.common.layers.per_sample_conv import PerSampleConv


@keras.saving.register_keras_serializable(package="hybridvision")
class CondConv2D(PerSampleConv):
    """Conditionally parameterised convolution (CondConv), optionally routed by covariates too.

    Sample `i` is convolved with its own kernel mixed from `E` experts,
    `k_i = sum_e r_ie W_e`, and gets the bias `sum_e r_ie b_e`, with the
    routing weights computed from the layer's input (Yang et al.):
    `r_i = sigmoid(GAP(x_i) @ R + c)` (global average pooling over the
    spatial axes, then a fully connected layer, then a sigmoid, one weight
    per expert; not a softmax). With `num_covariates > 0` the layer takes
    `[images, covariates]` and the covariates enter the routing as well:
    `r_i = sigmoid(GAP(x_i) @ R + s_i @ Q + c)`. The per-sample kernels are
    applied as in `HybridConv2D` (one plain convolution's multiply-adds; see
    `PerSampleConv` for the `implementation`s).

    `CondConv2D.from_conv2d(conv, num_experts)` starts exactly where a built
    `Conv2D` is: every expert is the convolution's kernel (and bias), the
    routing kernels are zero and the routing bias is `logit(1 / E)`, so
    `r_ie = 1 / E` and `k_i = W` for every input until the routing trains.

    Args:
        filters: int, number of output channels.
        kernel_size: int or pair of ints, the convolution window.
        num_experts: int >= 2, `E`.
        num_covariates: int >= 0; 0 (default): routed by the input only, and
            called on the images alone.
        strides: int or pair of ints, as for `keras.layers.Conv2D`.
        padding: `"valid"` or `"same"`, as for `keras.layers.Conv2D`.
        dilation_rate: int or pair of ints, as for `keras.layers.Conv2D`.
        activation: activation name or callable, applied after the bias.
        use_bias: bool, whether each expert has a bias (mixed like the
            kernels).
        kernel_initializer: for the expert kernels
            `(E, kh, kw, in, filters)`; each expert is initialised like a
            separate Conv2D kernel.
        bias_initializer: for the expert biases `(E, filters)`.
        routing_initializer: for `R` `(in, E)` and `Q` `(num_covariates, E)`.
        routing_bias_initializer: for `c` `(E,)`.
        kernel_regularizer: optional, for the expert kernels.
        bias_regularizer: optional, for the expert biases.
        routing_regularizer: optional, for `R` and `Q`.
        kernel_constraint: optional, for the expert kernels.
        bias_constraint: optional, for the expert biases.
        implementation: `"auto"`, `"grouped"`, `"map"`, `"patches"` or
            `"expanded"` (for TensorFlow Lite; see `PerSampleConv`).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: `images` `(batch, height, width, channels)`, or
            `[images, covariates]` when `num_covariates > 0`.
            Output: `(batch, new_height, new_width, filters)`.

    Example:
        Routed by the images and two covariates:

        ```python
        import keras
        import numpy as np
        from hybridvision.layers import CondConv2D

        images = keras.Input((32, 32, 3), name="images")
        covariates = keras.Input((2,), name="covariates")
        x = CondConv2D(8, 3, num_experts=4, num_covariates=2, padding="same")([images, covariates])
        model = keras.Model([images, covariates], keras.layers.GlobalAveragePooling2D()(x))
        rng = np.random.default_rng(0)
        print(model([rng.uniform(size=(2, 32, 32, 3)), rng.integers(0, 2, (2, 2))]).shape)  # (2, 8)

        # From a trained Conv2D: every expert starts as its kernel.
        conv = keras.layers.Conv2D(8, 3)
        conv.build((None, 32, 32, 3))
        cond = CondConv2D.from_conv2d(conv, num_experts=4)
        x = rng.uniform(size=(2, 32, 32, 3)).astype("float32")
        np.testing.assert_allclose(cond(x), conv(x), atol=1e-5)
        ```

    Reference:
        Yang, Bender, Le & Ngiam, "CondConv: Conditionally Parameterized
        Convolutions for Efficient Inference", NeurIPS 2019.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        num_experts=4,
        num_covariates=0,
        strides=1,
        padding="valid",
        dilation_rate=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        routing_initializer="glorot_uniform",
        routing_bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        routing_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        implementation="auto",
        **kwargs,
    ):
        super().__init__(
            2,
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            implementation=implementation,
            **kwargs,
        )
        if not isinstance(num_experts, int) or isinstance(num_experts, bool) or num_experts < 2:
            raise ValueError(f"CondConv2D: `num_experts` must be an int >= 2; received {num_experts!r}.")
        if not isinstance(num_covariates, int) or isinstance(num_covariates, bool) or num_covariates < 0:
            raise ValueError(
                "CondConv2D: `num_covariates` must be an int >= 0 (0: routed by the input only); "
                f"received {num_covariates!r}."
            )
        self.num_experts = num_experts
        self.num_covariates = num_covariates
        self.routing_initializer = keras.initializers.get(routing_initializer)
        self.routing_bias_initializer = keras.initializers.get(routing_bias_initializer)
        self.routing_regularizer = keras.regularizers.get(routing_regularizer)

    def _split_shapes(self, input_shape):
        if self.num_covariates:
            if not (
                isinstance(input_shape, (list, tuple))
                and len(input_shape) == 2
                and isinstance(input_shape[0], (list, tuple))
            ):
                raise ValueError(
                    f"CondConv2D with num_covariates={self.num_covariates} must be called on a list "
                    f"[images, covariates]; received input shape {input_shape}."
                )
            return (
                self._check_image_shape(input_shape[0]),
                self._check_covariate_shape(input_shape[1], self.num_covariates),
            )
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
            raise ValueError(
                "CondConv2D with num_covariates=0 is called on the images alone; received "
                f"input shape {input_shape} (set num_covariates to route by covariates too)."
            )
        return self._check_image_shape(input_shape), None

    def build(self, input_shape):
        image_shape, _ = self._split_shapes(input_shape)
        in_channels = image_shape[-1]
        experts = self.num_experts

        def per_expert(initializer):
            # Each expert initialised as its own Conv2D kernel / bias would be
            # (fans of one kernel, not of the stack), with its own draw: a
            # Keras initializer called twice repeats its values, so random
            # ones are cloned with seed + e (or a fresh seed when unseeded).
            def initialize(shape, dtype=None):
                is_keras = isinstance(initializer, keras.initializers.Initializer)
                config = initializer.get_config() if is_keras else {}
                if "seed" not in config:
                    return ops.stack([initializer(shape[1:], dtype=dtype) for _ in range(shape[0])])
                seed = config["seed"]
                draws = []
                for index in range(shape[0]):
                    clone_config = dict(config, seed=seed + index if isinstance(seed, int) else None)
                    draws.append(type(initializer).from_config(clone_config)(shape[1:], dtype=dtype))
                return ops.stack(draws)

            return initialize

        self.kernel = self.add_weight(
            name="kernel",
            shape=(experts, *self._kernel_shape(in_channels)),
            initializer=per_expert(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(experts, self.filters),
                initializer=per_expert(self.bias_initializer),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.routing_kernel = self.add_weight(
            name="routing_kernel",
            shape=(in_channels, experts),
            initializer=self.routing_initializer,
            regularizer=self.routing_regularizer,
        )
        if self.num_covariates:
            self.covariate_routing_kernel = self.add_weight(
                name="covariate_routing_kernel",
                shape=(self.num_covariates, experts),
                initializer=self.routing_initializer,
                regularizer=self.routing_regularizer,
            )
        else:
            self.covariate_routing_kernel = None
        self.routing_bias = self.add_weight(
            name="routing_bias", shape=(experts,), initializer=self.routing_bias_initializer
        )

    def routing_weights(self, inputs):
        """The routing weights `r`, `(batch, num_experts)`, for `inputs` (as `call` takes them)."""
        images, covariates = inputs if self.num_covariates else (inputs, None)
        pooled = ops.mean(images, axis=(1, 2))
        logits = ops.matmul(pooled, self.routing_kernel) + self.routing_bias
        if covariates is not None:
            covariates = ops.cast(covariates, self.compute_dtype)
            logits = logits + ops.matmul(covariates, self.covariate_routing_kernel)
        return ops.sigmoid(logits)

    def call(self, inputs):
        images = inputs[0] if self.num_covariates else inputs
        routing = self.routing_weights(inputs)
        outputs = self._per_sample_conv(images, routing, self.kernel)
        if self.use_bias:
            outputs = outputs + ops.reshape(ops.matmul(routing, self.bias), (-1, 1, 1, self.filters))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        image_shape, _ = self._split_shapes(input_shape)
        return self._output_shape_of(image_shape)

    @classmethod
    def from_conv2d(cls, conv, num_experts=4, num_covariates=0, **overrides):
        """Build a CondConv2D that starts exactly where a built Conv2D is.

        Every expert kernel (bias) is the convolution's kernel (bias), the
        routing kernels are zero and the routing bias is `logit(1 / E)`, so
        each routing weight is `1 / E` and the mixed kernel is the
        convolution's, for any input, until the routing trains (up to float
        rounding of `E * (1 / E)`). `overrides` replace copied constructor
        arguments.

        Args:
            conv: a built `keras.layers.Conv2D` (channels_last, groups=1).
            num_experts: int >= 2, the number of experts.
            num_covariates: int >= 0, the width of the covariate vector; 0
                routes by the input only.
            **overrides: constructor arguments to use instead of the copies.

        Returns:
            A built `CondConv2D`.
        """
        copied = cls._from_keras_conv(conv, "from_conv2d", 2, **overrides)
        layer = cls(num_experts=num_experts, num_covariates=num_covariates, **copied)
        in_channels = conv.kernel.shape[-2]
        image_shape = (None, None, None, in_channels)
        layer.build([image_shape, (None, num_covariates)] if num_covariates else image_shape)
        cls._check_same_kernel_shape(f"{cls.__name__}.from_conv2d", conv, layer.kernel.shape[1:])
        experts = layer.num_experts
        layer.kernel.assign(np.stack([ops.convert_to_numpy(conv.kernel)] * experts))
        if layer.use_bias:
            bias = ops.convert_to_numpy(conv.bias) if conv.use_bias else np.zeros(layer.filters, "float32")
            layer.bias.assign(np.stack([bias] * experts))
        layer.routing_kernel.assign(ops.zeros(layer.routing_kernel.shape))
        if layer.covariate_routing_kernel is not None:
            layer.covariate_routing_kernel.assign(ops.zeros(layer.covariate_routing_kernel.shape))
        layer.routing_bias.assign(ops.full((experts,), -math.log(experts - 1)))
        return layer

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_experts": self.num_experts,
                "num_covariates": self.num_covariates,
                "routing_initializer": keras.initializers.serialize(self.routing_initializer),
                "routing_bias_initializer": keras.initializers.serialize(self.routing_bias_initializer),
                "routing_regularizer": keras.regularizers.serialize(self.routing_regularizer),
            }
        )
        return config
