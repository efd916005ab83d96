"""predict and explain (--model --image) on a cross_modal model trained on tiny generated domains."""

import keras
import numpy as np
import pytest

from hybridvision.apps.cross_modal import explain, predict, train
from hybridvision.common.data.demo import generate
from hybridvision.common.predict import errors_path
from tests.apps.predict_checks import check_resume, copy_images, export_of, load_images, rows_of


@pytest.mark.slow
def test_predict_matches_the_model_resumes_and_explains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    domains = generate("domains", tmp_path / "domains", scale="tiny")
    train.main(["--data-dir", str(domains), "--protocol", "from_source", "--source", "photo", "--model", "frozen",
                "--backbone", "small", "--weights", "none", "--image-size", "16", "--epochs", "1", "--batch-size",
                "4", "--run-dir", str(tmp_path / "run"), "--quiet"])
    exported = export_of("cross_modal", tmp_path)
    new = copy_images([sorted((domains / m).rglob("*.jpg"))[0] for m in ("photo", "sketch", "cartoon")],
                      tmp_path / "new")
    out = tmp_path / "labels.csv"
    argv = ["--model", str(exported), "--images", str(new), "--out", str(out), "--batch-size", "2", "--quiet"]
    summary = predict.main(argv)  # class names from the model's card
    assert summary["labelled"] == 3 and summary["errors"] == 1
    assert [r["file"] for r in rows_of(errors_path(out))] == ["broken.jpg"]
    rows = rows_of(out)
    model = keras.models.load_model(exported)
    probabilities = model.predict(load_images([new / r["file"] for r in rows], model), verbose=0)
    names = [c[2:] for c in list(rows[0])[2:]]
    assert [r["label"] for r in rows] == [names[i] for i in probabilities.argmax(-1)]
    np.testing.assert_allclose([[float(r[f"p_{n}"]) for n in names] for r in rows], probabilities, atol=1e-4)
    check_resume(predict.main, argv, out, ["file"])

    written = explain.main(["--model", str(exported), "--image", str(new / rows[0]["file"]), "--class", names[0],
                            "--out", str(tmp_path / "cam.png"), "--quiet"])
    assert written == [tmp_path / "cam.png"] and written[0].stat().st_size > 1000
