"""`hybridvision inspect`: what an exported model is, read from the file without TensorFlow."""

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hybridvision.common.cli import UserError
from hybridvision.common.inspect_model import card_in_file, describe, main

ROOT = Path(__file__).resolve().parents[2]
CARD = {
    "app": "attractiveness", "task": "binary", "class_names": ["Attractive"], "target": "Attractive",
    "covariates": ["Male", "Young"], "covariate_coding": "1 = present, 0 = absent", "image_size": [48, 48],
    "inputs": [{"name": "images", "image": True, "shape": [None, None, None, 3]},
               {"name": "covariates", "image": False, "shape": [None, 2]}],
    "training": {"data": "data/celeba", "epochs_trained": 3, "settings": {"epochs": 3, "model": "hybrid"},
                 "metrics": {"val": {"accuracy": 0.75}, "test": {"accuracy": 0.5, "loss": 0.7}}},
}


def _keras_file(path: Path, config: dict) -> Path:
    """A `.keras` zip holding `config` as its config.json (what inspect reads)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    return path


def _with_card(path: Path) -> Path:
    layers = [{"class_name": "InputLayer", "config": {}},
              {"class_name": "ModelCard", "module": None, "config": {"name": "model_card", "card": CARD}}]
    return _keras_file(path, {"class_name": "Functional", "config": {"layers": layers}})


def test_inspect_prints_what_the_model_is_takes_and_how_it_was_trained(tmp_path, capsys):
    path = _with_card(tmp_path / "m.keras")
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    for text in ("app:          attractiveness", "classes:      1 in output order: Attractive",
                 "covariates:   2 in this order: Male, Young", "coding:       1 = present, 0 = absent",
                 "input images: images of any size", "resized inside to 48x48", "input covariates: 2 values",
                 "epochs=3", "val metrics:  accuracy 0.75", "test metrics: accuracy 0.5, loss 0.7"):
        assert text in out, text
    assert main([str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == CARD


def test_describe_shows_keys_it_does_not_know_too():
    assert any(line.startswith("modalities:") and "photo" in line for line in describe({"modalities": ["photo"]}))


@pytest.mark.parametrize("kind, message", [
    ("missing", "no such model file"),
    ("corrupt", "not a readable .keras model file"),
    ("foreign", "not one hybridvision exported (no model card)"),
])
def test_bad_files_fail_in_one_line_naming_the_file(tmp_path, kind, message):
    path = tmp_path / "m.keras"
    if kind == "corrupt":
        path.write_bytes(b"not a zip")
    elif kind == "foreign":
        _keras_file(path, {"class_name": "Sequential", "config": {"layers": []}})
    with pytest.raises(UserError, match=re.escape(message)) as err:
        main([str(path)])
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_card_in_file_is_none_for_a_keras_model_without_one(tmp_path):
    assert card_in_file(_keras_file(tmp_path / "m.keras", {"class_name": "Functional", "config": {}})) is None


def test_the_command_reads_the_card_without_tensorflow(tmp_path):
    path = _with_card(tmp_path / "m.keras")
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "hybridvision", "inspect", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "classes:      1 in output order: Attractive" in done.stdout
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}
    assert "hybridvision" in imported and not imported & {"tensorflow", "keras"}
    missing = subprocess.run([sys.executable, "-m", "hybridvision", "inspect", str(tmp_path / "none.keras")], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1
