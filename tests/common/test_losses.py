"""WeightedBinaryCrossentropy against a NumPy reference, plain BCE and serialisation."""

import keras
import numpy as np
import pytest

from hybridvision.common.losses import WeightedBinaryCrossentropy


def _reference(y, p, w):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.mean(np.mean(-(w * y * np.log(p) + (1 - y) * np.log(1 - p)), axis=-1))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    y = (rng.random((2, 5)) < 0.4).astype("float32")
    logits = rng.normal(0, 2, (2, 5)).astype("float32")
    return y, logits, 1 / (1 + np.exp(-logits)), np.array([1.0, 4.0, 0.5, 9.0, 2.0], "float32")


def test_matches_numpy_reference(batch):
    y, _, p, w = batch
    got = float(WeightedBinaryCrossentropy(w)(y, p))
    np.testing.assert_allclose(got, _reference(y, p, w), rtol=1e-5)


def test_unit_weights_are_plain_binary_crossentropy(batch):
    y, _, p, _ = batch
    got = float(WeightedBinaryCrossentropy(1.0)(y, p))
    np.testing.assert_allclose(got, float(keras.losses.BinaryCrossentropy()(y, p)), rtol=1e-5)


def test_logits_and_probabilities_agree(batch):
    y, logits, p, w = batch
    a = float(WeightedBinaryCrossentropy(w, from_logits=True)(y, logits))
    b = float(WeightedBinaryCrossentropy(w)(y, p))
    np.testing.assert_allclose(a, b, rtol=1e-4)


def test_up_weighting_positives_raises_their_loss():
    y = np.array([[1.0, 0.0]])
    p = np.array([[0.2, 0.2]])
    plain = float(WeightedBinaryCrossentropy([1.0, 1.0])(y, p))
    weighted = float(WeightedBinaryCrossentropy([3.0, 1.0])(y, p))
    np.testing.assert_allclose(weighted - plain, 2.0 * -np.log(0.2) / 2, rtol=1e-5)


def test_config_round_trip_and_serialisation(batch):
    y, _, p, w = batch
    loss = WeightedBinaryCrossentropy(w, name="wbce")
    config = loss.get_config()
    assert config["pos_weight"] == pytest.approx(w.tolist()) and config["from_logits"] is False
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(again, WeightedBinaryCrossentropy)
    np.testing.assert_allclose(float(again(y, p)), float(loss(y, p)), rtol=1e-6)
