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


def test_a_per_modality_model_reads_its_modality_columns(tmp_path):
    """per_modality models take the modality one-hot beside the image: the CSV gives one 1/0 column per modality."""
    import cv2

    from hybridvision.common.cli import UserError
    from hybridvision.common.model_card import attach_card

    images, onehot = keras.Input((8, 8, 3), name="image"), keras.Input((2,), name="modality")
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(images), onehot])
    model = keras.Model([images, onehot], keras.layers.Dense(3, activation="softmax")(x))
    attach_card(model, {"app": "cross_modal", "class_names": ["a", "b", "c"], "covariates": ["photo", "sketch"]}
                ).save(tmp_path / "m.keras")
    cv2.imwrite(str(tmp_path / "x.png"), np.full((10, 10, 3), 200, np.uint8))
    listing = tmp_path / "in.csv"
    listing.write_text("file,photo,sketch\nx.png,1,0\nx.png,0,1\n")
    out = tmp_path / "out.csv"
    predict.main(["--model", str(tmp_path / "m.keras"), "--csv", str(listing), "--out", str(out), "--quiet"])
    rows = rows_of(out)
    expected = model.predict([np.full((2, 8, 8, 3), 200, "float32"), np.eye(2, dtype="float32")], verbose=0)
    np.testing.assert_allclose([[float(r[f"p_{n}"]) for n in "abc"] for r in rows], expected, atol=1e-4)
    with pytest.raises(UserError, match="columns file,photo,sketch"):
        predict.main(["--model", str(tmp_path / "m.keras"), "--images", str(tmp_path), "--out", str(out)])
