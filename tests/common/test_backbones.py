import importlib

import keras
import numpy as np
import pytest

from hybridvision.common import backbones
from hybridvision.common.backbones import BACKBONES, build_backbone, conv_layer_names, preprocess, preprocessing_layer


def images(size=32, batch=2):
    return np.random.default_rng(0).uniform(0, 255, size=(batch, size, size, 3)).astype("float32")


def run(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.fixture
def offline(monkeypatch):
    """Make every keras.applications download fail the way get_file does offline."""

    def fail(fname=None, origin=None, **kwargs):
        raise Exception(
            f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution"
        )

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", fail)


@pytest.fixture
def fake_imagenet(monkeypatch, tmp_path):
    """Serve a random-init VGG16 notop file as if it were the downloaded ImageNet one."""
    path = str(tmp_path / "vgg16_notop.weights.h5")
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    rng = np.random.default_rng(1)
    source.set_weights([rng.normal(0, 0.05, w.shape).astype("float32") for w in source.get_weights()])
    source.save_weights(path)
    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", lambda *a, **k: path)
    return source, path


def test_names_and_unknown_name():
    assert BACKBONES == (
        "vgg16", "vgg16_bn", "resnet50", "inception_v3",
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "small", "from_scratch",
    )
    with pytest.raises(ValueError, match="valid names: vgg16, vgg16_bn, resnet50"):
        build_backbone("vgg19")
    with pytest.raises(ValueError, match="valid names"):
        preprocess("alexnet")


def test_vgg16_feature_map_and_pooling():
    model = build_backbone("vgg16", (32, 32, 3))
    assert model.output.shape == (None, 1, 1, 512)
    assert len(conv_layer_names(model)) == 13
    pooled = build_backbone("vgg16", (32, 32, 3), pooling="max")
    assert pooled.output.shape == (None, 512)
    with pytest.raises(ValueError, match="pooling"):
        build_backbone("vgg16", (32, 32, 3), pooling="mean")


def test_vgg16_bn_layer_order_conv_bn_relu():
    model = build_backbone("vgg16_bn", (32, 32, 3), pooling="avg")
    assert model.output.shape == (None, 512)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 13
    for i in convs:
        conv, bn, relu = layers[i : i + 3]
        assert conv.get_config()["activation"] == "linear"
        assert isinstance(bn, keras.layers.BatchNormalization)
        assert isinstance(relu, keras.layers.Activation) and relu.get_config()["activation"] == "relu"
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in layers) == 5


