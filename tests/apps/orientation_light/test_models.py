"""Model builders: sizes, frozen transfer bases, heads, and one training step per model kind."""

import keras
import numpy as np
import pytest

from hybridvision.apps.orientation_light.config import OrientationLightConfig
from hybridvision.apps.orientation_light.models import backbone_of, build_model, compile_model, prepare_finetuning


def _config(**kw):
    return OrientationLightConfig(**{"weights": "none", **kw})


def _one_step(model, size):
    images = np.random.uniform(0, 255, (2, size, size, 3)).astype("float32")
    labels = np.array([0, 2])
    loss = model.train_on_batch(images, labels, return_dict=True)["loss"]
    assert np.isfinite(loss)
    probabilities = model.predict_on_batch(images)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_from_scratch_is_small_and_trains_one_step():
    cfg = _config(model="from_scratch", image_size=64)
    model = compile_model(build_model(cfg, 3), cfg)
    assert model.count_params() < 700_000
    rates = [layer.rate for layer in backbone_of(model).layers if isinstance(layer, keras.layers.Dropout)]
    assert rates and rates[0] == pytest.approx(0.2) and rates == sorted(rates)
    assert model.get_layer("head_dropout").rate == pytest.approx(0.7)
    momenta = {layer.momentum for layer in backbone_of(model).layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}
    _one_step(model, 64)


def _transfer_checks(model):
    base = backbone_of(model)
    assert not base.trainable
    assert all(not layer.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))
    names = [layer.name for layer in model.layers]
    i = names.index("avg_pool")
    assert names[i:i + 4] == ["avg_pool", "dense_512", "dense_128", "head_dropout"]
    assert model.get_layer("dense_512").units == 512 and model.get_layer("dense_128").units == 128
    # Only the head trains while the base is frozen.
    assert len(model.trainable_weights) == 6


@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("resnet50", 32), ("inception_v3", 75)])
def test_transfer_models_frozen_head_and_one_step(name, size):
    cfg = _config(model=name, image_size=size, optimizer="adabound", finetune_layers=5)
    model = compile_model(build_model(cfg, 3), cfg)
    _transfer_checks(model)
    base = backbone_of(model)
    moving = [w.numpy().copy() for w in base.non_trainable_weights if "moving_mean" in w.path][:3]
    _one_step(model, size)
    # BatchNorm of the frozen base runs in inference mode: its statistics never move.
    after = [w.numpy() for w in base.non_trainable_weights if "moving_mean" in w.path][:3]
    for a, b in zip(moving, after):
        np.testing.assert_array_equal(a, b)
    prepare_finetuning(model, cfg, cfg.learning_rate)
    assert len(model.trainable_weights) > 6
    assert all(not layer.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))
    _one_step(model, size)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adabound"])
def test_optimizers_compile(optimizer):
    cfg = _config(model="from_scratch", image_size=16, optimizer=optimizer)
    model = compile_model(build_model(cfg, 3), cfg)
    assert model.optimizer.learning_rate.numpy() == pytest.approx(cfg.learning_rate)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="--image-size"):
        _config(model="inception_v3", image_size=64)
    with pytest.raises(ValueError, match="--finetune-layers"):
        _config(model="from_scratch", finetune_layers=3)
