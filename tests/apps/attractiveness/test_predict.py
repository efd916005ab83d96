"""predict (CSV of faces and covariates) and explain on a hybrid model trained on tiny generated CelebA."""

import keras
import numpy as np
import pytest

from hybridvision.apps.attractiveness import explain, predict, train
from hybridvision.common.cli import UserError
from hybridvision.common.data.celeba import read_celeba
from hybridvision.common.data.demo import generate
from hybridvision.common.predict import errors_path
from tests.apps.predict_checks import check_resume, export_of, load_images, rows_of, write_csv


@pytest.mark.slow
def test_predict_with_covariates_matches_the_model_resumes_and_explains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = generate("celeba", tmp_path / "celeba", scale="tiny")
    train.main(["--data-dir", str(root), "--model", "hybrid", "--backbone", "small", "--weights", "none",
                "--image-size", "16", "--batch-size", "4", "--epochs", "1", "--covariates", "Male,Smiling",
                "--export-anyway", "--run-dir", str(tmp_path / "run"), "--quiet"])
    exported = export_of("attractiveness", tmp_path)
    table = read_celeba(root).head(5)
    # CelebA's own coding (1 / -1) in the CSV, as list_attr_celeba.txt writes it; one row names a missing file.
    rows = [[f"img_align_celeba/{f}", str(2 * m - 1), str(2 * s - 1)]
            for f, m, s in zip(table["file"], table["Male"], table["Smiling"])]
    listing = write_csv(tmp_path / "faces.csv", ["file", "Male", "Smiling"], [*rows, ["img_align_celeba/nope.jpg", "1", "1"]])
    out = tmp_path / "attractive.csv"
    argv = ["--model", str(exported), "--csv", str(listing), "--images", str(root), "--out", str(out), "--quiet"]
    summary = predict.main(argv)
    assert summary["labelled"] == 5 and summary["errors"] == 1
    assert [r["file"] for r in rows_of(errors_path(out))] == ["img_align_celeba/nope.jpg"]
    written = rows_of(out)
    assert list(written[0]) == ["file", "Male", "Smiling", "label", "p_Attractive"]
    model = keras.models.load_model(exported)
    images = load_images([root / r["file"] for r in written], model)
    # The model takes each covariate's raw value by name (CelebA's 1 / -1 read as present / absent).
    feed = {"image": images, **{c: np.array([[float(r[c] == "1")] for r in written], "float32")
                               for c in ("Male", "Smiling")}}
    p = model.predict(feed, verbose=0)[:, 0]
    np.testing.assert_allclose([float(r["p_Attractive"]) for r in written], p, atol=1e-4)
    assert [r["label"] for r in written] == ["Attractive" if v >= 0.5 else "not_Attractive" for v in p]
    check_resume(predict.main, argv, out, ["file", "Male", "Smiling"])

    # A folder cannot give covariates; a CSV without them is told which column to add.
    with pytest.raises(UserError, match="pass --csv FILE with the columns file,Male,Smiling"):
        predict.main(["--model", str(exported), "--images", str(root / "img_align_celeba"), "--out", str(out)])
    bare = write_csv(tmp_path / "bare.csv", ["file", "Male"], rows[:1])
    with pytest.raises(UserError, match="has no 'Smiling' column .*add it"):
        predict.main(["--model", str(exported), "--csv", str(bare), "--out", str(tmp_path / "o.csv")])

    face = root / written[0]["file"]
    result = explain.main(["--model", str(exported), "--image", str(face), "--covariates", "Smiling=1,Male=0",
                           "--class", "Attractive", "--out", str(tmp_path / "cam.png"), "--quiet"])
    assert result["class"] == "Attractive" and (tmp_path / "cam.png").stat().st_size > 1000
    with pytest.raises(UserError, match="--covariates lacks Smiling"):
        explain.main(["--model", str(exported), "--image", str(face), "--covariates", "Male=0"])
