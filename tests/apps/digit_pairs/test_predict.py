"""predict (a CSV of pairs) and explain (two images) on an auxiliary-loss model trained on tiny MNIST."""

import cv2
import keras
import numpy as np
import pytest

from hybridvision.apps.digit_pairs import explain, predict, train
from hybridvision.apps.digit_pairs.data import pool_digits
from hybridvision.common.cli import UserError
from hybridvision.common.data.demo import generate
from hybridvision.common.data.mnist import load_mnist
from hybridvision.common.predict import errors_path
from tests.apps.predict_checks import check_resume, export_of, rows_of, write_csv


@pytest.mark.slow
def test_predict_pairs_matches_the_model_resumes_and_explains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = generate("mnist", tmp_path / "mnist", scale="tiny")
    train.main(["--data-dir", str(root), "--model", "aux", "--pairs", "20", "--epochs", "1",
                "--run-dir", str(tmp_path / "run"), "--quiet", "--export-anyway"])  # 1 epoch: at chance
    exported = export_of("digit_pairs", tmp_path)
    digits = next(iter(load_mnist(root).values()))[0][:6]  # (images, labels) of a split
    folder = tmp_path / "digits"
    folder.mkdir()
    for i, digit in enumerate(digits):
        cv2.imwrite(str(folder / f"{i}.png"), digit)
    (folder / "broken.png").write_bytes(b"no")
    pairs = [["0.png", "1.png"], ["2.png", "3.png"], ["4.png", "5.png"], ["1.png", "0.png"], ["0.png", "broken.png"]]
    listing = write_csv(folder / "pairs.csv", ["first", "second"], pairs)
    out = tmp_path / "pairs_out.csv"
    argv = ["--model", str(exported), "--csv", str(listing), "--out", str(out), "--batch-size", "3", "--quiet"]
    summary = predict.main(argv)
    assert summary["labelled"] == 4 and summary["errors"] == 1
    errors = rows_of(errors_path(out))
    assert (errors[0]["first"], errors[0]["second"]) == ("0.png", "broken.png")
    assert errors[0]["reason"].startswith("second:")
    rows = rows_of(out)
    assert list(rows[0])[:5] == ["first", "second", "label", "digit_first", "digit_second"]
    # The model's own predictions on the pairs made as training makes them (pooled, 0..1).
    model = keras.models.load_model(exported)
    index = {f"{i}.png": i for i in range(len(digits))}
    x = np.stack([np.stack([pool_digits(digits[[index[r["first"]]]])[0], pool_digits(digits[[index[r["second"]]]])[0]],
                           -1) for r in rows])
    outputs = model.predict(x, verbose=0)
    names = [c[2:] for c in list(rows[0])[5:]]
    assert [r["label"] for r in rows] == [names[i] for i in outputs["compare"].argmax(-1)]
    np.testing.assert_allclose([[float(r[f"p_{n}"]) for n in names] for r in rows], outputs["compare"], atol=1e-4)
    assert [int(r["digit_first"]) for r in rows] == list(outputs["digit_a"].argmax(-1))
    check_resume(predict.main, argv, out, ["first", "second"])

    with pytest.raises(UserError, match="pass --csv FILE with the columns first,second"):
        predict.main(["--model", str(exported), "--images", str(folder), "--out", str(tmp_path / "o.csv")])
    result = explain.main(["--model", str(exported), "--image", str(folder / "0.png"), str(folder / "1.png"),
                           "--out", str(tmp_path / "cam.png"), "--quiet"])
    assert result["class"] == rows[0]["label"] and (tmp_path / "cam.png").stat().st_size > 1000
