"""HybridConv3D: a 3D convolution whose kernel depends on per-sample covariates."""

import keras

from hybridvision.common.layers.hybrid_conv import HybridConv


@keras.saving.register_keras_serializable(package="hybridvision")
class HybridConv3D(HybridConv):
    """3D convolution with a per-sample kernel built from structured covariates.

    `HybridConv2D` for volumes (e.g. MRI): sample `i` is convolved with
    `k_i = W0 + sum_l s_il * W_l`, then the shared bias and the activation
    are applied. Same arguments, weights and implementations as
    `HybridConv2D` (`kernel_size`, `strides`, `dilation_rate` are ints or
    3-tuples). TensorFlow has no grouped Conv3D kernel on a CPU, so there
    `"auto"` maps over the batch (or uses `"patches"` under XLA) and an
    explicit `"grouped"` runs through XLA. `from_conv3d` turns a built
    `Conv3D` into one that starts exactly where it was.

    Args:
        filters: int, number of output channels.
        kernel_size: int or 3-tuple of ints, the convolution window.
        num_covariates: int, `d`, the width of the covariate vector.
        strides: int or 3-tuple of ints. Cannot be combined with
            `dilation_rate > 1`.
        padding: `"valid"` or `"same"` (TensorFlow semantics, as `Conv3D`).
        dilation_rate: int or 3-tuple of ints.
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
        inputs: `[volumes, covariates]`, `(batch, depth, height, width,
            channels)` and `(batch, num_covariates)`. Output: `(batch,
            new_depth, new_height, new_width, filters)`.

    Example:
        ```python
        import keras
        import numpy as np
        from hybridvision.layers import HybridConv3D

        volumes = keras.Input((8, 16, 16, 1), name="volumes")  # e.g. MRI
        covariates = keras.Input((2,), name="covariates")
        x = HybridConv3D(4, 3, num_covariates=2, padding="same")([volumes, covariates])
        model = keras.Model([volumes, covariates], x)
        rng = np.random.default_rng(0)
        print(model([rng.normal(size=(2, 8, 16, 16, 1)), rng.normal(size=(2, 2))]).shape)  # (2, 8, 16, 16, 4)
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
            3,
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
    def from_conv3d(cls, conv, num_covariates, **overrides):
        """Build a HybridConv3D that starts exactly where a built Conv3D is.

        Copies the convolution's hyper-parameters (filters, kernel size,
        strides, padding, dilation, activation, bias, initializers,
        regularizers, constraints, dtype policy), sets `W0` and the bias to
        its weights and every `W_l` to zero. `overrides` replace any of the
        copied constructor arguments (e.g. `name=`, `covariate_regularizer=`).

        Args:
            conv: a built `keras.layers.Conv3D` (channels_last, groups=1).
            num_covariates: int, the width of the covariate vector.
            **overrides: constructor arguments to use instead of the copies.

        Returns:
            A built `HybridConv3D`; called on `[x, covariates]` it returns
            `conv(x)` for any covariates until its covariate kernels train.
        """
        return cls._from_conv(conv, num_covariates, "from_conv3d", 3, **overrides)
