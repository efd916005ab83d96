"""Grad-CAM, captured activations and filter grids, also through a nested backbone."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hybridvision.common.explain import (
    conv_layers,
    first_layer_filters,
    grad_cam,
    layer_outputs,
    save_activation_grid,
    save_filter_grid,
    save_grad_cam_grid,
)


def _nested_classifier():
    """A 1x1 'preprocessing' conv, a nested backbone, a head: the cross_modal shape."""
    inner_in = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inner_in)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv_b")(x)
    backbone = keras.Model(inner_in, x, name="backbone")
    backbone.trainable = False  # frozen: Grad-CAM must not rely on trainable variables
    inputs = keras.Input((16, 16, 3))
    pre = keras.layers.Conv2D(3, 1, name="preprocess")(inputs)
    y = keras.layers.GlobalAveragePooling2D()(backbone(pre))
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(y)
    return keras.Model(inputs, outputs), backbone


def _reference_cam(model, backbone, images, class_index):
    """Grad-CAM by hand: split the model at the backbone output."""
    pre = model.get_layer("preprocess")
    feature = backbone(pre(images))
    with tf.GradientTape() as tape:
        tape.watch(feature)
        pooled = tf.reduce_mean(feature, axis=(1, 2))
        probs = model.get_layer("probs")(pooled)
        score = probs[:, class_index]
    grads = tape.gradient(score, feature)
    cam = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grads, axis=(1, 2), keepdims=True) * feature, -1)).numpy()
    return cam / (cam.max(axis=(1, 2), keepdims=True) + 1e-8)


def test_grad_cam_shape_range_and_reference():
    model, backbone = _nested_classifier()
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    maps, chosen = grad_cam(model, images, class_index=1)
    assert maps.shape == (2, 16, 16) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    assert list(chosen) == [1, 1]
    reference = _reference_cam(model, backbone, images, 1)  # (2, 8, 8) before resizing
    expected = tf.image.resize(reference[..., None], (16, 16))[..., 0].numpy()
    np.testing.assert_allclose(maps, np.clip(expected, 0, 1), atol=1e-4)
    _, chosen = grad_cam(model, images)
    np.testing.assert_array_equal(chosen, np.argmax(model(images), -1))


def test_layer_outputs_reach_inside_nested_models():
    model, backbone = _nested_classifier()
    assert conv_layers(model) == ["preprocess", "conv_a", "conv_b"]
    images = np.random.default_rng(1).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    out = layer_outputs(model, images, ["conv_b"])["conv_b"]
    expected = backbone(model.get_layer("preprocess")(images))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not in model"):
        layer_outputs(model, images, ["nope"])


def test_first_layer_filters_skip_1x1_and_grids_are_written(tmp_path):
    model, _ = _nested_classifier()
    kernel = first_layer_filters(model)
    assert kernel.shape == (3, 3, 3, 4)
    images = np.random.default_rng(2).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    for path in (save_filter_grid(model, tmp_path / "f.png"),
                 save_activation_grid(model, images[0], "conv_a", tmp_path / "a.png"),
                 save_grad_cam_grid(model, images, tmp_path / "g.png", ["x", "y", "z"])):
        assert path.exists() and path.stat().st_size > 1000


# ---- `hybridvision <app> explain` on models of each kind ------------------------------------------------
def _png(path, size=16, seed=0):
    import cv2

    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))
    return path


def _conv_classifier(covariates=0, channels=3, pair=False):
    images = keras.Input((16, 16, channels), name="pair" if pair else "image")
    inner_in = keras.Input((16, 16, channels))
    backbone = keras.Model(inner_in, keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="last_conv")(
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="first_conv")(inner_in)), name="backbone")
    x = keras.layers.GlobalAveragePooling2D()(backbone(keras.layers.Rescaling(1 / 255)(images)))
    if covariates:
        cov = keras.Input((covariates,), name="covariates")
        return keras.Model([images, cov], keras.layers.Dense(1, activation="sigmoid")(
            keras.layers.Concatenate()([x, cov])))
    if pair:
        return keras.Model(images, {"compare": keras.layers.Dense(2, activation="softmax", name="compare")(x)})
    return keras.Model(images, keras.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("kind", ["single", "covariates", "pair"])
def test_explain_writes_a_png_for_each_kind_of_model(kind, tmp_path, capsys):
    import argparse

    from hybridvision.common.cli import UserError
    from hybridvision.common.explain import run_explain
    from hybridvision.common.predict import PredictSpec

    path = tmp_path / "m.keras"
    image = _png(tmp_path / "face.png")
    args = argparse.Namespace(model=str(path), image=[str(image)], class_name=None, classes=None, layer=None,
                              out=str(tmp_path / "cam.png"), covariates=None, target=None)
    if kind == "single":
        _conv_classifier().save(path)
        spec = PredictSpec(app="orientation_light", kind="single")
        args.classes, args.class_name = "left,center,right", "right"
    elif kind == "covariates":
        _conv_classifier(covariates=2).save(path)
        spec = PredictSpec(app="attractiveness", kind="binary", takes_covariates=True,
                           class_names=["not_Attractive", "Attractive"])
        args.covariates, args.class_name = "Male=1,Smiling=-1", "not_Attractive"
    else:
        _conv_classifier(channels=2, pair=True).save(path)
        spec = PredictSpec(app="digit_pairs", kind="pair", class_names=["gt", "le"], image_columns=("first", "second"),
                           output="compare", scale=1 / 255, resize="area", round_pixels=False)
        args.image = [str(image), str(_png(tmp_path / "second.png", seed=1))]
    result = run_explain(spec, args)
    assert result["png"].stat().st_size > 1000
    assert result["class"] == (args.class_name or result["predicted"]) and 0.0 <= result["score"] <= 1.0
    assert "Grad-CAM of" in capsys.readouterr().out
    args.class_name = "nope"
    with pytest.raises(UserError, match="--class nope: not a class"):
        run_explain(spec, args)
    if kind == "covariates":
        args.class_name, args.covariates = None, "Male=1"
        with pytest.raises(UserError, match="takes 2 covariate.*1 were named"):
            run_explain(spec, args)


def test_grad_cam_samples_one_png_per_sample_titled_with_true_and_predicted(tmp_path):
    from hybridvision.common import tracking

    model, _ = _nested_classifier()
    images = np.random.default_rng(1).uniform(0, 255, (6, 16, 16, 3)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2])
    pngs = tracking._gradcam_pngs(model, (images, labels), ["a", "b", "c"])
    assert len(pngs) == 4  # the first tracking.GRADCAM samples of the batch
    shapes = {tuple(tf.image.decode_png(png).shape) for png in pngs}
    assert len(shapes) == 1 and min(next(iter(shapes))[:2]) > 16


def test_grad_cam_samples_skip_a_model_without_a_convolution_quietly_and_warn_once_on_a_failure(caplog):
    from hybridvision.common import tracking

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    images = np.zeros((2, 8, 8, 3), "float32")
    with caplog.at_level("WARNING", logger="hybridvision"):
        assert tracking._gradcam_pngs(model, (images, np.array([0, 1])), ["a", "b"]) == []
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # nothing to explain: not a problem
    conv = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inputs)))
    with caplog.at_level("WARNING", logger="hybridvision"):
        assert tracking._gradcam_pngs(conv, (np.zeros((2, 5, 5, 1), "float32"), None), ["a", "b"]) == []
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "no Grad-CAM samples" in record.getMessage() and "\n" not in record.getMessage()
