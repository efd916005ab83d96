"""FiLM: feature-wise linear modulation of a feature map by covariates."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hybridvision")
class FiLM(keras.layers.Layer):
    """Per-channel scale and shift of a feature map, predicted from covariates.

    `y = x * (1 + s @ W_gamma + b_gamma) + (s @ W_beta + b_beta)`, with the
    scale and shift broadcast over every axis between the batch and the
    channels (so any rank: sequences, images, volumes). The scale is
    parameterised as `1 + ...`, and all four weights start at zero, so a
    fresh layer is the identity: inserted into a trained network it changes
    nothing until it trains. Perez et al. put it after a BatchNormalization
    whose own affine is off; `FiLMConv2D` is the form that replaces a
    convolution (`from_conv2d`, `hybridvision.transfer.hybridize(kind="film")`).

    Args:
        num_covariates: int, the width of the covariate vector.
        use_bias: whether the scale and shift get a covariate-independent
            term (`b_gamma`, `b_beta`).
        scale_initializer: initializer for `W_gamma` (default zeros:
            identity at init).
        shift_initializer: initializer for `W_beta` (default zeros).
        scale_regularizer: optional regularizer for `W_gamma`.
        shift_regularizer: optional regularizer for `W_beta`.
        scale_constraint: optional constraint for `W_gamma`.
        shift_constraint: optional constraint for `W_beta`.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: `[features, covariates]`: `(batch, ..., channels)` and
            `(batch, num_covariates)` (any numeric dtype, cast to the compute
            dtype). Output: the shape of `features`.

    Example:
        After a BatchNormalization without its own affine, as Perez et al.:

        ```python
        import keras
        import numpy as np
        from hybridvision.layers import FiLM

        images = keras.Input((32, 32, 3), name="images")
        covariates = keras.Input((2,), name="covariates")
        x = keras.layers.Conv2D(8, 3, use_bias=False)(images)
        x = keras.layers.BatchNormalization(center=False, scale=False)(x)
        x = FiLM(num_covariates=2)([x, covariates])  # the identity until it trains
        model = keras.Model([images, covariates], keras.layers.ReLU()(x))
        rng = np.random.default_rng(0)
        print(model([rng.uniform(size=(2, 32, 32, 3)), rng.integers(0, 2, (2, 2))]).shape)  # (2, 30, 30, 8)
        ```

    Reference:
        Perez, Strub, de Vries, Dumoulin & Courville, "FiLM: Visual Reasoning
        with a General Conditioning Layer", AAAI 2018.
    """

    def __init__(
        self,
        num_covariates,
        use_bias=True,
        scale_initializer="zeros",
        shift_initializer="zeros",
        scale_regularizer=None,
        shift_regularizer=None,
        scale_constraint=None,
        shift_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_covariates, int) or isinstance(num_covariates, bool) or num_covariates <= 0:
            raise ValueError(
                "FiLM: `num_covariates` must be a positive int (the width of the covariate "
                f"vector); received {num_covariates!r}."
            )
        self.num_covariates = num_covariates
        self.use_bias = use_bias
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
                f"FiLM must be called on a list [features, covariates]; received input shape {input_shape}."
            )
        feature_shape, covariate_shape = (tuple(s) for s in input_shape)
        if len(feature_shape) < 2 or feature_shape[-1] is None:
            raise ValueError(
                f"FiLM: features must have shape (batch, ..., channels) with known channels; "
                f"received {feature_shape}."
            )
        if len(covariate_shape) != 2 or covariate_shape[-1] not in (None, self.num_covariates):
            raise ValueError(
                f"FiLM: covariates must have shape (batch, {self.num_covariates}) "
                f"(num_covariates={self.num_covariates}); received {covariate_shape}."
            )
        return feature_shape, covariate_shape

    def build(self, input_shape):
        feature_shape, _ = self._split_shapes(input_shape)
        channels = feature_shape[-1]
        self.scale_kernel = self.add_weight(
            name="scale_kernel",
            shape=(self.num_covariates, channels),
            initializer=self.scale_initializer,
            regularizer=self.scale_regularizer,
            constraint=self.scale_constraint,
        )
        self.shift_kernel = self.add_weight(
            name="shift_kernel",
            shape=(self.num_covariates, channels),
            initializer=self.shift_initializer,
            regularizer=self.shift_regularizer,
            constraint=self.shift_constraint,
        )
        if self.use_bias:
            self.scale_bias = self.add_weight(name="scale_bias", shape=(channels,), initializer="zeros")
            self.shift_bias = self.add_weight(name="shift_bias", shape=(channels,), initializer="zeros")
        else:
            self.scale_bias = self.shift_bias = None

    def call(self, inputs):
        features, covariates = inputs
        covariates = ops.cast(covariates, self.compute_dtype)
        scale = ops.matmul(covariates, self.scale_kernel)
        shift = ops.matmul(covariates, self.shift_kernel)
        if self.use_bias:
            scale = scale + self.scale_bias
            shift = shift + self.shift_bias
        # (batch, channels) -> (batch, 1, ..., 1, channels)
        broadcast = (-1,) + (1,) * (len(features.shape) - 2) + (features.shape[-1],)
        scale = ops.reshape(scale, broadcast)
        shift = ops.reshape(shift, broadcast)
        return features * (1.0 + scale) + shift

    def compute_output_shape(self, input_shape):
        feature_shape, _ = self._split_shapes(input_shape)
        return feature_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_covariates": self.num_covariates,
                "use_bias": self.use_bias,
                "scale_initializer": keras.initializers.serialize(self.scale_initializer),
                "shift_initializer": keras.initializers.serialize(self.shift_initializer),
                "scale_regularizer": keras.regularizers.serialize(self.scale_regularizer),
                "shift_regularizer": keras.regularizers.serialize(self.shift_regularizer),
                "scale_constraint": keras.constraints.serialize(self.scale_constraint),
                "shift_constraint": keras.constraints.serialize(self.shift_constraint),
            }
        )
        return config
