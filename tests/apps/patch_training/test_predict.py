"""predict (multi-label, thresholds) and explain on a model trained on tiny generated VOC."""

import keras
import numpy as np
import pytest

from hybridvision.apps.patch_training import explain, predict, train
from hybridvision.common.data.demo import generate
from hybridvision.common.model_card import read_card
from hybridvision.common.predict import errors_path
from tests.apps.predict_checks import check_resume, copy_images, export_of, load_images, rows_of

TINY = ["--backbone", "small", "--image-size", "32", "--min-patch", "32", "--batch-size", "4", "--patch-hidden", "16",
        "--quiet"]


@pytest.mark.slow
def test_predict_multilabel_matches_the_model_resumes_and_explains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    voc = generate("voc", tmp_path / "voc", scale="tiny") / "VOC2012"
    train.main(["--data-dir", str(voc), "--epochs", "2", "--switch-epoch", "1", "--run-dir", str(tmp_path / "run"),
                *TINY])
    exported = export_of("patch_training", tmp_path)
    new = copy_images(sorted((voc / "JPEGImages").glob("*.jpg"))[:3], tmp_path / "new")
    out = tmp_path / "labels.csv"
    argv = ["--model", str(exported), "--images", str(new), "--out", str(out), "--quiet"]
    summary = predict.main(argv)
    assert summary["labelled"] == 3 and summary["errors"] == 1
    assert [r["file"] for r in rows_of(errors_path(out))] == ["broken.jpg"]
    rows = rows_of(out)
    names = [c[2:] for c in list(rows[0])[2:]]
    assert len(names) == 20 and list(rows[0])[:2] == ["file", "labels"]
    model = keras.models.load_model(exported)
    # The per-class thresholds chosen on the val split at training time travel in the model.
    thresholds = read_card(model)["thresholds"]
    assert list(thresholds) == names and all(0 <= t <= 1 for t in thresholds.values())
    probabilities = model.predict(load_images([new / r["file"] for r in rows], model), verbose=0)
    np.testing.assert_allclose([[float(r[f"p_{n}"]) for n in names] for r in rows], probabilities, atol=1e-4)
    assert [r["labels"] for r in rows] == [";".join(n for n, p in zip(names, ps) if p >= thresholds[n])
                                           for ps in probabilities]
    check_resume(predict.main, argv, out, ["file"])

    # Per-class thresholds: 0 gives every class, 1 none (a sigmoid stays below 1 here).
    low = tmp_path / "low.csv"
    predict.main(["--model", str(exported), "--images", str(new), "--out", str(low), "--thresholds", "0", "--quiet"])
    assert all(r["labels"] == ";".join(names) for r in rows_of(low))

    result = explain.main(["--model", str(exported), "--image", str(new / rows[0]["file"]), "--out",
                           str(tmp_path / "cam.png"), "--quiet"])
    assert result["png"].stat().st_size > 1000
