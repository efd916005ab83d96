"""hybridvision.common.predict: the streaming, resumable folder labeller and its grid."""

import csv
import json

import cv2
import keras
import numpy as np
import pytest

from hybridvision.common.predict import (
    errors_path,
    label_folder,
    list_images,
    read_class_names,
    save_prediction_grid,
    write_class_names,
)

NAMES = ["left", "center", "right"]


def _model(size=8):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(7):
        sub = root / ("a" if i < 4 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"{i}.png"), rng.integers(0, 255, (10, 12, 3), dtype=np.uint8))
    (root / "broken.jpg").write_bytes(b"not an image at all")
    (root / "notes.txt").write_text("ignored")
    return root


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_labels_every_image_and_lists_the_corrupt_one(folder, tmp_path):
    model = _model()
    out = tmp_path / "out" / "labels.csv"
    summary = label_folder(model, folder, out, NAMES, batch_size=3, progress=False)
    assert summary["images"] == 8 and summary["labelled"] == 7 and summary["errors"] == 1
    rows = _rows(out)
    assert list(rows[0]) == ["file", "label", "p_left", "p_center", "p_right"]
    assert sorted(r["file"] for r in rows) == sorted(["a/0.png", "a/1.png", "a/2.png", "a/3.png",
                                                      "b/c/4.png", "b/c/5.png", "b/c/6.png"])
    # Probabilities and labels match the model run directly on the same images.
    for row in rows:
        p = np.array([float(row[f"p_{n}"]) for n in NAMES])
        assert p.sum() == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == NAMES[int(p.argmax())]
        image = cv2.cvtColor(cv2.imread(str(folder / row["file"])), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype("float32")
        direct = model.predict_on_batch(image[None])[0]
        np.testing.assert_allclose(p, direct, atol=0.02)
    errors = _rows(errors_path(out))
    assert [e["file"] for e in errors] == ["broken.jpg"] and errors[0]["reason"]


def test_resume_after_interruption_has_no_duplicates(folder, tmp_path):
    model = _model()
    out = tmp_path / "labels.csv"
    label_folder(model, folder, out, NAMES, batch_size=2, progress=False)
    full = {r["file"]: r for r in _rows(out)}
    # Simulate a kill: keep the header and two rows, plus half of a third line.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:5])
    errors_path(out).unlink()
    summary = label_folder(model, folder, out, NAMES, batch_size=2, progress=False)
    assert summary["already_done"] == 2 and summary["labelled"] == 5 and summary["errors"] == 1
    rows = _rows(out)
    assert len(rows) == 7 and len({r["file"] for r in rows}) == 7
    for r in rows:
        assert r["label"] == full[r["file"]]["label"]
    # A finished run again: nothing new, nothing duplicated.
    again = label_folder(model, folder, out, NAMES, progress=False)
    assert again["labelled"] == 0 and again["errors"] == 0 and again["already_done"] == 8
    assert len(_rows(out)) == 7 and len(_rows(errors_path(out))) == 1


def test_saved_model_class_names_and_grid(folder, tmp_path):
    path = tmp_path / "m.keras"
    _model().save(path)
    write_class_names(path, NAMES, task="orientation")
    assert json.loads(path.with_suffix(".classes.json").read_text())["task"] == "orientation"
    assert read_class_names(path) == NAMES
    out = tmp_path / "labels.csv"
    label_folder(str(path), folder, out, read_class_names(path), progress=True)
    png = save_prediction_grid(out, folder, tmp_path / "grid.png")
    assert cv2.imread(str(png)) is not None


def test_clear_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="--images"):
        list_images(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="classes.json"):
        read_class_names(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="3 outputs but 2 class names"):
        label_folder(_model(), folder, tmp_path / "x.csv", ["a", "b"], progress=False)
    out = tmp_path / "other.csv"
    out.write_text("file,label,p_x\n")
    with pytest.raises(ValueError, match="another --out"):
        label_folder(_model(), folder, out, NAMES, progress=False)


# ---- the shared engine on toy models of every kind ---------------------------------------------------------
from hybridvision.common.cli import UserError  # noqa: E402
from hybridvision.common.predict import PredictSpec, predict_items, resolve_spec  # noqa: E402

