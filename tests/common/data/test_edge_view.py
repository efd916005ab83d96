import keras
import numpy as np
import pytest
import tensorflow as tf

from hybridvision.common.data.edge_view import EdgeView
from tests.layer_harness import run_layer_test


def step_image(size=16):
    """Left half black, right half white: one vertical edge in the middle."""
    image = np.zeros((size, size, 3), "float32")
    image[:, size // 2:] = 255.0
    return image


def test_edge_drawing_of_a_step_is_one_dark_line_on_white():
    out = EdgeView(rate=1.0, seed=0)(step_image()[None], training=True).numpy()[0]
    assert out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])  # grey, three equal channels
    # Sobel marks the two columns beside the step; everything else is white.
    dark_columns = sorted(set(np.nonzero(out[..., 0] < 128)[1]))
    assert dark_columns == [7, 8]
    assert (out[:, :6] == 255.0).all() and (out[:, 10:] == 255.0).all()


def test_rate_and_training_flag():
    images = np.random.default_rng(0).uniform(0, 255, (64, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(EdgeView(rate=1.0)(images, training=False), images)
    np.testing.assert_array_equal(EdgeView(rate=0.0)(images, training=True), images)
    swapped = (EdgeView(rate=0.5, seed=3)(images, training=True).numpy() != images).any(axis=(1, 2, 3))
    assert 0.2 < swapped.mean() < 0.8
    with pytest.raises(ValueError, match="probability"):
        EdgeView(rate=1.5)


def test_runs_in_tf_data_and_round_trips_its_config():
    layer = EdgeView(rate=1.0, seed=1)
    dataset = tf.data.Dataset.from_tensor_slices(np.stack([step_image()] * 4)).batch(2)
    batches = [b.numpy() for b in dataset.map(lambda b: layer(b, training=True))]
    assert len(batches) == 2 and batches[0].shape == (2, 16, 16, 3)
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, EdgeView) and (restored.rate, restored.seed) == (1.0, 1)


def test_layer_harness():
    """The shared harness: config round trip, arguments in the config, shapes, no weights, and the
    .keras save / reload without custom_objects (inference mode: the images unchanged)."""
    images = np.stack([step_image()] * 2)
    out = run_layer_test(
        EdgeView,
        {"rate": 0.5, "seed": 1},
        images,
        expected_output_shape=images.shape,
        expected_num_trainable_weights=0,
        run_training_check=False,
    )
    np.testing.assert_array_equal(out, images)  # the harness calls it without training=True
