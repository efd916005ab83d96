"""attractiveness study: cells over seeds, controls, interval, paired test, resume (tiny demo data)."""

import csv
import json

import numpy as np
import pandas as pd
import pytest

from hybridvision.apps.attractiveness import study, train
from hybridvision.apps.attractiveness.models import build_model, parse_positions, resolve_positions
from hybridvision.common.data.demo import generate


def test_controls_transform_only_the_covariate_columns():
    tables = {s: pd.DataFrame({"Male": list("01101"), "Young": list("11001"), "site": ["arm", "leg", "arm", "", "arm"],
                               "label": [1, 0, 1, 0, 1]}, dtype=object) for s in ("train", "val", "test")}
    kinds = {"Male": "numeric", "Young": "numeric", "site": "categorical"}
    zeros = study.assign_covariates(tables, ["Male"], "zeros", kinds=kinds)
    assert (zeros["test"]["Male"] == "0").all() and (zeros["test"]["Young"] == tables["test"]["Young"]).all()
    ones = study.assign_covariates(tables, ["Male", "Young"], "ones", kinds=kinds)
    assert (ones["val"][["Male", "Young"]] == "1").all().all()
    shuffled = study.assign_covariates(tables, ["Male", "site"], "shuffled", seed=3, kinds=kinds)
    assert sorted(shuffled["train"]["Male"]) == sorted(tables["train"]["Male"])
    assert sorted(shuffled["train"]["Male"] + shuffled["train"]["site"]) == sorted(
        tables["train"]["Male"] + tables["train"]["site"])  # rows permuted whole: the joint distribution kept
    assert (shuffled["train"]["label"] == tables["train"]["label"]).all()
    # mean: numbers at their training mean, categories at their most frequent training value (every split)
    mean = study.assign_covariates(tables, ["Male", "site"], "mean", kinds=kinds)
    assert set(mean["test"]["Male"]) == {repr(0.6)} and set(mean["val"]["site"]) == {"arm"}
    with pytest.raises(ValueError, match="site is categorical; use shuffled or mean"):
        study.assign_covariates(tables, ["site"], "zeros", kinds=kinds)
    assert study.assign_covariates(tables, ["Male"], "true") is tables


def test_paired_test_matches_scipy():
    # The interval's assertions: tests/common/test_repeat.py (hybridvision.common.repeat.interval).
    p = study.paired_p({0: 0.71, 1: 0.74, 2: 0.75}, {0: 0.70, 1: 0.72, 2: 0.72})
    assert p == pytest.approx(0.0742, abs=1e-3)  # d = .01,.02,.03: t = 0.02/(0.01/sqrt 3) = 3.46, df 2
    # Two seeds each one face in 300 better, as float32 metrics report them: no spread, no p-value.
    assert np.isnan(study.paired_p({0: 0.7866666507720947, 1: 0.7833333611488342},
                                   {0: 0.7833333611488342, 1: 0.7799999713897705}))
    assert study.model_kind("film_middle") == ("film", "middle") and study.model_kind("late_fusion") == ("late_fusion", None)


def test_middle_position_is_the_conv_at_half_the_count():
    import keras

    from tests.apps.attractiveness.test_attractiveness import _cfg

    assert parse_positions(["middle", "last"]) == ["middle", "last"]
    cfg = _cfg(model="film", hybrid_positions=["middle"])
    base = build_model(_cfg(model="baseline"), 2)
    convs = [layer for layer in base.layers if type(layer) is keras.layers.Conv2D]
    assert resolve_positions(["middle"], base) == [(len(convs) + 1) // 2]
    model = build_model(cfg, 2)
    assert [type(layer).__name__ for layer in model.layers].count("FiLMConv2D") == 1


@pytest.mark.slow
def test_study_end_to_end_on_demo_data_and_resume(tmp_path, monkeypatch):
    root = generate("celeba", tmp_path / "data", scale="tiny")
    monkeypatch.chdir(tmp_path)
    argv = ["--data-dir", str(root), "--run-dir", str(tmp_path / "study"), "--backbone", "small", "--weights", "none",
            "--image-size", "16", "--epochs", "1", "--batch-size", "16", "--seeds", "0,1", "--quiet",
            "--models", "baseline,hybrid_last", "--covariate-sets", "Male", "--controls", "shuffled"]
    rows = study.main(argv)
    with open(tmp_path / "study" / "study.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["model"], r["control"]) for r in table] == [
        ("baseline", "-"), ("hybrid_last", "shuffled"), ("covariates_only_logreg", "true")]
    for r in table[:2]:
        assert r["seeds"] == "0,1"
        low, mean, high = float(r["test_accuracy_ci95_low"]), float(r["test_accuracy_mean"]), float(r["test_accuracy_ci95_high"])
        assert low <= mean <= high and 0 <= mean <= 1
    for r in table[1:2]:  # paired against the baseline: a p-value in [0, 1] or blank when the differences are equal
        assert r["p_paired_vs_baseline"] == "" or 0 <= float(r["p_paired_vs_baseline"]) <= 1
        assert r["delta_vs_baseline"] != ""
    md = (tmp_path / "study" / "study.md").read_text()
    assert "| covariates | model | control |" in md and "hybrid_last" in md and "±" in md
    assert (tmp_path / "study" / "study.png").exists()
    cell = tmp_path / "study" / "cells" / "Male" / "hybrid_last" / "shuffled" / "seed1"
    assert (cell / "metrics.json").exists() and (cell / "model.keras").exists()
    assert not (tmp_path / "saved_models").exists(), "study cells keep their models in their folders"
    assert json.loads((cell / "metrics.json").read_text())["notes"]["exported_model"] is None

    calls = []
    monkeypatch.setattr(train, "train_one", lambda *a, **k: calls.append(a) or pytest.fail("retrained"))
    again = study.main(argv)
    assert not calls and json.dumps(again) == json.dumps(rows)  # (NaN, e.g. an AUC of a one-class split, equals NaN)
    with pytest.raises(Exception, match="other settings"):  # a changed setting is refused, not mixed in
        study.main([*argv, "--epochs", "2"])


def test_default_covariate_sets_load_their_columns(tmp_path):
    # Without --covariate-sets a study (and tune) on CelebA uses its two default sets, and a table its own
    # covariates as one set; every column of the sets is read, so the covariates-only floor can code them.
    from hybridvision.apps.attractiveness.config import StudyConfig, study_parser
    from hybridvision.common.config import parse_config

    celeba = generate("celeba", tmp_path / "celeba", scale="tiny")
    cfg = parse_config(StudyConfig, ["--data-dir", str(celeba), "--models", "baseline"], parser=study_parser())
    (tables, _, _), sets = study.load_with_sets(cfg)
    assert sets == [["Male"], ["Smiling", "Young", "High_Cheekbones"]]
    assert {"Male", "Smiling", "Young", "High_Cheekbones"} <= set(tables["train"].columns)

    table = generate("table", tmp_path / "table", scale="tiny")
    cfg = parse_config(StudyConfig, ["--data-dir", str(table), "--target", "grade"], parser=study_parser())
    (tables, _, data), sets = study.load_with_sets(cfg)
    assert sets == [list(data.covariates)] and len(data.covariates) >= 2
    assert set(data.covariates) <= set(tables["train"].columns)
