"""The model card inside exported models, and their images of any size."""

import json
import warnings

import keras
import numpy as np
import pytest

import hybridvision
from hybridvision.common.model_card import ModelCard, attach_card, plain, read_card
from hybridvision.layers import HybridConv2D

CARD = {"app": "toy", "class_names": ["no", "yes"], "covariates": ["Male", "Young"], "covariate_coding": "0/1"}


def _fusion_model(size=16):
    """Images (with a BatchNorm, whose training flag matters) and covariates -> one sigmoid, trained a step."""
    images, covariates = keras.Input((size, size, 3), name="images"), keras.Input((2,), name="covariates")
    x = keras.layers.BatchNormalization()(keras.layers.Rescaling(1 / 255)(images))
    x = HybridConv2D(4, 3, num_covariates=2)([x, covariates])
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model([images, covariates], out, name="fusion")
    model.compile("adam", "binary_crossentropy")
    rng = np.random.default_rng(0)
    model.fit([rng.uniform(0, 255, (8, size, size, 3)), rng.integers(0, 2, (8, 2))], rng.integers(0, 2, (8, 1)),
              verbose=0)
    return model


def _inputs(height, width, n=2):
    rng = np.random.default_rng(1)
    return [rng.uniform(0, 255, (n, height, width, 3)).astype("float32"), rng.integers(0, 2, (n, 2)).astype("float32")]


def test_exported_model_equals_the_trained_one_takes_any_size_and_reloads_with_its_card(tmp_path):
    model = _fusion_model()
    exported = attach_card(model, CARD)
    assert [t.name for t in exported.inputs] == ["images", "covariates"] and exported.name == "fusion"
    same = _inputs(16, 16)
    np.testing.assert_allclose(exported.predict(same, verbose=0), model.predict(same, verbose=0), rtol=1e-6)
    # A plain call runs BatchNorm in inference mode, as the trained model's plain call does.
    np.testing.assert_allclose(exported(same), model(same, training=False), rtol=1e-6)
    path = tmp_path / "m.keras"
    exported.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        restored = keras.saving.load_model(path)
    assert not caught, [str(w.message) for w in caught]
    np.testing.assert_allclose(restored.predict(same, verbose=0), model.predict(same, verbose=0), rtol=1e-6)
    other = restored.predict(_inputs(37, 51), verbose=0)
    assert other.shape == (2, 1) and np.isfinite(other).all()
    # Inputs by name work as before.
    assert restored.predict(dict(zip(["images", "covariates"], same)), verbose=0).shape == (2, 1)
    card = read_card(restored)
    assert card["class_names"] == ["no", "yes"] and card["covariates"] == ["Male", "Young"]
    assert card["image_size"] == [16, 16]
    assert card["inputs"] == [{"name": "images", "image": True, "shape": [None, None, None, 3]},
                              {"name": "covariates", "image": False, "shape": [None, 2]}]
    assert read_card(path) == card, "the file's card reads the same without loading the model"
    assert hybridvision.load_model(path).get_layer("model_card").card == card


def test_dict_outputs_and_an_already_any_size_input_keep_their_form():
    image = keras.Input((None, None, 1), name="pair")
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    model = keras.Model(image, {"a": keras.layers.Dense(2, name="a")(pooled), "b": keras.layers.Dense(3, name="b")(pooled)})
    exported = attach_card(model, {"app": "toy"})
    assert "image_size" not in read_card(exported)
    assert not any(isinstance(layer, keras.layers.Resizing) for layer in exported.layers), "no size to resize to"
    out = exported.predict(np.ones((1, 9, 5, 1)), verbose=0)
    assert isinstance(out, dict) and out["a"].shape == (1, 2) and out["b"].shape == (1, 3)


def test_models_without_a_card_read_as_empty_or_from_their_sidecar(tmp_path):
    model = _fusion_model()
    assert read_card(model) == {}
    path = tmp_path / "old.keras"
    model.save(path)
    assert read_card(path) == {}
    path.with_suffix(".classes.json").write_text(json.dumps({"class_names": ["a", "b"], "task": "t"}))
    card = read_card(path)
    assert card["class_names"] == ["a", "b"] and card["from_sidecar"].endswith("old.classes.json")


def test_card_values_become_plain_json_or_fail_naming_the_value():
    assert plain({"a": np.float32(0.5), "b": (1, 2), "c": np.arange(2)}) == {"a": 0.5, "b": [1, 2], "c": [0, 1]}
    with pytest.raises(ValueError, match="model card: object .* is not JSON-serialisable"):
        plain({"a": object()})
    assert ModelCard({"x": np.int64(3)}).get_config()["card"] == {"x": 3}