BINARY = PredictSpec(app="attractiveness", kind="binary", takes_covariates=True, class_names=["not_Attractive", "Attractive"])
PAIR = PredictSpec(app="digit_pairs", kind="pair", class_names=["gt", "le"], image_columns=("first", "second"),
                   output="compare", extra_outputs={"digit_a": "digit_first", "digit_b": "digit_second"},
                   scale=1 / 255, resize="area", round_pixels=False)
MULTI = PredictSpec(app="patch_training", kind="multilabel", class_names=["cat", "dog", "car"])


def _covariate_model(size=8):
    images, covariates = keras.Input((size, size, 3), name="image"), keras.Input((2,), name="covariates")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(images))
    joined = keras.layers.Concatenate()([x, covariates])
    # Covariates first in the input order: predict must feed inputs by kind, not by position.
    return keras.Model([covariates, images], keras.layers.Dense(1, activation="sigmoid")(joined))


def _pair_model(size=8, aux=True):
    pair = keras.Input((size, size, 2), name="pair")
    x = keras.layers.Flatten()(pair)
    outputs = {"compare": keras.layers.Dense(2, activation="softmax", name="compare")(x)}
    if aux:
        outputs["digit_a"] = keras.layers.Dense(10, activation="softmax", name="digit_a")(x)
        outputs["digit_b"] = keras.layers.Dense(10, activation="softmax", name="digit_b")(x)
    return keras.Model(pair, outputs)


def _multilabel_model(size=8):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(x))


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def test_binary_model_with_covariates_reads_a_csv_and_matches_the_model(folder, tmp_path):
    model = _covariate_model()
    listing = _write_csv(tmp_path / "faces.csv", ["file", "Male", "Smiling", "note"],
                         [[str(folder / "a" / "0.png"), "1", "-1", "x"], [str(folder / "a" / "1.png"), "0", "yes", ""],
                          [str(folder / "broken.jpg"), "1", "1", ""], [str(folder / "a" / "2.png"), "maybe", "1", ""]])
    model, spec = resolve_spec(BINARY, model, covariates=["Male", "Smiling"])
    from hybridvision.common.predict import csv_items

    items, base = csv_items(spec, listing)
    out = tmp_path / "out.csv"
    summary = predict_items(model, spec, items, out, base, batch_size=2, progress=False)
    assert summary["labelled"] == 2 and summary["errors"] == 2
    rows = _rows(out)
    assert list(rows[0]) == ["file", "Male", "Smiling", "label", "p_Attractive"]
    for row, covariates in zip(rows, ([1.0, 0.0], [0.0, 1.0])):
        image = cv2.cvtColor(cv2.imread(row["file"]), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype("float32")
        p = float(model.predict_on_batch([np.array([covariates], "float32"), image[None]])[0, 0])
        assert float(row["p_Attractive"]) == pytest.approx(p, abs=0.02)
        assert row["label"] == ("Attractive" if float(row["p_Attractive"]) >= 0.5 else "not_Attractive")
    reasons = {e["file"]: e["reason"] for e in _rows(errors_path(out))}
    assert set(reasons) == {str(folder / "broken.jpg"), str(folder / "a" / "2.png")}
    assert "Male='maybe'" in reasons[str(folder / "a" / "2.png")]


def test_pair_model_writes_the_pair_label_and_the_digits(folder, tmp_path):
    model, spec = resolve_spec(PAIR, _pair_model())
    items = [["a/0.png", "a/1.png"], ["a/2.png", "broken.jpg"], ["b/c/4.png", "a/0.png"]]
    out = tmp_path / "pairs.csv"
    summary = predict_items(model, spec, items, out, folder, batch_size=2, progress=False)
    assert summary["labelled"] == 2 and summary["errors"] == 1
    rows = _rows(out)
    assert list(rows[0]) == ["first", "second", "label", "digit_first", "digit_second", "p_gt", "p_le"]

    def gray(rel):
        image = cv2.cvtColor(cv2.imread(str(folder / rel)), cv2.COLOR_BGR2RGB).astype("float32")
        image = image @ np.array([0.2989, 0.587, 0.114], "float32")
        return cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA) / 255.0

    for row in rows:
        direct = model.predict_on_batch(np.stack([gray(row["first"]), gray(row["second"])], -1)[None])
        np.testing.assert_allclose([float(row["p_gt"]), float(row["p_le"])], direct["compare"][0], atol=0.02)
        assert row["digit_first"] == str(int(direct["digit_a"][0].argmax()))
    errors = _rows(errors_path(out))
    assert errors[0]["second"] == "broken.jpg" and errors[0]["reason"].startswith("second:")
    # A model without the digit outputs: no digit columns.
    _, plain = resolve_spec(PAIR, _pair_model(aux=False))
    assert "digit_first" not in plain.header()


