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


def test_report_presets_per_model_fill_what_the_user_left_unset():
    expected = {  # optimizer, learning rate, AdaBound's final lr, batch size, head dropout
        "from_scratch": ("sgd", 0.005, 0.1, 16, 0.7),
        "inception_v3": ("adabound", 0.003, 0.005, 32, 0.55),
        "resnet50": ("adam", 1e-3, 0.1, 32, 0.6),
        "efficientnet_lite0": ("adam", 1e-3, 0.1, 32, 0.7),
    }
    for name, values in expected.items():
        cfg = _config(model=name, image_size=96)
        filled = (cfg.optimizer, cfg.learning_rate, cfg.final_lr, cfg.batch_size, cfg.head_dropout)
        assert filled == values, name
        # The run's config (config.yaml / config.json are written from to_dict) holds the filled values.
        saved = cfg.to_dict()
        assert (saved["optimizer"], saved["learning_rate"], saved["batch_size"], saved["head_dropout"]) == (
            values[0], values[1], values[3], values[4])
    # What the user sets wins; a preset learning rate only goes with the preset's optimizer.
    cfg = _config(model="from_scratch", optimizer="adam", batch_size=8)
    assert (cfg.optimizer, cfg.learning_rate, cfg.batch_size) == ("adam", 1e-3, 8)
    cfg = _config(model="inception_v3", image_size=96, learning_rate=0.004, head_dropout=0.3)
    assert (cfg.optimizer, cfg.learning_rate, cfg.final_lr, cfg.head_dropout) == ("adabound", 0.004, 0.005, 0.3)
    assert _config(model="inception_v3", image_size=96, optimizer="adam").final_lr == 0.1


def test_inception_preset_compiles_adabound_with_the_reports_pair():
    cfg = _config(model="inception_v3", image_size=96)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    optimizer = compile_model(model, cfg).optimizer
    assert type(optimizer).__name__ == "AdaBound"
    assert float(optimizer.learning_rate) == pytest.approx(0.003) and optimizer.final_lr == 0.005


def _batchnorm_statistics(model):
    base = backbone_of(model)
    return [np.array(w) for layer in base._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization) for w in (layer.moving_mean, layer.moving_variance)]


@pytest.mark.parametrize("fix", ["on", "off"])
def test_batchnorm_fix_on_keeps_the_statistics_off_lets_them_move(fix):
    cfg = _config(model="efficientnet_lite0", image_size=32, batchnorm_fix=fix)
    model = compile_model(build_model(cfg, 3), cfg)
    base = backbone_of(model)
    batchnorms = [layer for layer in base._flatten_layers(include_self=False)
                  if isinstance(layer, keras.layers.BatchNormalization)]
    others = [layer for layer in base._flatten_layers(include_self=False)
              if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    assert batchnorms and others and not any(layer.trainable for layer in others)
    assert all(layer.trainable == (fix == "off") for layer in batchnorms)
    before = _batchnorm_statistics(model)
    kernels = [np.array(w) for layer in others for w in layer.weights]
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    model.fit(images, np.array([0, 1, 2, 0]), batch_size=4, epochs=1, verbose=0)
    after = _batchnorm_statistics(model)
    moved = [not np.array_equal(a, b) for a, b in zip(before, after)]
    if fix == "on":
        assert not any(moved)
    else:
        assert moved[0] and moved[1] and sum(moved) > 0.75 * len(moved), moved
    # The rest of the base stays frozen either way.
    for old, w in zip(kernels, (w for layer in others for w in layer.weights)):
        np.testing.assert_array_equal(np.array(w), old)
