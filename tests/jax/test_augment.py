"""AffineAugmentation on the JAX backend: in a model (jit-compiled fit) and in tf.data.

`use_opencv=True` is a TensorFlow-only path (`tf.numpy_function`): inside
tf.data Keras runs the layer on TensorFlow whatever the backend, so it works
there; called eagerly on JAX arrays it raises a clear ValueError by design.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hybridvision.common.data.affine_augment import AffineAugmentation
from tests.common.data.test_affine_augment import FULL_KNOBS, images
from tests.jax._reuse import reuse_tests

reuse_tests(
    "tests.common.data.test_affine_augment",
    globals(),
    # Eager use_opencv=True on JAX arrays is refused by design (tf.numpy_function
    # needs TensorFlow tensors); the tf.data route is tested below.
    exclude=("test_opencv_warp_equals_keras_warp", "test_opencv_wrap_shift_equals_roll_and_runs_in_tf_data"),
)


def test_as_model_layer_augments_in_fit_and_is_identity_in_predict():
    x = images(4)
    inputs = keras.Input(x.shape[1:])
    augmented = AffineAugmentation(rotation_range=30, horizontal_flip=True, rescale=1 / 255, seed=1)(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(augmented))
    model = keras.Model(inputs, outputs)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(logs["loss"]))

    # Keras does not jit-compile a model holding this tf.data-capable layer on
    # JAX ("Model doesn't support jit_compile"); it trains eagerly instead.
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    model.fit(x, np.zeros((4, 1)), batch_size=4, epochs=2, verbose=0, callbacks=[Record()])
    assert len(seen) == 2 and all(np.isfinite(seen))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # Inference skips the augmentation: the output is the plain rescaled mean.
    features = keras.Model(inputs, augmented).predict(x, verbose=0)
    np.testing.assert_allclose(features, x / 255, rtol=1e-6)
    # Training mode transforms each image differently.
    train_features = np.asarray(keras.Model(inputs, augmented)(x, training=True))
    assert not np.allclose(train_features, x / 255)


def test_opencv_path_runs_inside_tf_data_on_jax():
    x = images()
    full = AffineAugmentation(**FULL_KNOBS)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(2).map(lambda b: full(b, training=True, use_opencv=True))
    out = next(iter(dataset)).numpy()
    assert out.shape == x.shape and np.isfinite(out).all() and not np.allclose(out, x / 255)


def test_opencv_path_on_jax_arrays_is_a_clear_error():
    with pytest.raises(ValueError, match="use_opencv=True needs TensorFlow tensors"):
        AffineAugmentation(fill_mode="wrap").transform_images(images(), {"shift_x": np.array([5.0, -4.0])}, use_opencv=True)
