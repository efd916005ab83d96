"""The shared CLI convention: dataclass defaults < --config file < flags."""

import dataclasses
import json

import pytest

from common.config import TrainConfig, option, parse_config


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
