import keras
import numpy as np
import pytest

from hybridvision.common.layers import SpatialPyramidPooling2D
from tests.layer_harness import run_layer_test


def numpy_spp(images, bins, pooling):
    """Adaptive pooling cell by cell: cell i of n spans [floor(i L / n), ceil((i + 1) L / n))."""
    reduce = np.max if pooling == "max" else np.mean
    batch, height, width, channels = images.shape
    features = []
    for n in bins:
        grid = np.zeros((batch, n, n, channels))
        for i in range(n):
            top, bottom = (i * height) // n, -(-(i + 1) * height // n)
            for j in range(n):
                left, right = (j * width) // n, -(-(j + 1) * width // n)
                grid[:, i, j] = reduce(images[:, top:bottom, left:right], axis=(1, 2))
        features.append(grid.reshape(batch, -1))
    return np.concatenate(features, axis=1)


@pytest.mark.parametrize("pooling", ["max", "average"])
@pytest.mark.parametrize("height, width", [(8, 8), (7, 10), (3, 5), (1, 1)])
def test_matches_numpy_reference(pooling, height, width):
    images = (
        np.random.default_rng(0).normal(size=(2, height, width, 3)).astype("float32")
    )
    bins = (1, 2, 4)
    output = keras.ops.convert_to_numpy(SpatialPyramidPooling2D(bins, pooling)(images))
    assert output.shape == (2, 21 * 3)
    np.testing.assert_allclose(
        output, numpy_spp(images, bins, pooling), rtol=1e-5, atol=1e-6
    )


def test_order_is_bin_then_row_then_column_then_channel():
    # Each pixel holds its own (row, column) code, so the pooled values name
    # the cell they came from.
    rows, cols = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    image = np.stack([10 * rows + cols, -(10 * rows + cols)], axis=-1)[None].astype(
        "float32"
    )
    output = keras.ops.convert_to_numpy(SpatialPyramidPooling2D((1, 2), "max")(image))[
        0
    ]
    # bin 1: max over all; bin 2: cells (0,0) (0,1) (1,0) (1,1), channels interleaved.
    expected = [33, 0, 11, 0, 13, -2, 31, -20, 33, -22]
    np.testing.assert_array_equal(output, expected)


def test_fixed_length_for_any_size_in_one_model():
    inputs = keras.Input((None, None, 4))
    layer = SpatialPyramidPooling2D(bins=(1, 3))
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, 10 * 4)
    model = keras.Model(inputs, keras.layers.Dense(2)(outputs))
    rng = np.random.default_rng(1)
    for size in [(5, 9), (12, 12), (3, 3)]:
        images = rng.normal(size=(2, *size, 4)).astype("float32")
        assert model.predict(images, verbose=0).shape == (2, 2)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(layer(images)),
            numpy_spp(images, (1, 3), "max"),
            rtol=1e-5,
            atol=1e-6,
        )


def test_gradient_reaches_inputs():
    import tensorflow as tf

    images = tf.constant(np.random.default_rng(2).normal(size=(2, 6, 6, 2)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(images)
        loss = tf.reduce_sum(SpatialPyramidPooling2D((1, 2), "average")(images))
    grad = tape.gradient(loss, images).numpy()
    # Average pooling: each pixel counts 1/36 (bin 1) + 1/9 (its bin-2 cell).
    np.testing.assert_allclose(grad, np.full_like(grad, 1 / 36 + 1 / 9), rtol=1e-6)


def test_layer_harness():
    images = np.random.default_rng(3).normal(size=(2, 8, 6, 3)).astype("float32")
    output = run_layer_test(
        SpatialPyramidPooling2D,
        init_kwargs={"bins": (1, 2), "pooling": "average"},
        input_data=images,
        expected_output_shape=(2, 15),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        run_training_check=False,
    )
    np.testing.assert_allclose(
        output, numpy_spp(images, (1, 2), "average"), rtol=1e-5, atol=1e-6
    )


def test_bad_arguments_error_clearly():
    with pytest.raises(ValueError, match="bins"):
        SpatialPyramidPooling2D(bins=(1, 0))
    with pytest.raises(ValueError, match="bins"):
        SpatialPyramidPooling2D(bins=())
    with pytest.raises(ValueError, match="pooling"):
        SpatialPyramidPooling2D(pooling="min")
    with pytest.raises(ValueError, match="channels"):
        SpatialPyramidPooling2D()(keras.Input((8, 8)))
