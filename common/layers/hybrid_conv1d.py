"""HybridConv1D: a 1D convolution whose kernel depends on per-sample covariates."""

import keras

from hybridvision.common.layers.hybrid_conv import HybridConv


@keras.saving.register_keras_serializable(package="hybridvision")
class HybridConv1D(HybridConv):
    """1D convolution with a per-sample kernel built from structured covariates.

    `HybridConv2D` for sequences (ShortFuse's own domain, time series):
    sample `i` is convolved with `k_i = W0 + sum_l s_il * W_l`, then the
    shared bias and the activation are applied. Same arguments, weights and
    implementations as `HybridConv2D` (`kernel_size`, `strides`,
    `dilation_rate` are ints or 1-tuples), and `padding` also takes
    `"causal"` (as `keras.layers.Conv1D`). `from_conv1d` turns a built
    `Conv1D` into one that starts exactly where it was.

    Args:
        filters: int, number of output channels.
        kernel_size: int or 1-tuple, the convolution window.
        num_covariates: int, `d`, the width of the covariate vector.
        strides: int or 1-tuple. Cannot be combined with
            `dilation_rate > 1`.
        padding: `"valid"`, `"same"` (TensorFlow semantics) or `"causal"`,
            as `Conv1D`.
        dilation_rate: int or 1-tuple.
        activation: activation name or callable, applied after the bias.
        use_bias: bool, whether to add a (shared) bias.
        kernel_initializer: initializer for `W0` (`kernel`).
        covariate_initializer: initializer for `W_1..W_d`
            (`covariate_kernels`); zeros makes a fresh layer a plain conv.
        bias_initializer: initializer for the bias.
        kernel_regularizer: optional regularizer for `W0`.
        covariate_regularizer: optional regularizer for `W_1..W_d`.
        bias_regularizer: optional regularizer for the bias.
        kernel_constraint: optional constraint for `W0`.
        bias_constraint: optional constraint for the bias.
        covariate_constraint: optional constraint for `W_1..W_d`.
        implementation: `"auto"` (default), `"grouped"`, `"map"` or
            `"patches"`: how the per-sample kernels are applied; the same
            result at a different speed.
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: `[sequences, covariates]`, `(batch, steps, channels)` and
            `(batch, num_covariates)`. Output: `(batch, new_steps, filters)`.

    Example:
        A time series with its patient's covariates:

        ```python
        import keras
        import numpy as np
        from hybridvision.layers import HybridConv1D

        series = keras.Input((100, 4), name="series")  # 100 steps, 4 channels
        covariates = keras.Input((3,), name="covariates")  # e.g. age, sex, smoker
        x = HybridConv1D(8, 5, num_covariates=3, padding="causal", activation="relu")([series, covariates])
        outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x))
        model = keras.Model([series, covariates], outputs)
        rng = np.random.default_rng(0)
        print(model([rng.normal(size=(2, 100, 4)), rng.normal(size=(2, 3))]).shape)  # (2, 1)
        ```

    Reference:
        Fiterau et al., "ShortFuse: Biomedical Time Series Representations in
        the Presence of Structured Information", MLHC 2017.
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
        super().__init__(
            1,
            filters,
            kernel_size,
            num_covariates,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            covariate_initializer=covariate_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            covariate_regularizer=covariate_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            covariate_constraint=covariate_constraint,
            implementation=implementation,
            **kwargs,
        )

    @classmethod
    def from_conv1d(cls, conv, num_covariates, **overrides):
        """Build a HybridConv1D that starts exactly where a built Conv1D is.

        Copies the convolution's hyper-parameters (filters, kernel size,
        strides, padding, dilation, activation, bias, initializers,
        regularizers, constraints, dtype policy), sets `W0` and the bias to
        its weights and every `W_l` to zero. `overrides` replace any of the
        copied constructor arguments (e.g. `name=`, `covariate_regularizer=`).

        Args:
            conv: a built `keras.layers.Conv1D` (channels_last, groups=1).
            num_covariates: int, the width of the covariate vector.
            **overrides: constructor arguments to use instead of the copies.

        Returns:
            A built `HybridConv1D`; called on `[x, covariates]` it returns
            `conv(x)` for any covariates until its covariate kernels train.
        """
        return cls._from_conv(conv, num_covariates, "from_conv1d", 1, **overrides)
