"""HybridConv1D / 3D (and 2D through the same rank-generic HybridConv) against NumPy references."""

import keras
import numpy as np
import pytest

from hybridvision.common.layers import HybridConv, HybridConv1D, HybridConv2D, HybridConv3D, PerSampleConv
from hybridvision.common.layers.per_sample_conv import _accelerator_visible
from tests.common.layers._reference import numpy_hybrid, random_inputs
from tests.layer_harness import run_layer_test

CASES = [
    # cls, spatial, kernel_size, strides, padding, dilation
    (HybridConv1D, (11,), 3, 1, "valid", 1),
    (HybridConv1D, (11,), 3, 2, "same", 1),
    (HybridConv1D, (10,), 2, 1, "causal", 2),
    (HybridConv1D, (9,), 4, 3, "causal", 1),
    (HybridConv2D, (9, 8), (3, 2), 2, "same", 1),
    (HybridConv2D, (7, 9), 3, 1, "same", 2),
    (HybridConv2D, (7, 6), (2, 3), 1, "same", 1),
    (HybridConv3D, (5, 6, 4), 3, 1, "same", 1),
    (HybridConv3D, (6, 5, 5), (2, 3, 1), 2, "valid", 1),
    (HybridConv3D, (5, 5, 6), 2, 1, "valid", (1, 2, 1)),
]


@pytest.mark.parametrize("cls, spatial, kernel_size, strides, padding, dilation", CASES)
@pytest.mark.parametrize("implementation", ["grouped", "map", "patches", "expanded"])
def test_matches_per_sample_numpy_reference(cls, spatial, kernel_size, strides, padding, dilation, implementation):
    samples, covariates = random_inputs(3, spatial, 2, 2)
    layer = cls(
        3,
        kernel_size,
        2,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        covariate_initializer="glorot_uniform",
        bias_initializer="random_normal",
        implementation=implementation,
    )
    output = keras.ops.convert_to_numpy(layer([samples, covariates]))
    expected = numpy_hybrid(samples, covariates, layer)
    assert output.shape == expected.shape == layer.compute_output_shape([samples.shape, covariates.shape])
    np.testing.assert_allclose(output, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "cls, spatial",
    [(HybridConv1D, (12,)), (HybridConv3D, (5, 6, 4))],
)
def test_layer_harness_including_jit(cls, spatial):
    samples, covariates = random_inputs(2, spatial, 3, 2)
    output = run_layer_test(
        cls,
        init_kwargs={
            "filters": 4,
            "kernel_size": 3,
            "num_covariates": 2,
            "padding": "same",
            "activation": "relu",
            "covariate_initializer": "random_normal",
            "covariate_regularizer": "l2",
        },
        input_data=[samples, covariates],
        expected_output_shape=(2, *spatial, 4),
        expected_num_trainable_weights=3,
        expected_num_non_trainable_weights=0,
        run_jit_check=True,
    )
    assert np.all(output >= 0)


@pytest.mark.parametrize(
    "conv, cls, method, spatial",
    [
        (keras.layers.Conv1D(5, 3, padding="causal", dilation_rate=2, activation="relu",
                             bias_initializer="random_normal"), HybridConv1D, "from_conv1d", (13,)),
        (keras.layers.Conv3D(4, (3, 2, 3), strides=2, padding="same",
                             bias_initializer="random_normal"), HybridConv3D, "from_conv3d", (6, 5, 7)),
    ],
)
def test_from_conv_starts_exactly_at_the_convolution(conv, cls, method, spatial):
    samples, covariates = random_inputs(3, spatial, 2, 3)
    expected = keras.ops.convert_to_numpy(conv(samples))
    hybrid = getattr(cls, method)(conv, num_covariates=3, name="hybrid")
    assert isinstance(hybrid, cls) and hybrid.name == "hybrid"
    assert (hybrid.kernel_size, hybrid.strides, hybrid.padding) == (conv.kernel_size, conv.strides, conv.padding)
    output = keras.ops.convert_to_numpy(hybrid([samples, covariates * 10.0]))
    np.testing.assert_allclose(output, expected, atol=1e-5, rtol=1e-5)


def test_from_conv_checks_the_convolution_rank():
    conv2d = keras.layers.Conv2D(4, 3)
    conv2d.build((None, 8, 8, 2))
    with pytest.raises(ValueError, match=r"HybridConv1D.from_conv1d: `conv` must be a keras.layers.Conv1D"):
        HybridConv1D.from_conv1d(conv2d, num_covariates=1)
    with pytest.raises(ValueError, match="not built"):
        HybridConv3D.from_conv3d(keras.layers.Conv3D(4, 3), num_covariates=1)


def test_one_implementation_for_every_rank():
    # The concrete classes only fix `rank`; everything else is HybridConv's.
    for cls, rank in ((HybridConv1D, 1), (HybridConv2D, 2), (HybridConv3D, 3)):
        layer = cls(4, 3, 2)
        assert isinstance(layer, HybridConv) and isinstance(layer, PerSampleConv)
        assert layer.rank == rank and layer.kernel_size == (3,) * rank
        assert "rank" not in layer.get_config()
        for name in ("call", "build", "get_config", "compute_output_shape"):
            assert name not in vars(cls), f"{cls.__name__} overrides {name}"


