"""train / tune / predict CLIs on tiny generated faces."""

import csv
import json

import numpy as np
import pytest
import yaml

from hybridvision.apps.orientation_light import predict, train, tune
from hybridvision.apps.orientation_light.config import OrientationLightConfig
from hybridvision.apps.orientation_light.data import load_tables
from hybridvision.common.config import parse_config
from hybridvision.common.data.demo import generate


@pytest.fixture
def tiny_faces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return generate("orientation", tmp_path / "faces", scale="tiny")


def test_help(capsys):
    for module in (train, tune, predict):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--help"])
        assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--task", "--model", "--optimizer", "--augment", "--holdout-fraction", "--tuner",
                 "--max-trials", "--batch-sizes", "--images", "--out", "--grid"):
        assert flag in text


@pytest.mark.slow
def test_train_then_predict(tiny_faces, tmp_path, capsys):
    run_dir = tmp_path / "run"
    metrics = train.main(["--data-dir", str(tiny_faces), "--image-size", "24", "--epochs", "1", "--batch-size", "4",
                          "--augment", "--mirror", "--run-dir", str(run_dir), "--quiet", "--export-anyway"])
    saved = json.loads((run_dir / "metrics.json").read_text())
    # The report's from_scratch preset (SGD at 0.005) is written to the run's config; the flag's batch size wins.
    settings = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (settings["optimizer"], settings["learning_rate"], settings["batch_size"]) == ("sgd", 0.005, 4)
    for split in ("val", "test"):
        assert saved[split]["accuracy"] == pytest.approx(metrics[split]["accuracy"])
        assert set(saved[split]["per_class"]) == {"left", "center", "right"}
        assert {"precision", "recall"} <= set(saved[split]["per_class"]["left"])
        assert (run_dir / f"confusion_{split}.png").stat().st_size > 0
    assert np.asarray(saved["test"]["confusion_matrix"]).sum() == 6
    # Exported under the run's name, with latest.keras a copy of it.
    exported = tmp_path / "saved_models" / "orientation_light" / "run.keras"
    assert exported.is_file() and exported.with_suffix(".classes.json").is_file()
    assert (exported.parent / "latest.keras").read_bytes() == exported.read_bytes()

    out = tmp_path / "labels.csv"
    summary = predict.main(["--model", str(exported), "--images", str(tiny_faces / "test"), "--out", str(out),
                            "--grid", str(tmp_path / "grid.png"), "--batch-size", "4", "--quiet"])
    assert summary["labelled"] == 6 and summary["errors"] == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "label", "p_center", "p_left", "p_right"]
    assert sorted(r["file"].split("/")[0] for r in rows) == ["center"] * 2 + ["left"] * 2 + ["right"] * 2
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert "6 labelled now" in capsys.readouterr().out


@pytest.mark.slow
def test_missing_test_folder_uses_holdout_or_val(tiny_faces, tmp_path):
    import shutil

    shutil.rmtree(tiny_faces / "test")
    tables, _, note = load_tables(OrientationLightConfig(data_dir=str(tiny_faces)))
    assert tables["test"] is None and len(tables["val"]) == 6 and "metrics are on val only" in note
    metrics = train.main(["--data-dir", str(tiny_faces), "--image-size", "16", "--epochs", "1", "--batch-size", "4",
                          "--holdout-fraction", "0.5", "--run-dir", str(tmp_path / "b"), "--quiet",
                          "--export-anyway"])
    assert np.asarray(metrics["test"]["confusion_matrix"]).sum() == 3
    assert np.asarray(metrics["val"]["confusion_matrix"]).sum() == 3
    assert "held out" in metrics["notes"]["test_split"]


@pytest.mark.slow
def test_tune_two_trials_writes_config_and_resumes(tiny_faces, tmp_path, capsys):
    argv = ["--data-dir", str(tiny_faces), "--image-size", "16", "--epochs", "1", "--batch-size", "4", "--tuner", "grid",
            "--max-trials", "2", "--batch-sizes", "4,8", "--learning-rates", "0.001,0.01", "--run-dir",
            str(tmp_path / "tune"), "--quiet"]
    best, path = tune.main(argv)
    assert path == tmp_path / "tune" / "orientation_from_scratch" / "best_config.yaml"
    with open(path.parent / "trials.csv") as f:
        trials = list(csv.DictReader(f))
    assert len(trials) == 2
    first = trials[0]
    # A grid search starts from the config's own setting (from_scratch: the report's SGD at 0.005).
    assert (first["batch_size"], float(first["learning_rate"]), first["optimizer"]) == ("4", 0.005, "sgd")
    cfg = parse_config(OrientationLightConfig, ["--config", str(path)])
    assert cfg == best and cfg.batch_size in (4, 8) and cfg.run_dir is None
    assert set(yaml.safe_load(path.read_text())) == {f for f in OrientationLightConfig.__dataclass_fields__}

    # The same command again: both trials are done, nothing is retrained.
    capsys.readouterr()
    tune.main(argv)
    with open(path.parent / "trials.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert "Search: Running Trial" not in capsys.readouterr().out


def test_a_cache_that_would_not_fit_is_refused_before_the_model(tiny_faces, tmp_path, monkeypatch):
    from hybridvision.common.cli import UserError
    from hybridvision.common.data import pipeline

    monkeypatch.setattr(pipeline, "available_memory", lambda: 1000)  # bytes: the cache (on by default) cannot fit
    monkeypatch.setattr(train, "build_model", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(UserError, match=r"^--cache: \d+ decoded images \(24x24x3 each\) need .* available; ") as error:
        train.main(["--data-dir", str(tiny_faces), "--image-size", "24", "--epochs", "1", "--batch-size", "4",
                    "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert "\n" not in str(error.value)
