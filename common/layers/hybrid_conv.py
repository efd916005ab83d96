"""HybridConv: the rank-generic hybrid convolution behind HybridConv1D / 2D / 3D."""

import keras
from keras import ops

from hybridvision.common.layers.per_sample_conv import PerSampleConv


class HybridConv(PerSampleConv):
    """N-D convolution with a per-sample kernel built from structured covariates.

    The ShortFuse "hybrid filter": sample `i` with covariates
    `s_i = (s_i1, ..., s_id)` is convolved with its own kernel
    `k_i = W0 + sum_l s_il * W_l`, then the shared bias and the activation are
    applied. `W0` has the shape of a `keras.layers.ConvND` kernel, so a
    pretrained convolution can be turned into a hybrid one with
    `from_conv1d` / `from_conv2d` / `from_conv3d`; with all `W_l = 0` (the
    default `covariate_initializer`) the layer is exactly that convolution,
    and training moves it away from there. All `W_l` are trainable weights.

    The base of `HybridConv1D`, `HybridConv2D` and `HybridConv3D` (which fix
    `rank`, as Keras's `Conv2D` does over `BaseConv`); use those. The batch is
    never looped over in Python: see `PerSampleConv` for the
    `implementation`s and which one `"auto"` picks where.

    Args:
        rank: 1, 2 or 3.
        filters: int, number of output channels.
        kernel_size: int or tuple of `rank` ints, the convolution window.
        num_covariates: int, `d`, the width of the covariate vector.
        strides: int or tuple of ints. Cannot be combined with
            `dilation_rate > 1`.
        padding: `"valid"` or `"same"` (TensorFlow semantics, as `ConvND`);
            rank 1 also takes `"causal"` (as `Conv1D`).
        dilation_rate: int or tuple of ints.
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
        implementation: `"auto"` (default), `"grouped"`, `"map"`,
            `"patches"` or `"expanded"` (for TensorFlow Lite): how the
            per-sample kernels are applied; the same result at a different
            speed.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: a list `[images, covariates]`; `images` of shape
            `(batch, *spatial, channels)` (channels last), `covariates` of
            shape `(batch, num_covariates)`, any numeric dtype (cast to the
            compute dtype). Output: `(batch, *new_spatial, filters)`.

    Reference:
        Fiterau et al., "ShortFuse: Biomedical Time Series Representations in
        the Presence of Structured Information", MLHC 2017;
        Liu & Fiterau, hybrid convolutions with structured covariates on
        CelebA, 2021.
    """

    def __init__(
        self,
        rank,
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
        super().__init__(
            rank,
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
        if not isinstance(num_covariates, int) or isinstance(num_covariates, bool) or num_covariates <= 0:
            raise ValueError(
                f"{type(self).__name__}: `num_covariates` must be a positive int (the width of the "
                f"covariate vector); received {num_covariates!r}."
            )
        self.num_covariates = num_covariates
        self.covariate_initializer = keras.initializers.get(covariate_initializer)
        self.covariate_regularizer = keras.regularizers.get(covariate_regularizer)
        self.covariate_constraint = keras.constraints.get(covariate_constraint)

    def _split_shapes(self, input_shape):
        if not (
            isinstance(input_shape, (list, tuple))
            and len(input_shape) == 2
            and isinstance(input_shape[0], (list, tuple))
        ):
            raise ValueError(
                f"{type(self).__name__} must be called on a list [images, covariates]; "
                f"received input shape {input_shape}."
            )
        image_shape = self._check_image_shape(input_shape[0])
        covariate_shape = self._check_covariate_shape(input_shape[1], self.num_covariates)
        return image_shape, covariate_shape

    def build(self, input_shape):
        image_shape, _ = self._split_shapes(input_shape)
        kernel_shape = self._kernel_shape(image_shape[-1])
        # Creation order kernel, covariate_kernels, bias: `.keras` files store
        # the weights by position.
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
        if covariates.shape[-1] is not None and covariates.shape[-1] != self.num_covariates:
            raise ValueError(
                f"{type(self).__name__}: covariates must have {self.num_covariates} columns "
                f"(num_covariates); received shape {tuple(covariates.shape)}."
            )
        outputs = self._per_sample_conv(images, covariates, self.covariate_kernels, self.kernel)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        image_shape, _ = self._split_shapes(input_shape)
        return self._output_shape_of(image_shape)

    @classmethod
    def _from_conv(cls, conv, num_covariates, method, rank, **overrides):
        copied = cls._from_keras_conv(conv, method, rank, **overrides)
        layer = cls(num_covariates=num_covariates, **copied)
        in_channels = conv.kernel.shape[-2]
        layer.build([(None, *([None] * rank), in_channels), (None, num_covariates)])
        cls._check_same_kernel_shape(f"{cls.__name__}.{method}", conv, layer.kernel.shape)
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
                "num_covariates": self.num_covariates,
                "covariate_initializer": keras.initializers.serialize(self.covariate_initializer),
                "covariate_regularizer": keras.regularizers.serialize(self.covariate_regularizer),
                "covariate_constraint": keras.constraints.serialize(self.covariate_constraint),
            }
        )
        return config
