"""The CLIs: --help, one end-to-end training run, and a comparison that resumes."""

import csv
import json

import pytest

from hybridvision.apps.digit_pairs import compare, train
from hybridvision.common.data.demo import generate


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return generate("mnist", tmp_path / "mnist", scale="tiny")


def test_help_lists_the_app_flags(capsys):
    for module in (train, compare):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--help"])
        assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--model", "--pairs", "--aux-weight", "--data-dir", "--rounds", "--models", "--out"):
        assert flag in text


@pytest.mark.slow
def test_train_main_writes_metrics(tiny_mnist, tmp_path):
    run_dir = tmp_path / "run"
    argv = ["--data-dir", str(tiny_mnist), "--model", "aux", "--pairs", "20", "--epochs", "1", "--run-dir", str(run_dir), "--quiet",
            "--export-anyway"]  # 1 epoch on 20 pairs: at chance
    metrics = train.main(argv)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["test"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert {"train", "val", "test"} <= set(saved) and "digit_a_accuracy" in saved["test"]
    assert saved["notes"]["pairs"] == {"train": 16, "val": 4, "test": 20}
    assert (tmp_path / "saved_models" / "digit_pairs").is_dir()


@pytest.mark.slow
def test_compare_writes_table_and_resumes(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "cmp"
    common = ["--data-dir", str(tiny_mnist), "--pairs", "20", "--epochs", "1", "--models", "fc,cnn", "--out", str(out)]
    compare.main(common + ["--rounds", "1"])
    first = capsys.readouterr().out
    assert "[1/2] fc seed 0" in first and "[2/2] cnn seed 0" in first

    # An interrupted round: trained to the end but killed before metrics.json was written.
    (out / "runs" / "cnn" / "seed0" / "metrics.json").unlink()
    rows = compare.main(common + ["--rounds", "2"])
    second = capsys.readouterr().out
    assert "[1/4] fc seed 0" in second and "finished earlier" in second.split("\n")[0]
    # Rounds run outermost, and the interrupted round is finished, not skipped.
    assert "[2/4] cnn seed 0" in second and "[3/4] fc seed 1" in second and "[4/4] cnn seed 1" in second
    assert "finished earlier" not in next(line for line in second.splitlines() if "cnn seed 0" in line)
    assert (out / "runs" / "cnn" / "seed0" / "metrics.json").exists()
    assert [r["model"] for r in rows] == ["fc", "cnn"]

    with open(out / "comparison.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["model", "train_mean", "train_std", "test_mean", "test_std", "n",
                              "train_ci95_low", "train_ci95_high", "test_ci95_low", "test_ci95_high"]
    assert [r["model"] for r in table] == ["fc", "cnn"]
    for r in table:
        assert 0 <= float(r["test_mean"]) <= 1 and float(r["test_std"]) >= 0
        assert float(r["test_ci95_low"]) <= float(r["test_mean"]) <= float(r["test_ci95_high"]) and r["n"] == "2"
    assert "| fc | 2 |" in (out / "comparison.md").read_text()
    assert (out / "comparison.png").stat().st_size > 0

    # A round trained with other settings is an error, not mixed in.
    with pytest.raises(ValueError, match="other settings"):
        compare.main(["--data-dir", str(tiny_mnist), "--pairs", "20", "--epochs", "2", "--models", "fc", "--out", str(out), "--rounds", "1"])
