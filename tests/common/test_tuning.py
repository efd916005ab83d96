"""KerasTuner helpers: config-driven search spaces, best config written, resume."""

import dataclasses

import keras
import numpy as np
import pytest

from hybridvision.common.config import (
    TrainConfig,
    build_parser,
    float_space,
    load_config_file,
    option,
    parse_config,
    parse_range,
)
from hybridvision.common.tuning import ConfigHyperModel, choice, first_value, hyperparameter, search, trials_table


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


@pytest.mark.parametrize("text, expected", [
    ("1e-4,1e-3", [1e-4, 1e-3]),
    ("0.5", [0.5]),
    ([0.1, 0.2], [0.1, 0.2]),
    ("1e-5:1e-2:log", "1e-5:1e-2:log"),
    (" 0.1:0.5 ", "0.1:0.5"),
])
def test_float_space_takes_lists_and_ranges(text, expected):
    assert float_space(text) == expected


def test_parse_range_linear_and_log():
    assert parse_range("1e-5:1e-2:log") == (1e-5, 1e-2, "log")
    assert parse_range("0.1:0.5") == (0.1, 0.5, "linear")


@pytest.mark.parametrize("text, message", [
    ("0.5:0.1", "low must be below high"),
    ("0.1:0.1", "low must be below high"),
    ("0:1e-2:log", "log sampling needs low > 0"),
    ("a:b", "is not a range"),
    ("1:2:cubic", "is not a range"),
    ("1:2:3", "is not a range"),
    ("1e-3,fast", "expected comma-separated numbers"),
])
def test_bad_spaces_are_one_line_errors(text, message):
    with pytest.raises(ValueError, match=message) as info:
        float_space(text)
    assert "\n" not in str(info.value)


@dataclasses.dataclass
class _Space(TrainConfig):
    learning_rates: list[float] = option([1e-3, 3e-4], "learning rates to try", above=0, space=True)
    dropouts: list[float] = option([0.5], "dropout rates to try", min=0, below=1, space=True)


def test_space_flags_on_the_command_line_and_in_a_config_file(tmp_path, capsys):
    assert parse_config(_Space, []).learning_rates == [1e-3, 3e-4]  # the default: a list, as before
    cfg = parse_config(_Space, ["--learning-rates", "1e-5:1e-2:log", "--dropouts", "0.1,0.3"])
    assert cfg.learning_rates == "1e-5:1e-2:log" and cfg.dropouts == [0.1, 0.3]
    (tmp_path / "c.yaml").write_text("learning_rates: [0.01, 0.001]\ndropouts: '0.1:0.5'\n")
    cfg = parse_config(_Space, ["--config", str(tmp_path / "c.yaml")])
    assert cfg.learning_rates == [0.01, 0.001] and cfg.dropouts == "0.1:0.5"
    for argv, message in [(["--dropouts", "0.1:1.5"], "--dropouts must be in [0, 1) (got 1.5)"),
                          (["--learning-rates=-1:1"], "--learning-rates must be > 0 (got -1)"),
                          (["--learning-rates", "1e-2:1e-5:log"], "low must be below high (got 0.01 >= 1e-05)")]:
        with pytest.raises(SystemExit):
            parse_config(_Space, argv)
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert "low:high:log" in build_parser(_Space).format_help()


def test_a_range_is_a_float_hyperparameter_with_the_configs_value_as_default():
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    assert hyperparameter(hp, "learning_rate", "1e-5:1e-2:log", default=1e-3) == pytest.approx(1e-3)
    (space,) = hp.space
    assert type(space).__name__ == "Float" and space.sampling == "log"
    assert (space.min_value, space.max_value) == (1e-5, 1e-2)
    outside = keras_tuner.HyperParameters()
    assert hyperparameter(outside, "dropout", "0.1:0.5", default=0.7) == pytest.approx(0.1)  # the range's low end
    assert outside.space[0].sampling == "linear"
    assert hyperparameter(keras_tuner.HyperParameters(), "lr", [0.1, 0.01], default=0.1) == 0.1  # a list: a Choice
    assert first_value("1e-5:1e-2:log") == 1e-5 and first_value([3, 4]) == 3
