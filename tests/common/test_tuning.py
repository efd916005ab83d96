"""KerasTuner helpers: config-driven search spaces, best config written, resume."""

import dataclasses

import keras
import numpy as np
import pytest

from hybridvision.common.config import TrainConfig, load_config_file
from hybridvision.common.tuning import ConfigHyperModel, choice, search, trials_table


def _problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    return x, y


def _build(cfg):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _data_factory(calls):
    x, y = _problem()

    def make(cfg):
        calls.append(cfg.batch_size)
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(cfg.batch_size)
        return ds, ds

    return make


def test_choice_default_is_config_value():
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    assert choice(hp, "lr", [0.1, 0.01], default=0.003) == 0.003
    assert 0.003 in hp.space[0].values


def test_grid_search_writes_best_config_and_resumes(tmp_path):
    calls = []
    cfg = TrainConfig(epochs=1, learning_rate=0.05, batch_size=16, quiet=True)
    hm = ConfigHyperModel(cfg, {"learning_rate": [0.05, 0.0001]}, _build, _data_factory(calls))
    best, tuner = search(hm, "grid", "val_accuracy", tmp_path, "toy", max_trials=2)
    assert len(trials_table(tuner)) == 2 and len(calls) == 2
    saved = load_config_file(tmp_path / "toy" / "best_config.yaml")
    assert saved["learning_rate"] == best.learning_rate and saved["epochs"] == 1
    assert (tmp_path / "toy" / "trials.csv").is_file()
    # Same command again: the finished search is reloaded, no trial runs twice.
    hm2 = ConfigHyperModel(cfg, {"learning_rate": [0.05, 0.0001]}, _build, _data_factory(calls))
    search(hm2, "grid", "val_accuracy", tmp_path, "toy", max_trials=2)
    assert len(calls) == 2


def test_unknown_field_and_tuner_kind(tmp_path):
    cfg = TrainConfig()
    with pytest.raises(ValueError, match="not in the config"):
        ConfigHyperModel(cfg, {"lr": [1]}, _build, _data_factory([]))
    hm = ConfigHyperModel(cfg, {"learning_rate": [0.1]}, _build, _data_factory([]))
    with pytest.raises(ValueError, match="--tuner"):
        search(hm, "bayes", "val_loss", tmp_path, "x")
    assert dataclasses.is_dataclass(cfg)
