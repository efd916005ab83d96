"""Covariates coded inside the model: numbers standardised with a missing flag, categories one-hot with an
out-of-vocabulary slot; checked against a NumPy reference, through save and reload."""

import keras
import numpy as np
import pandas as pd
import pytest

from hybridvision.common.cli import UserError
from hybridvision.common.covariate_coding import fit_coding, infer_kind, with_coding
from hybridvision.common.layers import NumericCoding

TRAIN = pd.DataFrame({"age": ["30", "50", "", "70"], "site": ["arm", "leg", "arm", ""], "flag": ["1", "0", "1", "0"]},
                     dtype=object)


def test_numeric_coding_matches_numpy_and_reloads(tmp_path):
    layer = NumericCoding(50.0, 20.0, indicator=True)
    x = np.array([[70.0], [np.nan], [10.0]], "float32")
    expected = np.array([[1.0, 0.0], [0.0, 1.0], [-2.0, 0.0]], "float32")
    np.testing.assert_allclose(np.asarray(layer(x)), expected)
    inputs = keras.Input((1,))
    model = keras.Model(inputs, NumericCoding(50.0, 20.0)(inputs))
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(again(x)), [[1.0], [0.0], [-2.0]])


def test_fit_coding_uses_the_training_statistics_and_flags_missing_values():
    coding = fit_coding(TRAIN, ["age", "site"])
    age, site = coding.columns
    ages = np.array([30.0, 50.0, 70.0])
    assert age["kind"] == "numeric" and age["indicator"] and age["mean"] == 50.0 and age["std"] == pytest.approx(ages.std())
    assert site["kind"] == "categorical" and site["vocabulary"] == ["arm", "leg", ""]  # most frequent first, missing last
    assert coding.width == 2 + 1 + 3
    new = pd.DataFrame({"age": ["50", "", "90"], "site": ["leg", "", "moon"]}, dtype=object)
    coded = coding.coded(new)
    # age: (x - 50) / std with the flag; site: [out of vocabulary, arm, leg, missing]
    np.testing.assert_allclose(coded[:, :2], [[0, 0], [0, 1], [40 / ages.std(), 0]], rtol=1e-6)
    np.testing.assert_array_equal(coded[:, 2:], [[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]])


def test_kinds_are_inferred_and_bad_columns_refused():
    assert infer_kind(["1", "2.5", ""]) == "numeric" and infer_kind(["1", "x"]) == "categorical"
    assert fit_coding(TRAIN, ["flag"], {"flag": "categorical"}).columns[0]["vocabulary"] == ["0", "1"]
    with pytest.raises(UserError, match="covariate 'c' has one value"):
        fit_coding(pd.DataFrame({"c": ["3", "3"]}, dtype=object), ["c"])
    with pytest.raises(UserError, match="covariate 'c' is empty in every training row"):
        fit_coding(pd.DataFrame({"c": ["", ""]}, dtype=object), ["c"])
    with pytest.raises(UserError, match="numeric but holds 'old'.*--categorical c"):
        fit_coding(pd.DataFrame({"c": ["3", "old"]}, dtype=object), ["c"], {"c": "numeric"})


def test_with_coding_puts_the_coding_in_front_of_the_network(tmp_path):
    coding = fit_coding(TRAIN, ["age", "site"])
    images = keras.Input((8, 8, 3), name="images")
    covariates = keras.Input((coding.width,), name="covariates")
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(images))
    network = keras.Model([images, covariates], keras.layers.Dense(1, name="head")(
        keras.layers.Concatenate()([pooled, covariates])))
    model = with_coding(network, coding)
    assert sorted(model.input) == ["age", "image", "site"] and model.get_layer("conv") is network.get_layer("conv")
    x = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype("float32")
    table = pd.DataFrame({"age": ["40", "", "61"], "site": ["arm", "moon", ""]}, dtype=object)
    out = np.asarray(model({"image": x, **coding.raw_values(table)}))
    np.testing.assert_allclose(out, np.asarray(network([x, coding.coded(table)])), rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "coded.keras")
    again = keras.saving.load_model(tmp_path / "coded.keras")
    np.testing.assert_allclose(np.asarray(again({"image": x, **coding.raw_values(table)})), out, rtol=1e-6)


def test_scale_multiplies_the_coded_vector_and_so_the_covariate_weights_effective_adam_rate(tmp_path):
    """Adam moves a weight by about one learning rate a step whatever its gradient's scale, so the weights
    that read a vector scaled by 10 take the same step and change the output 10 times as much."""
    coding = fit_coding(TRAIN, ["age", "site"])
    table = pd.DataFrame({"age": ["40", "", "61", "55"], "site": ["arm", "moon", "", "leg"]}, dtype=object)
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    y = np.array([[1.0], [0.0], [1.0], [0.0]], "float32")

    def one_step(scale):
        keras.utils.set_random_seed(0)
        images = keras.Input((8, 8, 3), name="images")
        covariates = keras.Input((coding.width,), name="covariates")
        pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(images))
        head = keras.layers.Dense(1, name="head", kernel_initializer="zeros")
        network = keras.Model([images, covariates], head(keras.layers.Concatenate()([pooled, covariates])))
        model = with_coding(network, coding, scale=scale)
        coded = np.asarray(model.get_layer("covariate_scale")(coding.coded(table))) if scale != 1 else None
        model.compile(keras.optimizers.Adam(1e-2), "mse")
        model.train_on_batch({"image": x, **coding.raw_values(table)}, y)
        return model, coded, head.get_weights()[0][2:]  # the covariates' rows

    model, coded, rows = one_step(10.0)
    _, _, rows_1 = one_step(1.0)
    np.testing.assert_allclose(coded, 10 * coding.coded(table), rtol=1e-6)
    assert np.abs(rows_1).max() > 1e-3
    np.testing.assert_allclose(rows, rows_1, rtol=1e-3, atol=1e-6)  # the same step: 10x its effect
    model.save(tmp_path / "scaled.keras")
    again = keras.saving.load_model(tmp_path / "scaled.keras")
    inputs = {"image": x, **coding.raw_values(table)}
    np.testing.assert_allclose(np.asarray(again(inputs)), np.asarray(model(inputs)), rtol=1e-6)