def test_multilabel_thresholds(folder, tmp_path):
    model = _multilabel_model()
    model, spec = resolve_spec(MULTI, model, thresholds=[0.0, 1.0, 0.5])
    items = [["a/0.png"], ["a/1.png"]]
    predict_items(model, spec, items, tmp_path / "m.csv", folder, progress=False)
    for row in _rows(tmp_path / "m.csv"):
        labels = row["labels"].split(";")
        assert "cat" in labels and "dog" not in labels  # threshold 0 always, 1 never (a sigmoid is < 1 here)
        assert ("car" in labels) == (float(row["p_car"]) >= 0.5)
    with pytest.raises(UserError, match="--thresholds"):
        resolve_spec(MULTI, model, thresholds=[0.5, 0.5])


def test_resume_keys_on_every_input_column(folder, tmp_path):
    model, spec = resolve_spec(PAIR, _pair_model())
    items = [["a/0.png", "a/1.png"], ["a/0.png", "a/2.png"], ["a/1.png", "a/0.png"], ["a/3.png", "a/3.png"]]
    out = tmp_path / "pairs.csv"
    predict_items(model, spec, items, out, folder, batch_size=3, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:7])  # a kill mid-line after one row
    summary = predict_items(model, spec, items, out, folder, progress=False)
    assert summary["already_done"] == 1 and summary["labelled"] == 3
    rows = _rows(out)
    assert sorted((r["first"], r["second"]) for r in rows) == sorted(map(tuple, items))


def test_one_line_errors_for_wrong_models_and_inputs(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="--model .*no such file"):
        resolve_spec(BINARY, tmp_path / "missing.keras")
    # A digit_pairs model is not an attractiveness model, nor the other way round.
    with pytest.raises(UserError, match="does not look like a model of the attractiveness app"):
        resolve_spec(BINARY, _pair_model())
    with pytest.raises(UserError, match="does not look like a model of the digit_pairs app"):
        resolve_spec(PAIR, _covariate_model())
    with pytest.raises(UserError, match="covariates Male,Smiling|--covariates"):
        resolve_spec(BINARY, _covariate_model())
    with pytest.raises(UserError, match="takes 2 covariate.*1 were named"):
        resolve_spec(BINARY, _covariate_model(), covariates=["Male"])
    from hybridvision.common.predict import csv_items

    _, spec = resolve_spec(PAIR, _pair_model())
    listing = _write_csv(tmp_path / "pairs.csv", ["first", "other"], [["a/0.png", "a/1.png"]])
    with pytest.raises(UserError, match="has no 'second' column .*add it"):
        csv_items(spec, listing)


def test_the_model_card_names_classes_covariates_thresholds_and_its_app(folder, tmp_path, monkeypatch):
    import hybridvision.common.predict as predict_module

    card = {"app": "attractiveness", "target": "Smiling", "covariates": ["Male", "Young"], "thresholds": [0.25]}
    monkeypatch.setattr(predict_module, "read_model_card", lambda model: card)
    _, spec = resolve_spec(BINARY, _covariate_model())
    assert spec.class_names == ["not_Smiling", "Smiling"] and spec.covariates == ("Male", "Young")
    assert spec.thresholds == [0.25]
    # Flags win over the card.
    _, spec = resolve_spec(BINARY, _covariate_model(), covariates=["A", "B"], target="Attractive")
    assert spec.covariates == ("A", "B") and spec.class_names[-1] == "Attractive"
    with pytest.raises(UserError, match="is a model of the attractiveness app, not of patch_training"):
        resolve_spec(MULTI, _multilabel_model())


