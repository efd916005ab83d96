"""HybridConv2D: a 2D convolution whose kernel depends on per-sample covariates."""

import keras

from hybridvision.common.layers.hybrid_conv import HybridConv

# Re-exported: tests and the benchmark import these from here.
from hybridvision.common.layers.per_sample_conv import (  # noqa: F401
    _IMPLEMENTATIONS,
    _MAP_MIN_MULTIPLY_ADDS,
    _accelerator_visible,
)


@keras.saving.register_keras_serializable(package="hybridvision")
class HybridConv2D(HybridConv):
    """2D convolution with a per-sample kernel built from structured covariates.

    The ShortFuse "hybrid filter": sample `i` with covariates
    `s_i = (s_i1, ..., s_id)` is convolved with its own kernel
    `k_i = W0 + sum_l s_il * W_l`, then the shared bias and the activation are
    applied. `W0` has the shape of a `keras.layers.Conv2D` kernel, so a
    pretrained convolution can be turned into a hybrid one with
    `HybridConv2D.from_conv2d`; with all `W_l = 0` (the default
    `covariate_initializer`) the layer is exactly that convolution, and training
    moves it away from there. All `W_l` are trainable weights.

    The batch is never looped over in Python, and every way of applying the
    per-sample kernels costs the multiply-adds of one plain convolution:
    `"grouped"` stacks them into one grouped convolution with the batch folded
    into the channels; `"map"` maps one ordinary convolution per sample inside
    the graph (`keras.ops.map`, a `tf.map_fn` / `jax.lax.map`); `"patches"`
    is im2col and one batched matrix multiply. `"auto"` picks `"grouped"` on
    a GPU / TPU; on a CPU `"map"` for convolutions from about 4 M
    multiply-adds per sample (under XLA, `jit_compile=True` on TensorFlow and
    always on JAX, with a written-out per-sample gradient, because XLA's
    automatic one is very slow there) and below that `"patches"` under XLA
    (XLA's CPU grouped convolution is a naive loop) and `"grouped"` without
    XLA where TensorFlow can differentiate a grouped convolution on this CPU
    (with oneDNN), `"map"` where it cannot. The layer supports `jit_compile`
    (the measurements: `benchmarks/hybrid_conv.py` and
    `docs/results/bench_hybrid_conv/`).

    The rank-generic implementation is `HybridConv` (shared with
    `HybridConv1D` and `HybridConv3D`).

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
        kernel_regularizer: optional regularizer for `W0`.
        covariate_regularizer: optional regularizer for `W_1..W_d`.
        bias_regularizer: optional regularizer for the bias.
        kernel_constraint: optional constraint for `W0`.
        bias_constraint: optional constraint for the bias.
        covariate_constraint: optional constraint for `W_1..W_d`.
        implementation: `"auto"` (default), `"grouped"`, `"map"`,
            `"patches"` or `"expanded"` (for TensorFlow Lite): how the
            per-sample kernels are applied; the same result at a different
            speed (see above).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: a list `[images, covariates]`; `images` of shape
            `(batch, height, width, channels)` (channels last), `covariates` of
            shape `(batch, num_covariates)`, any numeric dtype (cast to the
            compute dtype). Output: `(batch, new_height, new_width, filters)`.

    Example:
        A functional model with an image input and a covariate input:

        ```python
        import keras
        import numpy as np
        from hybridvision.layers import HybridConv2D

        images = keras.Input((32, 32, 3), name="images")
        covariates = keras.Input((2,), name="covariates")  # e.g. Male, Young as 0/1
        x = HybridConv2D(8, 3, num_covariates=2, padding="same", activation="relu")([images, covariates])
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(1, activation="sigmoid")(x)
        model = keras.Model([images, covariates], outputs)

        rng = np.random.default_rng(0)
        scores = model.predict([rng.uniform(size=(4, 32, 32, 3)), rng.integers(0, 2, (4, 2))], verbose=0)
        print(scores.shape)  # (4, 1)
        ```

        Starting from a trained convolution, exactly where it was:

        ```python
        import keras
        import numpy as np
        from hybridvision.layers import HybridConv2D

        conv = keras.layers.Conv2D(8, 3)
        conv.build((None, 32, 32, 3))
        hybrid = HybridConv2D.from_conv2d(conv, num_covariates=2)
        x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
        same = hybrid([x, np.ones((2, 2), "float32")])  # covariate kernels start at zero
        np.testing.assert_allclose(same, conv(x), atol=1e-5)
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
        super().__init__(
            2,
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
        return cls._from_conv(conv, num_covariates, "from_conv2d", 2, **overrides)
