"""The shared CLI convention: dataclass defaults < --config file < flags."""

import dataclasses
import json

import pytest

from hybridvision.common.config import AugmentOptions, TrainConfig, option, parse_config


@dataclasses.dataclass
class ToyConfig(TrainConfig):
    model: str = option("cnn", "which model", choices=("cnn", "fc"))
    covariates: list[str] = option(["Male"], "covariate names")
    augment: bool = option(True, "augment training images")


def test_defaults_and_flags():
    cfg = parse_config(ToyConfig, [])
    assert cfg == ToyConfig()
    cfg = parse_config(ToyConfig, ["--epochs", "3", "--covariates", "Smiling,Young", "--no-augment", "--model", "fc"])
    assert (cfg.epochs, cfg.covariates, cfg.augment, cfg.model) == (3, ["Smiling", "Young"], False, "fc")


def test_yaml_and_json_config_files_with_flag_override(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("epochs: 7\nlearning_rate: 0.01\ncovariates: [Smiling, Young]\n")
    cfg = parse_config(ToyConfig, ["--config", str(yml), "--epochs", "2"])
    assert (cfg.epochs, cfg.learning_rate, cfg.covariates) == (2, 0.01, ["Smiling", "Young"])
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"batch-size": 4, "augment": "false"}))
    cfg = parse_config(ToyConfig, ["--config", str(js)])
    assert (cfg.batch_size, cfg.augment) == (4, False)


def test_unknown_key_in_file_lists_valid_keys(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 3\n")
    with pytest.raises(SystemExit):
        parse_config(ToyConfig, ["--config", str(bad)])
    err = capsys.readouterr().err
    assert "epochz" in err and "valid keys" in err and "epochs" in err


def test_bad_choice_and_missing_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_config(ToyConfig, ["--model", "vit"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(ToyConfig, ["--config", str(tmp_path / "nope.yaml")])
    assert "nope.yaml" in capsys.readouterr().err
    bad = tmp_path / "b.yaml"
    bad.write_text("model: vit\n")
    with pytest.raises(SystemExit):
        parse_config(ToyConfig, ["--config", str(bad)])
    assert "--model 'vit' is not valid" in capsys.readouterr().err


@dataclasses.dataclass
class AutoConfig(TrainConfig):
    """A toy app whose learning rate is automatic: by model, and checked against the epochs."""

    model: str = option("cnn", "which model", choices=("cnn", "fc"))
    learning_rate: float | None = option(None, "default by model")
    warmup: int = option(0, "warm-up epochs", min=0)

    def fill_automatic(self):
        if self.learning_rate is None:
            self.learning_rate = {"cnn": 0.1, "fc": 0.2}[self.model]
        if self.warmup > self.epochs:
            raise ValueError(f"--warmup {self.warmup} is longer than --epochs {self.epochs}")


def test_automatic_values_are_filled_when_a_config_is_made(tmp_path, capsys):
    from hybridvision.common.config import config_from_dict, save_config

    assert AutoConfig().learning_rate == 0.1 and AutoConfig(model="fc").learning_rate == 0.2
    parsed = parse_config(AutoConfig, ["--model", "fc"])
    assert parsed == AutoConfig(model="fc") == config_from_dict(AutoConfig, {"model": "fc"})
    assert parse_config(AutoConfig, ["--learning-rate", "0.5"]).learning_rate == 0.5
    # A saved (filled-in) config reads back equal, with no automatic value left to fill.
    save_config(parsed, tmp_path / "config.yaml")
    assert parse_config(AutoConfig, ["--config", str(tmp_path / "config.yaml")]) == parsed
    # replace() works an automatic value out again; a given one stays; dataclasses.replace keeps both.
    assert parsed.replace(model="cnn").learning_rate == 0.1
    assert AutoConfig(learning_rate=0.5).replace(model="fc").learning_rate == 0.5
    assert dataclasses.replace(parsed, model="cnn").learning_rate == 0.2
    # Ranges and choices are checked first (before fill_automatic reads them), combinations after.
    with pytest.raises(ValueError, match="--model 'vit' is not valid"):
        AutoConfig(model="vit")
    with pytest.raises(ValueError, match="--warmup must be >= 0"):
        AutoConfig(warmup=-1)
    with pytest.raises(SystemExit):
        parse_config(AutoConfig, ["--warmup", "20", "--epochs", "3"])
    assert capsys.readouterr().err.strip() == "error: --warmup 20 is longer than --epochs 3"


@dataclasses.dataclass
class AugmentedConfig(AugmentOptions, TrainConfig):
    rotation_range: float = option(10.0)  # a new default; help, range and choices are inherited
    fill_mode: str = option("reflect")


def test_augment_options_are_one_shared_piece(capsys):
    from hybridvision.common.data.affine_augment import AffineAugmentation

    assert AugmentedConfig().affine_augmentation() is None  # --augment is off by default
    cfg = parse_config(AugmentedConfig, ["--augment", "--zoom-range", "0.3", "--seed", "4"])
    layer = cfg.affine_augmentation(horizontal_flip=True)
    assert isinstance(layer, AffineAugmentation)
    assert (layer.rotation_range, layer.zoom_range, layer.width_shift_range, layer.fill_mode) == (10.0, 0.3, 0.2,
                                                                                                "reflect")
    assert layer.horizontal_flip and layer.seed == 4
    with pytest.raises(SystemExit):
        parse_config(AugmentedConfig, ["--rotation-range", "200"])
    assert "--rotation-range must be in [0, 180] (got 200)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--fill-mode 'mirror' is not valid"):
        AugmentedConfig(fill_mode="mirror")
    with pytest.raises(SystemExit):
        parse_config(AugmentedConfig, ["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--augment: rotation in degrees, drawn in [-r, r] (default: 10.0) [in [0, 180]]" in shown


def test_help_sections_follow_the_option_groups(capsys):
    @dataclasses.dataclass
    class Sectioned(TrainConfig):
        own: int = option(1, "a tool's own setting")
        depth: int = option(3, "layers", group="model")
        epochs: int = option(4)  # redeclared without a group: keeps TrainConfig's (training)

    with pytest.raises(SystemExit):
        parse_config(Sectioned, ["--help"], prog="hybridvision demo_app train")
    text = capsys.readouterr().out
    assert text.startswith("usage: hybridvision demo_app train")
    options, model, training = (text.index(title) for title in ("\noptions:", "\nmodel:", "\ntraining:"))
    assert options < text.index("--own") < model < text.index("--depth") < training < text.index("--epochs")
    assert text.index("--run-dir") > text.index("\noutput:") > text.index("--epochs")


def test_an_unknown_option_group_is_refused():
    with pytest.raises(ValueError, match="option group 'modle' is not one of data, model, training, output"):
        option(1, "x", group="modle")
