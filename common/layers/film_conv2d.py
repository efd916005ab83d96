"""FiLMConv2D: a 2D convolution whose output channels are scaled and shifted by covariates."""

import keras
from keras import ops

from hybridvision.common.layers.per_sample_conv import PerSampleConv


@keras.saving.register_keras_serializable(package="hybridvision")
class FiLMConv2D(PerSampleConv):
    """Conv2D followed by a per-sample, per-filter affine map predicted from covariates (FiLM).

    `y_i = activation(conv(x_i, W0) * (1 + s_i @ Gamma) + bias + s_i @ Beta)`,
    `Gamma` and `Beta` of shape `(num_covariates, filters)`. It is the
    per-filter special case of the hybrid kernel: `HybridConv2D` with
    `W_l[..., o] = Gamma[l, o] * W0[..., o]` convolves sample `i` with
    exactly `W0 * (1 + s_i @ Gamma)` (per output channel), plus a
    covariate-dependent bias `s_i @ Beta` that the hybrid layer lacks. It
    costs one plain convolution (the scale is applied to the output, not to
    the kernel) and `2 * num_covariates * filters` extra weights instead of
    `num_covariates` times the kernel.

    `Gamma` and `Beta` start at zero, so a fresh layer is a plain
    convolution, and `FiLMConv2D.from_conv2d(conv, num_covariates)` starts
    exactly where `conv` is; `hybridvision.transfer.hybridize(..., kind="film")`
    uses it.

    Args:
        filters: int, number of output channels.
        kernel_size: int or pair of ints, the convolution window.
        num_covariates: int, the width of the covariate vector.
        strides: int or pair of ints, as for `keras.layers.Conv2D`.
        padding: `"valid"` or `"same"`, as for `keras.layers.Conv2D`.
        dilation_rate: int or pair of ints, as for `keras.layers.Conv2D`.
        activation: activation name or callable, applied last.
        use_bias: bool, whether to add the covariate-independent bias.
        kernel_initializer: initializer for `W0` (`kernel`).
        scale_initializer: initializer for `Gamma` (`scale_kernel`); zeros
            (default) keeps a fresh layer a plain convolution.
        shift_initializer: initializer for `Beta` (`shift_kernel`); zeros
            (default) keeps a fresh layer a plain convolution.
        bias_initializer: initializer for the bias.
        kernel_regularizer: optional regularizer for `W0`.
        scale_regularizer: optional regularizer for `Gamma`.
        shift_regularizer: optional regularizer for `Beta`.
        bias_regularizer: optional regularizer for the bias.
        kernel_constraint: optional constraint for `W0`.
        bias_constraint: optional constraint for the bias.
        scale_constraint: optional constraint for `Gamma`.
        shift_constraint: optional constraint for `Beta`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: `[images, covariates]`, `(batch, height, width, channels)`
            and `(batch, num_covariates)` (any numeric dtype).
            Output: `(batch, new_height, new_width, filters)`.

    Example:
        ```python
        import keras
        import numpy as np
        from hybridvision.layers import FiLMConv2D

        images = keras.Input((32, 32, 3), name="images")
        covariates = keras.Input((2,), name="covariates")
        x = FiLMConv2D(8, 3, num_covariates=2, padding="same", activation="relu")([images, covariates])
        model = keras.Model([images, covariates], keras.layers.GlobalAveragePooling2D()(x))
        rng = np.random.default_rng(0)
        print(model([rng.uniform(size=(2, 32, 32, 3)), rng.integers(0, 2, (2, 2))]).shape)  # (2, 8)
        ```

    Reference:
        Perez, Strub, de Vries, Dumoulin & Courville, "FiLM: Visual Reasoning
        with a General Conditioning Layer", AAAI 2018.
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
        scale_initializer="zeros",
        shift_initializer="zeros",
        bias_initializer="zeros",
        kernel_regularizer=None,
        scale_regularizer=None,
        shift_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        scale_constraint=None,
        shift_constraint=None,
        **kwargs,
    ):
        # The per-sample kernel factorises, so there is nothing to choose:
        # `implementation` stays at the base's "auto" and is not used.
        kwargs.pop("implementation", None)
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
            **kwargs,
        )
        if not isinstance(num_covariates, int) or isinstance(num_covariates, bool) or num_covariates <= 0:
            raise ValueError(
                "FiLMConv2D: `num_covariates` must be a positive int (the width of the "
                f"covariate vector); received {num_covariates!r}."
            )
        self.num_covariates = num_covariates
        self.scale_initializer = keras.initializers.get(scale_initializer)
        self.shift_initializer = keras.initializers.get(shift_initializer)
        self.scale_regularizer = keras.regularizers.get(scale_regularizer)
        self.shift_regularizer = keras.regularizers.get(shift_regularizer)
        self.scale_constraint = keras.constraints.get(scale_constraint)
        self.shift_constraint = keras.constraints.get(shift_constraint)

    def _split_shapes(self, input_shape):
        if not (
            isinstance(input_shape, (list, tuple))
            and len(input_shape) == 2
            and isinstance(input_shape[0], (list, tuple))
        ):
            raise ValueError(
                "FiLMConv2D must be called on a list [images, covariates]; "
                f"received input shape {input_shape}."
            )
        return (
            self._check_image_shape(input_shape[0]),
            self._check_covariate_shape(input_shape[1], self.num_covariates),
        )

    def build(self, input_shape):
        image_shape, _ = self._split_shapes(input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=self._kernel_shape(image_shape[-1]),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.scale_kernel = self.add_weight(
            name="scale_kernel",
            shape=(self.num_covariates, self.filters),
            initializer=self.scale_initializer,
            regularizer=self.scale_regularizer,
            constraint=self.scale_constraint,
        )
        self.shift_kernel = self.add_weight(
            name="shift_kernel",
            shape=(self.num_covariates, self.filters),
            initializer=self.shift_initializer,
            regularizer=self.shift_regularizer,
            constraint=self.shift_constraint,
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
        outputs = self._conv(images, self.kernel)
        scale = ops.reshape(1.0 + ops.matmul(covariates, self.scale_kernel), (-1, 1, 1, self.filters))
        shift = ops.matmul(covariates, self.shift_kernel)
        if self.use_bias:
            shift = shift + self.bias
        outputs = outputs * scale + ops.reshape(shift, (-1, 1, 1, self.filters))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        image_shape, _ = self._split_shapes(input_shape)
        return self._output_shape_of(image_shape)

    @classmethod
    def from_conv2d(cls, conv, num_covariates, **overrides):
        """Build a FiLMConv2D that starts exactly where a built Conv2D is.

        Copies the convolution's hyper-parameters and weights (as
        `HybridConv2D.from_conv2d` does) and sets `Gamma` and `Beta` to zero,
        so it returns `conv(x)` for any covariates until they train.

        Args:
            conv: a built `keras.layers.Conv2D` (channels_last, groups=1).
            num_covariates: int, the width of the covariate vector.
            **overrides: constructor arguments to use instead of the copies.

        Returns:
            A built `FiLMConv2D`.
        """
        copied = cls._from_keras_conv(conv, "from_conv2d", 2, **overrides)
        layer = cls(num_covariates=num_covariates, **copied)
        layer.build([(None, None, None, conv.kernel.shape[-2]), (None, num_covariates)])
        cls._check_same_kernel_shape(f"{cls.__name__}.from_conv2d", conv, layer.kernel.shape)
        layer.kernel.assign(conv.kernel)
        layer.scale_kernel.assign(ops.zeros(layer.scale_kernel.shape))
        layer.shift_kernel.assign(ops.zeros(layer.shift_kernel.shape))
        if layer.use_bias:
            layer.bias.assign(conv.bias if conv.use_bias else ops.zeros(layer.bias.shape))
        return layer

    def get_config(self):
        config = super().get_config()
        config.pop("implementation")
        config.update(
            {
                "num_covariates": self.num_covariates,
                "scale_initializer": keras.initializers.serialize(self.scale_initializer),
                "shift_initializer": keras.initializers.serialize(self.shift_initializer),
                "scale_regularizer": keras.regularizers.serialize(self.scale_regularizer),
                "shift_regularizer": keras.regularizers.serialize(self.shift_regularizer),
                "scale_constraint": keras.constraints.serialize(self.scale_constraint),
                "shift_constraint": keras.constraints.serialize(self.shift_constraint),
            }
        )
        return config
