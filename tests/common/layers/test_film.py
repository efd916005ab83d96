"""FiLM (standalone) and FiLMConv2D against NumPy per-channel affine references."""

import keras
import numpy as np
import pytest

from hybridvision.common.layers import FiLM, FiLMConv2D, HybridConv2D
from tests.common.layers._reference import numpy_per_sample_conv, random_inputs, to_numpy
from tests.layer_harness import run_layer_test


def numpy_film(features, covariates, layer):
    s = np.asarray(covariates, "float64")
    scale = s @ to_numpy(layer.scale_kernel)
    shift = s @ to_numpy(layer.shift_kernel)
    if layer.use_bias:
        scale, shift = scale + to_numpy(layer.scale_bias), shift + to_numpy(layer.shift_bias)
    shape = (len(s),) + (1,) * (features.ndim - 2) + (-1,)
    return features * (1 + scale.reshape(shape)) + shift.reshape(shape)


def numpy_film_conv2d(images, covariates, layer):
    s = np.asarray(covariates, "float64")
    w0 = to_numpy(layer.kernel)
    out = numpy_per_sample_conv(images, [w0] * len(images), layer)
    out = out * (1 + s @ to_numpy(layer.scale_kernel))[:, None, None] + (s @ to_numpy(layer.shift_kernel))[:, None, None]
    if layer.use_bias:
        out = out + to_numpy(layer.bias)
    return np.maximum(out, 0) if keras.activations.serialize(layer.activation) == "relu" else out


def randomise(layer):
    rng = np.random.default_rng(7)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])


@pytest.mark.parametrize("spatial", [(), (6,), (5, 4), (3, 4, 2)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_film_matches_numpy_per_channel_affine(spatial, use_bias):
    features, covariates = random_inputs(3, spatial, 4, 2)
    layer = FiLM(2, use_bias=use_bias)
    np.testing.assert_allclose(to_numpy(layer([features, covariates])), features, atol=1e-7)  # identity at init
    randomise(layer)
    np.testing.assert_allclose(
        to_numpy(layer([features, covariates])), numpy_film(features, covariates, layer), atol=1e-5, rtol=1e-5
    )


def test_film_harness():
    features, covariates = random_inputs(2, (5, 5), 3, 2)
    output = run_layer_test(
        FiLM,
        init_kwargs={"num_covariates": 2, "scale_regularizer": "l2"},
        input_data=[features, covariates],
        expected_output_shape=(2, 5, 5, 3),
        expected_num_trainable_weights=4,
        expected_num_non_trainable_weights=0,
        run_jit_check=True,
    )
    np.testing.assert_allclose(output, features, atol=1e-7)


@pytest.mark.parametrize("strides, padding, dilation", [(1, "same", 1), (2, "same", 1), (1, "valid", 2)])
def test_film_conv2d_matches_numpy_reference(strides, padding, dilation):
    images, covariates = random_inputs(3, (9, 8), 2, 3)
    layer = FiLMConv2D(4, 3, 3, strides=strides, padding=padding, dilation_rate=dilation, activation="relu",
                       scale_initializer="random_normal", shift_initializer="random_normal",
                       bias_initializer="random_normal")
    output = to_numpy(layer([images, covariates]))
    np.testing.assert_allclose(output, numpy_film_conv2d(images, covariates, layer), atol=1e-4, rtol=1e-4)


def test_film_conv2d_is_the_per_filter_special_case_of_the_hybrid_kernel():
    # HybridConv2D with W_l[..., o] = Gamma[l, o] * W0[..., o] computes
    # FiLMConv2D's output without the covariate shift.
    images, covariates = random_inputs(3, (8, 8), 2, 2)
    film = FiLMConv2D(4, 3, 2, padding="same", scale_initializer="random_normal", bias_initializer="random_normal")
    film([images, covariates])
    hybrid = HybridConv2D(4, 3, 2, padding="same")
    hybrid([images, covariates])
    w0, gamma = to_numpy(film.kernel), to_numpy(film.scale_kernel)
    hybrid.set_weights([w0, gamma[:, None, None, None, :] * w0[None], to_numpy(film.bias)])
    np.testing.assert_allclose(to_numpy(hybrid([images, covariates])), to_numpy(film([images, covariates])),
                               atol=1e-4, rtol=1e-4)


def test_film_conv2d_harness():
    images, covariates = random_inputs(2, (8, 8), 3, 2)
    run_layer_test(
        FiLMConv2D,
        init_kwargs={"filters": 4, "kernel_size": 3, "num_covariates": 2, "padding": "same",
                     "activation": "relu", "shift_regularizer": "l2"},
        input_data=[images, covariates],
        expected_output_shape=(2, 8, 8, 4),
        expected_num_trainable_weights=4,
        expected_num_non_trainable_weights=0,
        run_jit_check=True,
    )


def test_film_conv2d_from_conv2d_starts_exactly_at_the_convolution():
    images, covariates = random_inputs(3, (10, 10), 3, 2)
    conv = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", bias_initializer="random_normal")
    expected = to_numpy(conv(images))
    film = FiLMConv2D.from_conv2d(conv, num_covariates=2, name="film")
    assert film.name == "film" and film.strides == (2, 2)
    np.testing.assert_allclose(to_numpy(film([images, covariates * 10.0])), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="kernel shape"):
        FiLMConv2D.from_conv2d(conv, num_covariates=2, filters=8)
    with pytest.raises(ValueError, match="not built"):
        FiLMConv2D.from_conv2d(keras.layers.Conv2D(4, 3), num_covariates=1)


def test_film_bad_arguments_error_clearly():
    with pytest.raises(ValueError, match="num_covariates"):
        FiLM(0)
    with pytest.raises(ValueError, match=r"list \[features, covariates\]"):
        FiLM(1)(np.zeros((2, 4, 4, 3), "float32"))
    with pytest.raises(ValueError, match=r"covariates must have shape \(batch, 2\)"):
        FiLM(2)([keras.Input((4, 4, 3)), keras.Input((3,))])
    with pytest.raises(ValueError, match="num_covariates"):
        FiLMConv2D(4, 3, 0)
    assert "implementation" not in FiLMConv2D(4, 3, 1).get_config()
