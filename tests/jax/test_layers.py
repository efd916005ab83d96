"""The custom layers on the JAX backend.

The backend-neutral tests of tests/common/layers (HybridConv1D/2D/3D, FiLM,
FiLMConv2D, CondConv2D, SpatialPyramidPooling2D) are imported and run again
here; the TensorFlow-only ones (tf.GradientTape, tf.function) get JAX
counterparts below.
"""

import keras
import numpy as np
import pytest

from hybridvision.common.layers import CondConv2D, HybridConv2D, HybridConv3D, SpatialPyramidPooling2D
from tests.common.layers._reference import numpy_hybrid
from tests.common.layers.test_hybrid_conv2d import numpy_hybrid_conv2d, random_inputs
from tests.jax._reuse import reuse_tests
from tests.layer_harness import run_layer_test

reuse_tests(
    "tests.common.layers.test_hybrid_conv2d",
    globals(),
    exclude=(
        # tf.GradientTape / tf.function: TensorFlow-only; JAX versions below.
        "test_gradients_match_per_sample_loop_and_reach_every_covariate_kernel",
        "test_traced_with_unknown_batch",
        "test_jit_compiled_tf_function_picks_patches_on_a_cpu",  # tf.function; see test_auto_is_patches_on_jax_cpu
        "test_jit_compiled_with_unknown_batch_and_size",  # tf.function; test_hybrid_jit_with_several_batch_sizes below
    ),
)
reuse_tests(
    "tests.common.layers.test_hybrid_conv",
    globals(),
    exclude=("test_map_gradient_under_xla_matches_the_automatic_one",),  # tf.GradientTape / tf.function
)
for module in (
    "tests.common.layers.test_film",
    "tests.common.layers.test_condconv2d",
):
    reuse_tests(module, globals())
reuse_tests(
    "tests.common.layers.test_spatial_pyramid_pooling2d",
    globals(),
    exclude=("test_gradient_reaches_inputs",),  # tf.GradientTape; the harness below trains through it on JAX
)


def test_backend_is_jax():
    assert keras.config.backend() == "jax"


def test_hybrid_gradients_match_per_sample_loop_under_jax_grad():
    import jax

    images, covariates = random_inputs(3, 8, 8, 2, 3)
    layer = HybridConv2D(4, 3, 3, covariate_initializer="glorot_uniform", bias_initializer="random_normal")
    layer.build([images.shape, covariates.shape])
    upstream = np.random.default_rng(1).normal(size=(3, 6, 6, 4)).astype("float32")

    def vectorised(weights):
        outputs, _ = layer.stateless_call(weights, [], [images, covariates])
        return (outputs * upstream).sum()

    def per_sample(weights):
        w0, wl, bias = weights
        outputs = [
            keras.ops.conv(images[i : i + 1], w0 + keras.ops.tensordot(covariates[i], wl, 1))
            for i in range(3)
        ]
        return ((keras.ops.concatenate(outputs, 0) + bias) * upstream).sum()

    weights = [v.value for v in layer.trainable_variables]
    order = [layer.kernel.path, layer.covariate_kernels.path, layer.bias.path]
    ref_weights = [weights[[v.path for v in layer.trainable_variables].index(p)] for p in order]
    grads = dict(zip([v.path for v in layer.trainable_variables], jax.grad(vectorised)(weights)))
    expected = jax.grad(per_sample)(ref_weights)
    for path, ref in zip(order, expected):
        np.testing.assert_allclose(np.asarray(grads[path]), np.asarray(ref), atol=1e-4, rtol=1e-4)
    assert all(np.abs(np.asarray(grads[layer.covariate_kernels.path][i])).sum() > 0 for i in range(3))


def test_hybrid_jit_with_several_batch_sizes():
    import jax

    layer = HybridConv2D(3, 3, 2, padding="same", covariate_initializer="random_normal")
    layer.build([(None, None, None, 2), (None, 2)])
    weights = [v.value for v in layer.trainable_variables]
    call = jax.jit(lambda w, x, s: layer.stateless_call(w, [], [x, s])[0])
    for batch, size in [(1, 7), (3, 6)]:
        images, covariates = random_inputs(batch, size, size, 2, 2, seed=batch)
        np.testing.assert_allclose(
            np.asarray(call(weights, images, covariates)),
            numpy_hybrid_conv2d(images, covariates, layer),
            atol=1e-4, rtol=1e-4,
        )


def numpy_spp(x, bins, pooling):
    reduce = np.max if pooling == "max" else np.mean
    height, width = x.shape[1:3]
    features = []
    for n in bins:
        for i in range(n):
            for j in range(n):
                rows = slice(i * height // n, -(-(i + 1) * height // n))
                cols = slice(j * width // n, -(-(j + 1) * width // n))
                features.append(reduce(x[:, rows, cols], axis=(1, 2)))
    return np.concatenate(features, axis=-1)


@pytest.mark.parametrize("pooling, shape", [("max", (2, 8, 8, 3)), ("average", (2, 9, 7, 2))])
def test_spatial_pyramid_pooling_matches_numpy_and_harness(pooling, shape):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    output = run_layer_test(
        SpatialPyramidPooling2D,
        init_kwargs={"bins": (1, 2, 4), "pooling": pooling},
        input_data=x,
        expected_output_shape=(2, 21 * shape[-1]),
        expected_num_trainable_weights=0,
        run_training_check=False,
    )
    np.testing.assert_allclose(output, numpy_spp(x, (1, 2, 4), pooling), atol=1e-6)


def test_spatial_pyramid_pooling_unknown_size_feeds_dense_head():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(SpatialPyramidPooling2D((1, 2))(inputs)))
    for size in (5, 12):
        x = np.random.default_rng(size).normal(size=(2, size, size, 3)).astype("float32")
        assert model.predict(x, verbose=0).shape == (2, 2)


def test_auto_is_patches_on_jax_cpu(monkeypatch):
    # JAX compiles everything with XLA, so on a CPU "auto" is the im2col path.
    from hybridvision.common.layers.per_sample_conv import PerSampleConv, _accelerator_visible

    if _accelerator_visible():
        pytest.skip("on a GPU auto is 'grouped'")
    picked = []
    original = PerSampleConv._resolved_implementation
    monkeypatch.setattr(
        PerSampleConv, "_resolved_implementation", lambda self, x: picked.append(original(self, x)) or picked[-1]
    )
    layer = HybridConv3D(3, 3, 2, padding="same", covariate_initializer="random_normal")
    samples, covariates = random_inputs(2, 5, 4, 2, 2)
    samples = np.repeat(samples[:, :, :, None, :], 3, axis=3)  # (2, 5, 4, 3, 2) volumes
    output = np.asarray(layer([samples, covariates]))
    np.testing.assert_allclose(output, numpy_hybrid(samples, covariates, layer), atol=1e-4, rtol=1e-4)
    CondConv2D(3, 3, num_experts=2)(samples[..., 0, :])
    assert picked == ["patches", "patches"]


def test_condconv_gradients_reach_routing_under_jax_grad():
    import jax

    images, _ = random_inputs(3, 8, 8, 2, 1)
    layer = CondConv2D(4, 3, num_experts=3, padding="same")
    layer.build(images.shape)
    weights = [v.value for v in layer.trainable_variables]

    def loss(weights):
        outputs, _ = layer.stateless_call(weights, [], images)
        return (outputs**2).sum()

    grads = dict(zip([v.path for v in layer.trainable_variables], jax.grad(loss)(weights)))
    for path, grad in grads.items():
        assert np.abs(np.asarray(grad)).sum() > 0, f"no gradient reaches {path}"
