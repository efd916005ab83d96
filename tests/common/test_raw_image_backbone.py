"""`available`, `build_raw_image_backbone` and `with_preprocessing` (hybridvision.backbones)."""

import keras
import numpy as np
import pytest

from hybridvision.common.backbones.raw_image_backbone import build_raw_image_backbone
from hybridvision.common.backbones.registry import (
    available,
    build_backbone,
    preprocessing_layer,
    with_preprocessing,
)


def test_available_lists_every_backbone_and_the_offline_pretrained_ones():
    names = available()
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg16", "small"} <= set(names)
    assert available(offline_pretrained=True) == ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    for name in names:
        assert isinstance(build_backbone(name, (75, 75, 3)), keras.Model)  # every listed name builds


def test_raw_image_backbone_equals_resize_preprocess_backbone(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_raw_image_backbone("small", weights="none", image_size=(24, 32), pooling="max")
    assert [layer.name for layer in model.layers] == ["images", "resize", "preprocess", "small"]
    photos = np.random.default_rng(0).uniform(0, 255, (2, 50, 41, 3)).astype("float32")
    backbone = model.get_layer("small")
    resized = keras.ops.image.resize(photos, (24, 32))
    expected = backbone(preprocessing_layer("small")(resized), training=False)
    got = model(photos, training=False)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)
    assert model(photos[:, :30, :30]).shape == (2, 128)  # any input size
    path = tmp_path / "raw.keras"
    model.save(path)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(path)(photos, training=False)), np.asarray(got), atol=1e-6)


def test_raw_image_backbone_defaults_to_the_native_resolution():
    model = build_raw_image_backbone("efficientnet_lite1", weights="none")
    assert model.get_layer("resize").get_config()["height"] == 240
    with pytest.raises(ValueError, match="image_size"):
        build_raw_image_backbone("small", weights="none")


def test_a_plain_call_runs_in_inference_mode_and_training_true_trains():
    # keras.layers.Resizing defaults to training=True and Keras hands that on
    # to the layers after it; the model must still default to inference.
    model = build_raw_image_backbone("small", weights="none", image_size=16)
    bn = model.get_layer("small").get_layer("block1_bn")
    photos = np.random.default_rng(1).uniform(0, 255, (2, 20, 20, 3)).astype("float32")
    model(photos)
    np.testing.assert_array_equal(np.asarray(bn.moving_mean), 0.0)
    model(photos, training=True)
    assert np.abs(np.asarray(bn.moving_mean)).max() > 0


def test_with_preprocessing_feeds_every_reader_of_the_images_and_shares_the_layers():
    images = keras.Input((8, 8, 3), name="images")
    covariates = keras.Input((2,), name="covariates")
    conv = keras.layers.Conv2D(4, 3, name="conv")(images)
    skip = keras.layers.GlobalAveragePooling2D(name="skip")(images)  # a second reader of the images
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(conv), skip, covariates])
    model = keras.Model([images, covariates], keras.layers.Dense(1, name="head")(x))

    raw = with_preprocessing(model, "efficientnet_lite0")
    assert [x.name for x in raw.inputs] == ["images", "covariates"]
    assert raw.get_layer("conv") is model.get_layer("conv")
    assert not any(isinstance(layer, keras.Model) for layer in raw.layers)  # flat
    photos = np.random.default_rng(2).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    covs = np.ones((2, 2), "float32")
    expected = model([np.asarray(preprocessing_layer("efficientnet_lite0")(photos)), covs])
    np.testing.assert_allclose(np.asarray(raw([photos, covs])), np.asarray(expected), rtol=1e-5, atol=1e-5)
