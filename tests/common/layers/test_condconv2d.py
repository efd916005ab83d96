"""CondConv2D against a NumPy reference of the routed, mixed per-sample kernels."""

import keras
import numpy as np
import pytest

from hybridvision.common.layers import CondConv2D
from tests.common.layers._reference import numpy_per_sample_conv, random_inputs, to_numpy
from tests.layer_harness import run_layer_test


def numpy_condconv2d(images, covariates, layer):
    pooled = images.astype("float64").mean(axis=(1, 2))
    logits = pooled @ to_numpy(layer.routing_kernel) + to_numpy(layer.routing_bias)
    if layer.num_covariates:
        logits = logits + np.asarray(covariates, "float64") @ to_numpy(layer.covariate_routing_kernel)
    routing = 1 / (1 + np.exp(-logits))
    experts = to_numpy(layer.kernel)
    kernels = [np.tensordot(r, experts, axes=1) for r in routing]
    out = numpy_per_sample_conv(images, kernels, layer)
    if layer.use_bias:
        out = out + (routing @ to_numpy(layer.bias))[:, None, None]
    return out, routing


@pytest.mark.parametrize("num_covariates", [0, 2])
@pytest.mark.parametrize("implementation", ["grouped", "map", "patches", "expanded"])
@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "valid")])
def test_matches_numpy_mixed_kernels(num_covariates, implementation, strides, padding):
    images, covariates = random_inputs(3, (9, 8), 3, max(num_covariates, 1))
    layer = CondConv2D(4, 3, num_experts=3, num_covariates=num_covariates, strides=strides, padding=padding,
                       bias_initializer="random_normal", routing_bias_initializer="random_normal",
                       implementation=implementation)
    inputs = [images, covariates] if num_covariates else images
    output = to_numpy(layer(inputs))
    expected, routing = numpy_condconv2d(images, covariates, layer)
    np.testing.assert_allclose(to_numpy(layer.routing_weights(inputs)), routing, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(output, expected, atol=1e-4, rtol=1e-4)


def test_experts_start_different():
    layer = CondConv2D(4, 3, num_experts=3)
    layer.build((None, 8, 8, 2))
    kernels = to_numpy(layer.kernel)
    assert not np.allclose(kernels[0], kernels[1]) and not np.allclose(kernels[1], kernels[2])


@pytest.mark.parametrize("num_covariates, weights", [(0, 4), (2, 5)])
def test_harness(num_covariates, weights):
    images, covariates = random_inputs(2, (8, 8), 3, max(num_covariates, 1))
    run_layer_test(
        CondConv2D,
        init_kwargs={"filters": 4, "kernel_size": 3, "num_experts": 3, "num_covariates": num_covariates,
                     "padding": "same", "activation": "relu", "routing_regularizer": "l2"},
        input_data=[images, covariates] if num_covariates else images,
        expected_output_shape=(2, 8, 8, 4),
        expected_num_trainable_weights=weights,
        expected_num_non_trainable_weights=0,
        run_jit_check=True,
    )


@pytest.mark.parametrize("num_experts, num_covariates", [(2, 0), (4, 2), (8, 1)])
def test_from_conv2d_starts_at_the_convolution(num_experts, num_covariates):
    images, covariates = random_inputs(3, (10, 10), 3, max(num_covariates, 1))
    conv = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", bias_initializer="random_normal")
    expected = to_numpy(conv(images))
    layer = CondConv2D.from_conv2d(conv, num_experts=num_experts, num_covariates=num_covariates, name="cond")
    inputs = [images, covariates * 10.0] if num_covariates else images
    np.testing.assert_allclose(to_numpy(layer.routing_weights(inputs)), 1 / num_experts, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(layer(inputs)), expected, atol=1e-5, rtol=1e-5)
    assert layer.name == "cond" and layer.num_experts == num_experts


def test_bad_arguments_error_clearly():
    with pytest.raises(ValueError, match="num_experts"):
        CondConv2D(4, 3, num_experts=1)
    with pytest.raises(ValueError, match="num_covariates"):
        CondConv2D(4, 3, num_covariates=-1)
    with pytest.raises(ValueError, match="images alone"):
        CondConv2D(4, 3)([keras.Input((8, 8, 2)), keras.Input((2,))])
    with pytest.raises(ValueError, match=r"list \[images, covariates\]"):
        CondConv2D(4, 3, num_covariates=2)(keras.Input((8, 8, 2)))
    conv = keras.layers.Conv2D(4, 3)
    conv.build((None, 8, 8, 2))
    with pytest.raises(ValueError, match="kernel shape"):
        CondConv2D.from_conv2d(conv, kernel_size=5)