def test_an_exported_model_with_a_card_needs_no_flags(folder, tmp_path):
    """attach_card's export: any-size images (decoded at the card's training size), class names from the card."""
    from hybridvision.common.model_card import attach_card

    trained = _model()
    path = tmp_path / "export.keras"
    attach_card(trained, {"app": "orientation_light", "class_names": NAMES}).save(path)
    spec = PredictSpec(app="orientation_light", kind="single")
    model, spec = resolve_spec(spec, path)
    assert spec.class_names == NAMES and spec.image_size == (8, 8)
    out = tmp_path / "labels.csv"
    predict_items(model, spec, [["a/0.png"], ["b/c/5.png"]], out, folder, progress=False)
    for row in _rows(out):
        image = cv2.cvtColor(cv2.imread(str(folder / row["file"])), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype("float32")
        assert row["label"] == NAMES[int(trained.predict_on_batch(image[None])[0].argmax())]
    with pytest.raises(UserError, match="is a model of the orientation_light app, not of patch_training"):
        resolve_spec(MULTI, path)


def test_the_output_csv_names_its_model_and_no_other_model_adds_rows(folder, tmp_path):
    import hashlib

    first, second = tmp_path / "first.keras", tmp_path / "second.keras"
    _model().save(first)
    _model().save(second)
    out = tmp_path / "labels.csv"
    label_folder(str(first), folder, out, NAMES, progress=False)
    record = json.loads((tmp_path / "labels.model.json").read_text())
    assert record == {"model": str(first.resolve()), "sha256": hashlib.sha256(first.read_bytes()).hexdigest()}
    assert label_folder(str(first), folder, out, NAMES, progress=False)["already_done"] == 8  # the same model resumes
    with pytest.raises(UserError, match=f"{out} was written by another model \\({first.resolve()}, sha256 "
                       f"{record['sha256'][:12]}\\.\\.\\.\\) than --model {second}"):
        label_folder(str(second), folder, out, NAMES, progress=False)
    (tmp_path / "labels.model.json").unlink()  # rows, and no word on whose
    with pytest.raises(UserError, match="has rows but no readable labels.model.json"):
        label_folder(str(first), folder, out, NAMES, progress=False)
    out.unlink()  # a new CSV: any model
    assert label_folder(str(second), folder, out, NAMES, progress=False)["labelled"] == 7


def test_predict_on_a_folder_where_nothing_decodes_is_an_error(tmp_path, capsys):
    from hybridvision.apps.orientation_light import predict
    from hybridvision.common.cli import main_entry

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "empty").mkdir()
    _model().save(tmp_path / "m.keras")
    for images, expected in (("images", "none of its 1 input(s) could be read (listed in "),
                             ("empty", "it holds no images (.jpg")):
        argv = ["--model", str(tmp_path / "m.keras"), "--classes", "left,center,right", "--images",
                str(tmp_path / images), "--out", str(tmp_path / f"{images}.csv"), "--quiet"]
        for _ in range(2):  # a second run (everything already listed as unreadable) too
            with pytest.raises(SystemExit) as info:
                main_entry(predict.main, argv)
            err = capsys.readouterr().err.strip().splitlines()
            assert info.value.code == 2 and err[-1].startswith(
                f"error: nothing labelled: --images {tmp_path / images}: {expected}"), err


def test_a_run_model_of_another_app_is_named_by_its_sidecar(folder, tmp_path):
    path = tmp_path / "run" / "model.keras"
    path.parent.mkdir()
    _model().save(path)
    write_class_names(path, NAMES, app="orientation_light", task="orientation")
    with pytest.raises(UserError, match=r"--model .*model.keras is a model of the orientation_light app, not of "
                       "patch_training; use `hybridvision orientation_light predict`"):
        resolve_spec(MULTI, path)
