"""predict (folder and CSV) and explain on a model trained on tiny generated faces."""

import keras
import numpy as np
import pytest

from hybridvision.apps.orientation_light import explain, predict, train
from hybridvision.common.cli import main_entry
from hybridvision.common.data.demo import generate
from hybridvision.common.model_card import attach_card
from hybridvision.common.predict import errors_path
from tests.apps.predict_checks import check_resume, copy_images, export_of, load_images, rows_of, write_csv


@pytest.mark.slow
def test_predict_matches_the_model_resumes_and_explains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    faces = generate("orientation", tmp_path / "faces", scale="tiny")
    train.main(["--data-dir", str(faces), "--image-size", "24", "--epochs", "1", "--batch-size", "4",
                "--run-dir", str(tmp_path / "run"), "--quiet", "--export-anyway"])  # 1 epoch: at chance
    exported = export_of("orientation_light", tmp_path)
    new = copy_images(sorted((faces / "test").rglob("*.jpg"))[:4] or sorted((faces / "test").rglob("*.png"))[:4],
                      tmp_path / "new")
    out = tmp_path / "labels.csv"
    argv = ["--model", str(exported), "--images", str(new), "--out", str(out), "--batch-size", "3", "--quiet"]
    summary = predict.main(argv)
    assert summary["labelled"] == 4 and summary["errors"] == 1
    assert [r["file"] for r in rows_of(errors_path(out))] == ["broken.jpg"]
    rows = rows_of(out)
    model = keras.models.load_model(exported)
    probabilities = model.predict(load_images([new / r["file"] for r in rows], model), verbose=0)
    names = [c[2:] for c in list(rows[0])[2:]]
    assert [r["label"] for r in rows] == [names[i] for i in probabilities.argmax(-1)]
    np.testing.assert_allclose([[float(r[f"p_{n}"]) for n in names] for r in rows], probabilities, atol=1e-4)
    check_resume(predict.main, argv, out, ["file"])

    # The same images listed in a CSV (relative to the CSV's folder), with a grid.
    listing = write_csv(new / "list.csv", ["file"], [[r["file"]] for r in rows])
    from_csv = tmp_path / "from_csv.csv"
    predict.main(["--model", str(exported), "--csv", str(listing), "--out", str(from_csv), "--grid",
                  str(tmp_path / "grid.png"), "--quiet"])
    assert {r["file"]: r["label"] for r in rows_of(from_csv)} == {r["file"]: r["label"] for r in rows}
    assert (tmp_path / "grid.png").stat().st_size > 1000

    result = explain.main(["--model", str(exported), "--image", str(new / rows[0]["file"]), "--out",
                           str(tmp_path / "cam.png"), "--quiet"])
    assert result["class"] == rows[0]["label"] and (tmp_path / "cam.png").stat().st_size > 1000


def _one_line_error(argv, capsys) -> str:
    """What the command prints for `argv`: exit code 2 and one `error: ...` line, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main_entry(predict.main, argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: ") and "\n" not in err, err
    return err


def _toy_export(path, app, outputs, activation, names):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    attach_card(keras.Model(inputs, keras.layers.Dense(outputs, activation=activation)(x)),
                {"app": app, "class_names": names}).save(path)
    return str(path)


def test_one_line_errors(tmp_path, capsys):
    err = _one_line_error(["--model", str(tmp_path / "none.keras"), "--images", str(tmp_path), "--out", "x.csv"], capsys)
    assert "--model" in err and "no such file" in err
    voc = _toy_export(tmp_path / "voc.keras", "patch_training", 20, "sigmoid", list("abcdefghijklmnopqrst"))
    err = _one_line_error(["--model", voc, "--images", str(tmp_path), "--out", "x.csv"], capsys)
    assert "model of the patch_training app" in err and "hybridvision patch_training predict" in err
    model = _toy_export(tmp_path / "m.keras", "orientation_light", 3, "softmax", ["l", "c", "r"])
    listing = write_csv(tmp_path / "list.csv", ["path"], [["a.png"]])
    err = _one_line_error(["--model", model, "--csv", str(listing), "--out", str(tmp_path / "o.csv")], capsys)
    assert "has no 'file' column" in err and "add it" in err
    err = _one_line_error(["--model", model, "--out", str(tmp_path / "o.csv")], capsys)
    assert "pass --images DIR" in err and "--csv FILE" in err
