
import keras
import numpy as np
import pytest
import tensorflow as tf

from hybridvision.common.layers import HybridConv2D
from hybridvision.common.layers.per_sample_conv import _accelerator_visible, _grouped_conv_differentiable_on_cpu
from tests.common.layers._reference import numpy_hybrid, to_numpy
from tests.layer_harness import run_layer_test


def numpy_conv2d(image, kernel, strides, padding, dilation):
    """Direct 2D convolution of one (H, W, C) image, TensorFlow padding rules."""
    (kh, kw), (sh, sw), (dh, dw) = kernel.shape[:2], strides, dilation
    height, width = image.shape[:2]
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if padding == "same":
        out_h, out_w = -(-height // sh), -(-width // sw)
        pad_h = max((out_h - 1) * sh + span_h - height, 0)
        pad_w = max((out_w - 1) * sw + span_w - width, 0)
        image = np.pad(
            image,
            (
                (pad_h // 2, pad_h - pad_h // 2),
                (pad_w // 2, pad_w - pad_w // 2),
                (0, 0),
            ),
        )
    else:
        out_h, out_w = (height - span_h) // sh + 1, (width - span_w) // sw + 1
    output = np.zeros((out_h, out_w, kernel.shape[-1]))
    for a in range(kh):
        for b in range(kw):
            window = image[
                a * dh : a * dh + (out_h - 1) * sh + 1 : sh,
                b * dw : b * dw + (out_w - 1) * sw + 1 : sw,
            ]
            output += window @ kernel[a, b]
    return output


def numpy_hybrid_conv2d(images, covariates, layer):
    w0 = keras.ops.convert_to_numpy(layer.kernel).astype("float64")
    wl = keras.ops.convert_to_numpy(layer.covariate_kernels).astype("float64")
    bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else 0.0
    outputs = []
    for image, s in zip(images, covariates):
        kernel = w0 + np.tensordot(s, wl, axes=1)
        out = numpy_conv2d(
            image, kernel, layer.strides, layer.padding, layer.dilation_rate
        )
        outputs.append(out + bias)
    return np.stack(outputs)


def random_inputs(batch, height, width, channels, num_covariates, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(batch, height, width, channels)).astype("float32")
    covariates = rng.normal(size=(batch, num_covariates)).astype("float32")
    return images, covariates


@pytest.mark.parametrize(
    "num_covariates, kernel_size, strides, padding, dilation, batch",
    [
        (1, 3, 1, "valid", 1, 1),
        (3, 3, 1, "same", 1, 3),
        (3, 3, 2, "same", 1, 3),
        (1, (3, 2), 2, "valid", 1, 3),
        (3, 3, 1, "same", 2, 3),
        (1, 3, 1, "valid", 2, 1),
    ],
)
@pytest.mark.parametrize("implementation", ["grouped", "map", "patches", "expanded"])
def test_matches_per_sample_numpy_reference(
    num_covariates, kernel_size, strides, padding, dilation, batch, implementation
):
    images, covariates = random_inputs(batch, 11, 9, 3, num_covariates)
    layer = HybridConv2D(
        4,
        kernel_size,
        num_covariates,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        covariate_initializer="glorot_uniform",
        bias_initializer="random_normal",
        implementation=implementation,
    )
    output = keras.ops.convert_to_numpy(layer([images, covariates]))
    expected = numpy_hybrid_conv2d(images, covariates, layer)
    assert output.shape == expected.shape
    np.testing.assert_allclose(output, expected, atol=1e-4, rtol=1e-4)


def test_activation_and_integer_covariates():
    images, _ = random_inputs(2, 8, 8, 2, 2)
    covariates = np.array([[0, 1], [1, 1]], dtype="int32")
    layer = HybridConv2D(
        3,
        3,
        2,
        activation="relu",
        covariate_initializer="glorot_uniform",
        padding="same",
    )
    output = keras.ops.convert_to_numpy(layer([images, covariates]))
    expected = np.maximum(numpy_hybrid_conv2d(images, covariates, layer), 0.0)
    np.testing.assert_allclose(output, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("implementation", ["grouped", "map", "patches", "expanded"])
def test_gradients_match_per_sample_loop_and_reach_every_covariate_kernel(
    implementation,
):
    images, covariates = random_inputs(3, 8, 8, 2, 3)
    layer = HybridConv2D(
        4, 3, 3, covariate_initializer="glorot_uniform", implementation=implementation
    )
    layer.build([images.shape, covariates.shape])
    weights = [layer.kernel, layer.covariate_kernels, layer.bias]
    upstream = tf.constant(
        np.random.default_rng(1).normal(size=(3, 6, 6, 4)), tf.float32
    )

    if implementation == "grouped" and not (_accelerator_visible() or _grouped_conv_differentiable_on_cpu()):
        # TensorFlow without oneDNN has no CPU gradient for a grouped
        # convolution: "auto" never picks it there (see the test below), and
        # asking for it explicitly fails with TensorFlow's own error.
        with pytest.raises(tf.errors.InvalidArgumentError, match="grouped convolutions are not supported on CPU"):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer([images, covariates]) * upstream)
            tape.gradient(loss, [w.value for w in weights])
        assert layer._auto_implementation((None, 8, 8, 2)) != "grouped"
        return
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer([images, covariates]) * upstream)
    grads = tape.gradient(loss, [w.value for w in weights])

    # Reference: the thesis's per-sample loop, one ordinary convolution each.
    with tf.GradientTape() as tape:
        w0, wl, bias = (w.value for w in weights)
        outputs = [
            tf.nn.conv2d(
                images[i : i + 1], w0 + tf.tensordot(covariates[i], wl, 1), 1, "VALID"
            )
            for i in range(3)
        ]
        loss = tf.reduce_sum((tf.concat(outputs, 0) + bias) * upstream)
    expected = tape.gradient(loss, [w0, wl, bias])

    for grad, ref in zip(grads, expected):
        np.testing.assert_allclose(grad.numpy(), ref.numpy(), atol=1e-4, rtol=1e-4)
    for index in range(3):
        assert np.abs(grads[1][index].numpy()).sum() > 0, (
            f"no gradient reaches W_{index + 1}"
        )


def test_training_step_moves_zero_initialised_covariate_kernels():
    images, covariates = random_inputs(4, 8, 8, 2, 2)
    image_input, covariate_input = keras.Input((8, 8, 2)), keras.Input((2,))
    layer = HybridConv2D(3, 3, 2)
    model = keras.Model(
        [image_input, covariate_input],
        keras.layers.GlobalAveragePooling2D()(layer([image_input, covariate_input])),
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    assert not np.any(keras.ops.convert_to_numpy(layer.covariate_kernels))
    model.fit([images, covariates], np.ones((4, 3)), batch_size=4, epochs=1, verbose=0)
    trained = keras.ops.convert_to_numpy(layer.covariate_kernels)
    assert all(np.any(trained[index]) for index in range(2))


def test_from_conv2d_starts_exactly_at_the_convolution():
    images, covariates = random_inputs(3, 10, 10, 3, 2)
    conv = keras.layers.Conv2D(
        5,
        3,
        strides=2,
        padding="same",
        activation="relu",
        bias_initializer="random_normal",
    )
    expected = keras.ops.convert_to_numpy(conv(images))
    hybrid = HybridConv2D.from_conv2d(conv, num_covariates=2, name="hybrid")
    assert hybrid.name == "hybrid"
    assert (hybrid.filters, hybrid.kernel_size, hybrid.strides, hybrid.padding) == (
        5,
        (3, 3),
        (2, 2),
        "same",
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(hybrid.kernel),
        keras.ops.convert_to_numpy(conv.kernel),
    )
    output = keras.ops.convert_to_numpy(hybrid([images, covariates * 10.0]))
    np.testing.assert_allclose(output, expected, atol=1e-5, rtol=1e-5)


def test_from_conv2d_rejects_unbuilt_or_reshaped_conv():
    with pytest.raises(ValueError, match="not built"):
        HybridConv2D.from_conv2d(keras.layers.Conv2D(4, 3), num_covariates=1)
    conv = keras.layers.Conv2D(4, 3)
    conv.build((None, 8, 8, 2))
    with pytest.raises(ValueError, match="kernel shape"):
        HybridConv2D.from_conv2d(conv, num_covariates=1, filters=8)


def test_layer_harness():
    """Config round trip, shapes, weights, training and the .keras save / reload without custom_objects."""
    images, covariates = random_inputs(2, 8, 8, 3, 2)
    run_layer_test(
        HybridConv2D,
        init_kwargs={
            "filters": 4,
            "kernel_size": 3,
            "num_covariates": 2,
            "padding": "same",
            "activation": "relu",
            "covariate_initializer": "random_normal",
            "covariate_regularizer": "l2",
        },
        input_data=[images, covariates],
        expected_output_shape=(2, 8, 8, 4),
        expected_num_trainable_weights=3,
        expected_num_non_trainable_weights=0,
    )


def test_functional_model_with_unknown_batch_and_size():
    image_input, covariate_input = keras.Input((None, None, 2)), keras.Input((1,))
    layer = HybridConv2D(3, 3, 1, strides=2, covariate_initializer="random_normal")
    outputs = layer([image_input, covariate_input])
    assert tuple(outputs.shape) == (None, None, None, 3)
    model = keras.Model([image_input, covariate_input], outputs)
    for batch, size in [(1, 9), (3, 12)]:
        images, covariates = random_inputs(batch, size, size, 2, 1, seed=batch)
        output = model.predict([images, covariates], verbose=0)
        expected = numpy_hybrid_conv2d(images, covariates, layer)
        np.testing.assert_allclose(output, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("implementation", ["grouped", "map", "patches", "expanded"])
def test_traced_with_unknown_batch(implementation):
    layer = HybridConv2D(
        3,
        3,
        2,
        padding="same",
        covariate_initializer="random_normal",
        implementation=implementation,
    )
    traced = tf.function(
        layer,
        input_signature=[
            [tf.TensorSpec((None, None, None, 2)), tf.TensorSpec((None, 2))]
        ],
    )
    images, covariates = random_inputs(3, 7, 6, 2, 2)
    np.testing.assert_allclose(
        traced([images, covariates]).numpy(),
        numpy_hybrid_conv2d(images, covariates, layer),
        atol=1e-4,
        rtol=1e-4,
    )


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_policy(policy):
    images, covariates = random_inputs(2, 8, 8, 2, 2)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = HybridConv2D(4, 3, 2, covariate_initializer="random_normal")
        output = layer([images, covariates.astype("int32")])
        assert keras.backend.standardize_dtype(output.dtype) == policy.split("_")[1]
        assert keras.backend.standardize_dtype(layer.kernel.dtype) == "float32"
        expected = numpy_hybrid_conv2d(images, covariates.astype("int32"), layer)
        output = keras.ops.convert_to_numpy(keras.ops.cast(output, "float32"))
        np.testing.assert_allclose(output, expected, atol=0.1 * np.abs(expected).max())
        # A training step under the policy (float16 needs loss scaling, which
        # compile adds) moves the float32 covariate kernels.
        image_input, covariate_input = keras.Input((8, 8, 2)), keras.Input((2,))
        hybrid = HybridConv2D(3, 3, 2)
        model = keras.Model(
            [image_input, covariate_input],
            keras.layers.GlobalAveragePooling2D()(
                hybrid([image_input, covariate_input])
            ),
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
        model.fit(
            [images, covariates], np.ones((2, 3)), batch_size=2, epochs=1, verbose=0
        )
        trained = keras.ops.convert_to_numpy(hybrid.covariate_kernels)
        assert np.all(np.isfinite(trained)) and np.any(trained)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.config.dtype_policy().name == previous.name


def test_auto_implementation_follows_the_measured_rule():
    small = HybridConv2D(8, 3, 1)
    big = HybridConv2D(64, 3, 1)
    cases = [
        (small, (None, 16, 16, 8)),
        (big, (None, 64, 64, 64)),
        (big, (None, None, None, 8)),
    ]
    picked = [layer._auto_implementation(shape) for layer, shape in cases]
    if _accelerator_visible():
        assert picked == ["grouped"] * 3
    else:
        # Small: grouped only where TensorFlow can differentiate it on this CPU.
        small_pick = "grouped" if _grouped_conv_differentiable_on_cpu() else "map"
        assert picked == [small_pick, "map", "map"]


def test_without_a_cpu_grouped_gradient_auto_maps(monkeypatch):
    # TensorFlow's own CPU kernels cannot differentiate a grouped conv; only oneDNN's can.
    from hybridvision.common.layers import per_sample_conv

    monkeypatch.setattr(per_sample_conv, "_accelerator_visible", lambda: False)
    monkeypatch.setattr(per_sample_conv, "_grouped_conv_differentiable_on_cpu", lambda: False)
    assert HybridConv2D(8, 3, 1)._auto_implementation((None, 16, 16, 8)) == "map"
    monkeypatch.setattr(per_sample_conv, "_grouped_conv_differentiable_on_cpu", lambda: True)
    assert HybridConv2D(8, 3, 1)._auto_implementation((None, 16, 16, 8)) == "grouped"


def test_wrong_covariate_width_errors_clearly():
    images, covariates = random_inputs(2, 8, 8, 2, 3)
    layer = HybridConv2D(4, 3, num_covariates=2)
    with pytest.raises(ValueError, match=r"covariates must have shape \(batch, 2\)"):
        layer([images, covariates])
    with pytest.raises(ValueError, match="num_covariates"):
        HybridConv2D(4, 3, num_covariates=2)(
            [keras.Input((8, 8, 2)), keras.Input((3,))]
        )


def test_bad_arguments_error_clearly():
    with pytest.raises(ValueError, match=r"list \[images, covariates\]"):
        HybridConv2D(4, 3, 1)(np.zeros((1, 8, 8, 2), "float32"))
    with pytest.raises(ValueError, match="dilation_rate"):
        HybridConv2D(4, 3, 1, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="padding"):
        HybridConv2D(4, 3, 1, padding="causal")
    with pytest.raises(ValueError, match="num_covariates"):
        HybridConv2D(4, 3, 0)
    with pytest.raises(ValueError, match="implementation"):
        HybridConv2D(4, 3, 1, implementation="loop")


# The layer's entry in a .keras file saved before the rank-generic rewrite
# (Keras 3.15 / TF 2.21): its module path, registered name and config keys.
# Weights in that file's order: kernel (3, 3, 2, 3), covariate kernels
# (2, 3, 3, 2, 3), bias (3,).
OLD_LAYER_ENTRY = {
    "module": "hybridvision.common.layers.hybrid_conv2d",
    "class_name": "HybridConv2D",
    "registered_name": "hybridvision>HybridConv2D",
    "config": {
        "name": "hybrid", "trainable": True,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
        "filters": 3, "kernel_size": [3, 3], "num_covariates": 2, "strides": [2, 2], "padding": "same",
        "dilation_rate": [1, 1], "activation": "relu", "use_bias": True,
        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                               "config": {"seed": None}, "registered_name": None},
        "covariate_initializer": {"module": "keras.initializers", "class_name": "RandomNormal",
                                  "config": {"seed": None, "mean": 0.0, "stddev": 0.05}, "registered_name": None},
        "bias_initializer": {"module": "keras.initializers", "class_name": "RandomNormal",
                             "config": {"seed": None, "mean": 0.0, "stddev": 0.05}, "registered_name": None},
        "kernel_regularizer": None,
        "covariate_regularizer": {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01},
                                  "registered_name": None},
        "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None, "covariate_constraint": None,
        "implementation": "auto",
    },
}


def test_loads_the_config_and_weights_saved_before_the_rank_generic_rewrite(tmp_path):
    layer = keras.saving.deserialize_keras_object(OLD_LAYER_ENTRY)
    assert isinstance(layer, HybridConv2D) and layer.strides == (2, 2)
    images, covariates = random_inputs(3, 7, 6, 2, 2)
    images_in, covariates_in = keras.Input((7, 6, 2)), keras.Input((2,))
    model = keras.Model([images_in, covariates_in], layer([images_in, covariates_in]))
    rng = np.random.default_rng(5)
    old_order = [rng.normal(0, 0.3, shape).astype("float32") for shape in ((3, 3, 2, 3), (2, 3, 3, 2, 3), (3,))]
    layer.set_weights(old_order)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.covariate_kernels), old_order[1])
    expected = numpy_hybrid(images, covariates, layer)
    np.testing.assert_allclose(to_numpy(model([images, covariates])), expected, atol=1e-5, rtol=1e-5)
    path = tmp_path / "hybrid.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(to_numpy(restored([images, covariates])), expected, atol=1e-5, rtol=1e-5)


def test_layer_harness_under_jit():
    images, covariates = random_inputs(2, 8, 8, 3, 2)
    run_layer_test(
        HybridConv2D,
        init_kwargs={
            "filters": 4,
            "kernel_size": 3,
            "num_covariates": 2,
            "strides": 2,
            "padding": "same",
            "covariate_initializer": "random_normal",
        },
        input_data=[images, covariates],
        expected_output_shape=(2, 4, 4, 4),
        run_jit_check=True,
    )


def test_auto_implementation_under_xla():
    layer = HybridConv2D(8, 3, 1)
    shapes = [(None, 16, 16, 8), (None, 64, 64, 64), (None, None, None, 8)]
    picked = [layer._auto_implementation(shape, xla=True) for shape in shapes]
    assert picked == (["grouped"] * 3 if _accelerator_visible() else ["patches", "map", "map"])


def test_jit_compiled_tf_function_picks_patches_on_a_cpu(monkeypatch):
    # TensorFlow: inside tf.function(jit_compile=True) "auto" sees XLA.
    if _accelerator_visible():
        pytest.skip("on a GPU auto is 'grouped' with or without XLA")
    picked = []
    layer = HybridConv2D(3, 3, 2, padding="same", covariate_initializer="random_normal")
    layer.build([(None, None, None, 2), (None, 2)])
    original = HybridConv2D._resolved_implementation

    def spy(self, images):
        picked.append(original(self, images))
        return picked[-1]

    monkeypatch.setattr(HybridConv2D, "_resolved_implementation", spy)
    images, covariates = random_inputs(3, 7, 6, 2, 2)
    jitted = tf.function(lambda x, s: layer([x, s]), jit_compile=True)(images, covariates)
    plain = tf.function(lambda x, s: layer([x, s]))(images, covariates)
    assert picked == ["patches", "grouped" if _grouped_conv_differentiable_on_cpu() else "map"]
    expected = numpy_hybrid_conv2d(images, covariates, layer)
    for output in (jitted, plain):
        np.testing.assert_allclose(output.numpy(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("strides, padding", [(1, "same"), (2, "same"), (2, "valid")])
def test_jit_compiled_with_unknown_batch_and_size(strides, padding):
    # XLA compiles per concrete shape; the traced graph has unknown sizes.
    layer = HybridConv2D(3, 3, 2, strides=strides, padding=padding, covariate_initializer="random_normal")
    layer.build([(None, None, None, 2), (None, 2)])
    traced = tf.function(
        lambda x, s: layer([x, s]),
        jit_compile=True,
        input_signature=[tf.TensorSpec((None, None, None, 2)), tf.TensorSpec((None, 2))],
    )
    for batch, height, width in [(3, 7, 6), (2, 9, 10)]:
        images, covariates = random_inputs(batch, height, width, 2, 2, seed=batch)
        np.testing.assert_allclose(
            traced(images, covariates).numpy(), numpy_hybrid_conv2d(images, covariates, layer), atol=1e-4, rtol=1e-4
        )
