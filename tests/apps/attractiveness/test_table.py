"""The covariate app on a table of images and columns (the demo table: a numeric, a categorical and missing
covariates, three classes): train, export, reload, and predict from raw column values."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hybridvision.apps.attractiveness import explain, predict, train
from hybridvision.common.cli import UserError
from hybridvision.common.data.demo import generate
from hybridvision.common.data.images import decode_image
from tests.apps.predict_checks import rows_of, write_csv

# One epoch on tiny data is at chance: --export-anyway exports it all the same, for the checks below.
SMALL = ["--backbone", "small", "--weights", "none", "--image-size", "16", "--batch-size", "8", "--epochs", "1",
         "--export-anyway", "--quiet"]
NEW_ROWS = [["images/0001.jpg", "31", "face"], ["images/0002.jpg", "", "moon"], ["images/0003.jpg", "59", ""],
            ["images/0004.jpg", "", ""]]  # a category never seen in training, and empty cells


@pytest.fixture(scope="module")
def table_root(tmp_path_factory):
    return generate("table", tmp_path_factory.mktemp("table") / "table", scale="tiny")


@pytest.mark.parametrize("kind", ["baseline", "late_fusion", "hybrid"])
def test_each_model_trains_exports_and_predicts_from_raw_values(table_root, tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    weights = ["--class-weight", "balanced"] if kind == "late_fusion" else []
    metrics = train.main(["--data-dir", str(table_root), "--target", "grade", "--model", kind, *weights,
                          "--run-dir", str(tmp_path / "run"), *SMALL])
    assert set(metrics["test"]) >= {"accuracy", "balanced_accuracy", "roc_auc", "f1_macro", "confusion_matrix"}
    assert np.asarray(metrics["test"]["confusion_matrix"]).shape == (3, 3)
    assert set(metrics["test"]["per_class"]) == {"high", "low", "mid"}
    assert set(metrics["covariate_floor"]["test"]) == {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"}
    assert "stratified by grade" in metrics["notes"]["fallback_split"]
    exported = tmp_path / metrics["notes"]["exported_model"]

    # A fresh process: the exported model alone, given raw values (NaN / "" for a missing one).
    script = f"""
import json, sys, numpy as np, hybridvision, tensorflow as tf
from hybridvision.common.data.images import decode_image
model = hybridvision.load_model({str(exported)!r})
rows = {NEW_ROWS!r}
images = np.stack([decode_image({str(table_root)!r} + "/" + r[0], (16, 16)).numpy().round() for r in rows])
feed = images if len(model.inputs) == 1 else {{"image": images,
    "age": np.array([[float(r[1]) if r[1] else np.nan] for r in rows], "float32"),
    "site": np.array([[r[2]] for r in rows])}}
feed = feed if len(model.inputs) == 1 else {{k: tf.constant(v) for k, v in feed.items()}}  # Keras takes no NumPy strings
print(json.dumps(np.asarray(model.predict(feed, verbose=0)).tolist()))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    probabilities = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    assert probabilities.shape == (4, 3) and np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-5)

    # The predict command: the same probabilities from a CSV of the raw columns.
    columns = ["image"] if kind == "baseline" else ["image", "age", "site"]
    listing = write_csv(tmp_path / "new.csv", columns, [r[:len(columns)] for r in NEW_ROWS])
    summary = predict.main(["--model", str(exported), "--csv", str(listing), "--images", str(table_root),
                            "--out", str(tmp_path / "labels.csv"), "--quiet"])
    assert summary["labelled"] == 4 and summary["errors"] == 0
    written = rows_of(tmp_path / "labels.csv")
    assert list(written[0]) == [*columns, "label", "p_high", "p_low", "p_mid"]
    np.testing.assert_allclose([[float(r[f"p_{c}"]) for c in ("high", "low", "mid")] for r in written],
                               probabilities, atol=1e-4)
    if kind != "baseline":
        # Two categories never seen in training both take the out-of-vocabulary slot: the same output.
        model_input = {"image": np.stack([decode_image(str(table_root / NEW_ROWS[0][0]), (16, 16)).numpy().round()] * 2),
                       "age": np.array([[31.0], [31.0]], "float32"), "site": np.array([["moon"], ["mars"]])}
        import tensorflow as tf

        import hybridvision

        p = np.asarray(hybridvision.load_model(exported)({k: tf.constant(v) for k, v in model_input.items()}))
        np.testing.assert_allclose(p[0], p[1], rtol=1e-6)
        # Grad-CAM takes the raw values too (a missing age, an unseen site).
        result = explain.main(["--model", str(exported), "--image", str(table_root / NEW_ROWS[0][0]),
                               "--covariates", "age=,site=moon", "--out", str(tmp_path / "cam.png"), "--quiet"])
        assert result["class"] in ("high", "low", "mid") and (tmp_path / "cam.png").stat().st_size > 1000


def test_balanced_class_weights():
    assert train.class_weights([0, 0, 0, 1], 2) == {0: 4 / 6, 1: 2.0}


def test_bad_table_flags_get_one_line(table_root, tmp_path):
    with pytest.raises(UserError, match="no --target for .*labels.csv; pass the column to predict"):
        train.main(["--data-dir", str(table_root), "--run-dir", str(tmp_path / "r"), *SMALL])
    with pytest.raises(UserError, match="--covariates grade is the|--covariates holds the target grade"):
        train.main(["--data-dir", str(table_root), "--target", "grade", "--covariates", "grade", *SMALL])
    copy = tmp_path / "copy"
    copy.mkdir()
    table = pd.read_csv(table_root / "labels.csv", dtype=str, keep_default_na=False)
    table["image"] = [str(table_root / p) for p in table["image"]]
    table.assign(site="arm").to_csv(copy / "labels.csv", index=False)
    with pytest.raises(UserError, match="covariate 'site' has one value \\('arm'\\) in every training row"):
        train.main(["--labels", str(copy / "labels.csv"), "--target", "grade", "--covariates", "site",
                    "--model", "late_fusion", "--run-dir", str(tmp_path / "r2"), *SMALL])