def test_hybrid_conv2d_config_keys_are_unchanged():
    # The keys HybridConv2D wrote before it shared HybridConv: saved .keras
    # files carry them and must keep loading.
    keys = {
        "name", "trainable", "dtype", "filters", "kernel_size", "num_covariates", "strides", "padding",
        "dilation_rate", "activation", "use_bias", "kernel_initializer", "covariate_initializer",
        "bias_initializer", "kernel_regularizer", "covariate_regularizer", "bias_regularizer",
        "kernel_constraint", "bias_constraint", "covariate_constraint", "implementation",
    }
    assert set(HybridConv2D(4, 3, 2).get_config()) == keys


def test_bad_arguments_name_the_rank():
    with pytest.raises(ValueError, match="causal"):
        HybridConv2D(4, 3, 1, padding="causal")
    HybridConv1D(4, 3, 1, padding="causal")
    with pytest.raises(ValueError, match=r"HybridConv3D: `kernel_size` must be .*3 positive ints"):
        HybridConv3D(4, (3, 3), 1)
    with pytest.raises(ValueError, match=r"\(batch, length, channels\)"):
        HybridConv1D(4, 3, 1)([keras.Input((8, 8, 2)), keras.Input((1,))])


def test_auto_under_xla_on_a_cpu_is_patches_for_small_inputs_else_map():
    layer = HybridConv3D(8, 3, 1)
    if _accelerator_visible():
        assert layer._auto_implementation((None, 8, 8, 8, 8), xla=True) == "grouped"
    else:
        assert layer._auto_implementation((None, 8, 8, 8, 8), xla=True) == "patches"
        # Unknown sizes: the map, as for large inputs.
        assert layer._auto_implementation((None, None, None, None, 8), xla=True) == "map"
        assert layer._auto_implementation((None, 32, 32, 32, 8), xla=True) == "map"


@pytest.mark.parametrize("cls, spatial, kernel_size, strides, padding, dilation", CASES)
def test_map_gradient_under_xla_matches_the_automatic_one(
    cls, spatial, kernel_size, strides, padding, dilation, monkeypatch
):
    # Under XLA "map" differentiates through its written-out per-sample
    # gradient; without XLA through TensorFlow's own (the reference here).
    import tensorflow as tf

    from hybridvision.common.layers import per_sample_conv

    written_out = []
    original = per_sample_conv.PerSampleConv._sample_input_gradient
    monkeypatch.setattr(
        per_sample_conv.PerSampleConv,
        "_sample_input_gradient",
        lambda *args: written_out.append(1) or original(*args),
    )

    samples, covariates = random_inputs(3, spatial, 2, 2)
    layer = cls(
        3, kernel_size, 2, strides=strides, padding=padding, dilation_rate=dilation,
        covariate_initializer="glorot_uniform", implementation="map",
    )
    layer.build([samples.shape, covariates.shape])
    upstream = tf.constant(
        np.random.default_rng(2).normal(size=layer.compute_output_shape([samples.shape, covariates.shape])),
        tf.float32,
    )

    def gradients(x, s):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer([x, s]) * upstream)
        return tape.gradient(loss, [x, *(w.value for w in layer.trainable_weights)])

    x, s = tf.constant(samples), tf.constant(covariates)
    expected = tf.function(gradients)(x, s)
    assert not written_out
    jitted = tf.function(gradients, jit_compile=True)(x, s)
    assert written_out, "the jit-compiled gradient did not go through the written-out one"
    assert len(jitted) == 4
    for grad, ref in zip(jitted, expected):
        np.testing.assert_allclose(grad.numpy(), ref.numpy(), atol=1e-4, rtol=1e-4)
    assert all(np.abs(jitted[2].numpy()[index]).sum() > 0 for index in range(2))


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="tf.function (JAX traces with known shapes)")
@pytest.mark.parametrize("implementation", ["grouped", "expanded"])
@pytest.mark.parametrize("cls, spatial", [(HybridConv1D, (11,)), (HybridConv2D, (9, 8))])
def test_dilated_layer_traces_with_a_free_batch(cls, spatial, implementation):
    """Traced with the batch unknown (as a SavedModel export does): the grouped kernel's channels are unknown then."""
    import tensorflow as tf

    samples, covariates = random_inputs(3, spatial, 2, 2)
    layer = cls(3, 3, 2, dilation_rate=2, padding="same", covariate_initializer="glorot_uniform",
                implementation=implementation)
    traced = tf.function(layer, input_signature=[[tf.TensorSpec((None, *spatial, 2)), tf.TensorSpec((None, 2))]])
    output = traced([samples, covariates]).numpy()
    np.testing.assert_allclose(output, numpy_hybrid(samples, covariates, layer), atol=1e-4, rtol=1e-4)