def test_vgg16_bn_imagenet_copies_vgg16_kernels(fake_imagenet):
    source, _ = fake_imagenet
    model = build_backbone("vgg16_bn", (32, 32, 3), weights="imagenet")
    for name in conv_layer_names(source):
        for a, b in zip(source.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    bn = model.get_layer("block3_bn2")
    gamma, beta, mean, var = bn.get_weights()
    np.testing.assert_array_equal(gamma, 1)
    np.testing.assert_array_equal(beta, 0)
    np.testing.assert_array_equal(mean, 0)
    np.testing.assert_array_equal(var, 1)
    # BN at identity: the network computes what VGG16 computes.
    x = images()
    np.testing.assert_allclose(run(model, x), run(source, x), rtol=1e-3, atol=1e-3 * np.abs(run(source, x)).max())


def test_vgg16_bn_from_local_files(fake_imagenet, tmp_path):
    source, vgg16_path = fake_imagenet
    # A plain VGG16 weights file: kernels copied in.
    model = build_backbone("vgg16_bn", (32, 32, 3), weights=vgg16_path)
    np.testing.assert_array_equal(
        model.get_layer("block5_conv3").get_weights()[0], source.get_layer("block5_conv3").get_weights()[0]
    )
    # Its own file (with trained BN statistics): loaded directly.
    model.get_layer("block1_bn1").moving_mean.assign(np.full(64, 0.5, "float32"))
    own_path = str(tmp_path / "own.weights.h5")
    model.save_weights(own_path)
    again = build_backbone("vgg16_bn", (32, 32, 3), weights=own_path)
    np.testing.assert_array_equal(again.get_layer("block1_bn1").moving_mean.numpy(), 0.5)
    x = images()
    np.testing.assert_allclose(run(again, x), run(model, x), rtol=1e-5, atol=1e-5)


def test_imagenet_offline_gives_one_clear_error(offline):
    with pytest.raises(FileNotFoundError) as info:
        build_backbone("vgg16", (32, 32, 3), weights="imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "--weights /path/to/file.weights.h5" in message
    assert ".keras/models" in message or "KERAS_HOME" in message
    assert "vgg16" in message and "URL fetch failure" in message
    with pytest.raises(FileNotFoundError, match="--weights"):
        build_backbone("vgg16_bn", (32, 32, 3), weights="imagenet")


def test_imagenet_argument_errors_are_not_hidden(offline):
    with pytest.raises(ValueError, match="has no ImageNet weights"):
        build_backbone("small", (32, 32, 3), weights="imagenet")
    with pytest.raises(ValueError) as info:
        build_backbone("vgg16", (16, 16, 3), weights="imagenet")  # below VGG16's 32 px minimum
    assert "--weights" not in str(info.value)


@pytest.mark.parametrize("name", ["vgg16", "small", "from_scratch"])
def test_local_weights_file_round_trip(name, tmp_path):
    model = build_backbone(name, (32, 32, 3))
    rng = np.random.default_rng(2)
    model.set_weights([rng.normal(size=w.shape).astype("float32") * 0.1 for w in model.get_weights()])
    path = tmp_path / f"{name}.weights.h5"
    model.save_weights(str(path))
    loaded = build_backbone(name, (32, 32, 3), weights=str(path))
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_weights_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        build_backbone("small", (32, 32, 3), weights=str(tmp_path / "missing.weights.h5"))
    not_h5 = tmp_path / "weights.txt"
    not_h5.write_text("x")
    with pytest.raises(ValueError, match="weights.txt"):
        build_backbone("small", (32, 32, 3), weights=str(not_h5))
    other = tmp_path / "from_scratch.weights.h5"
    build_backbone("from_scratch", (32, 32, 3)).save_weights(str(other))
    with pytest.raises(ValueError, match="into backbone 'small'"):
        build_backbone("small", (32, 32, 3), weights=str(other))
    assert build_backbone("small", (32, 32, 3), weights="None").count_params() > 0


def test_small_and_from_scratch():
    small = build_backbone("small", (32, 32, 3))
    assert small.output.shape == (None, 2, 2, 128)
    assert len(conv_layer_names(small)) == 4
    assert build_backbone("small", (14, 14, 3), pooling="avg").output.shape == (None, 128)
    assert build_backbone("small", (None, None, 1)).output.shape == (None, None, None, 128)

    scratch = build_backbone("from_scratch", (64, 64, 3))
    assert scratch.output.shape == (None, 8, 8, 128)
    assert scratch.count_params() < 700_000
    layers = scratch.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, keras.layers.Conv2D):
            # The report's order: activation inside the conv, BN after it.
            assert layer.get_config()["activation"] == "relu"
            assert isinstance(layers[i + 1], keras.layers.BatchNormalization)
    rates = [layer.rate for layer in layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.2, 0.25, 0.3]
    with pytest.raises(ValueError, match="include_top"):
        build_backbone("from_scratch", (64, 64, 3), include_top=True)


def test_name_prefix_lets_two_copies_share_a_model(tmp_path):
    first = build_backbone("small", (32, 32, 3), name_prefix="photo_")
    second = build_backbone("small", (32, 32, 3), name_prefix="sketch_")
    assert first.name == "photo_small" and conv_layer_names(second)[0] == "sketch_block1_conv"
    a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    merged = keras.layers.Concatenate()([first(a), second(b)])
    model = keras.Model([a, b], merged)
    path = tmp_path / "two.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    x = images()
    np.testing.assert_allclose(run(restored, [x, x]), run(model, [x, x]), rtol=1e-6, atol=1e-6)
    assert restored.get_layer("sketch_small").get_layer("sketch_block4_conv") is not None


def test_preprocess():
    x = images(8)
    original = x.copy()
    np.testing.assert_allclose(preprocess("small")(x), x / 255.0)
    caffe = preprocess("vgg16_bn")(x)
    np.testing.assert_array_equal(x, original)  # not modified in place
    np.testing.assert_allclose(caffe[..., 0], x[..., 2] - 103.939, rtol=1e-6, atol=1e-4)
    assert preprocess("resnet50") is preprocess("vgg16")
    inception = preprocess("inception_v3")(x)
    np.testing.assert_allclose(inception, x / 127.5 - 1.0, rtol=1e-6, atol=1e-6)
    tensor = preprocess("vgg16")(keras.ops.convert_to_tensor(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor), caffe, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("name", BACKBONES)
def test_preprocessing_layer_equals_preprocess(name):
    x = images(4)
    layer = preprocessing_layer(name, layer_name="prep")
    assert layer.name == "prep" and not layer.trainable_weights
    out = keras.ops.convert_to_numpy(layer(keras.ops.convert_to_tensor(x)))
    np.testing.assert_allclose(out, preprocess(name)(x), rtol=1e-5, atol=1e-3)


def test_conv_layer_names_nested():
    base = build_backbone("small", (32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(3, 1, name="adapter")(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(base(x)))
    assert conv_layer_names(model) == ["adapter"] + conv_layer_names(base)


def test_resnet50_builds_small():
    model = build_backbone("resnet50", (32, 32, 3), pooling="avg")
    assert model.output.shape == (None, 2048)
    assert len(conv_layer_names(model)) == 53
    assert run(model, preprocess("resnet50")(images(32))).shape == (2, 2048)


def test_inception_v3_builds_at_minimum_size():
    model = build_backbone("inception_v3", (75, 75, 3))
    assert model.output.shape == (None, 1, 1, 2048)
    assert run(model, preprocess("inception_v3")(images(75))).shape == (2, 1, 1, 2048)


def test_import_and_building_without_weights_never_download(offline):
    # `offline` makes every keras.applications download raise; importing the
    # package again and building each backbone from random weights must not ask.
    importlib.reload(backbones.registry)
    importlib.reload(backbones)
    for name in BACKBONES:
        size = 75 if name == "inception_v3" else 32
        assert backbones.build_backbone(name, (size, size, 3), weights="none").count_params() > 0


def test_default_weights_per_backbone():
    for name in BACKBONES:
        expected = "none" if name in ("small", "from_scratch") else "imagenet"
        assert backbones.default_weights(name) == expected
    assert backbones.is_pretrained("imagenet") and not backbones.is_pretrained("none")
    assert not backbones.is_pretrained(None)
