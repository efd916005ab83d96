"""Backbone names and the settings worked out from them, without Keras.

The apps' config modules (and so every `--help`) need the names, the native
resolutions and the weights defaults, but not the networks: keeping these
here lets `hybridvision <app> train --help` answer without importing
TensorFlow. `registry` builds the networks and re-exports everything here.
"""

import os

# The input size each EfficientNet-Lite variant's ImageNet weights were trained
# at (px); `efficientnet_lite.VARIANTS` holds the same numbers (a test checks).
_EFFICIENTNET_LITE_RESOLUTION = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
EFFICIENTNET_LITE = tuple(_EFFICIENTNET_LITE_RESOLUTION)
# Backbones with ImageNet weights that need no internet (they ship in a package).
OFFLINE_PRETRAINED = EFFICIENTNET_LITE
SCRATCH_ONLY = ("small", "from_scratch")
BACKBONES = ("vgg16", "vgg16_bn", "resnet50", "inception_v3", *EFFICIENTNET_LITE, *SCRATCH_ONLY)


def native_resolution(name):
    """The input size a backbone's ImageNet weights were trained at (px), or None for the scratch-only ones."""
    key = _check_name(name)
    if key in EFFICIENTNET_LITE:
        return _EFFICIENTNET_LITE_RESOLUTION[key]
    if key in SCRATCH_ONLY:
        return None
    return 299 if key == "inception_v3" else 224


def resolve_image_size(name, weights, image_size, scratch_size):
    """`image_size`, or when it is None the backbone's ImageNet resolution with pretrained `weights`, else
    `scratch_size` (an app's size for a network from random weights)."""
    if image_size is not None:
        return image_size
    return (is_pretrained(weights) and native_resolution(name)) or scratch_size


def default_weights(name):
    """`"imagenet"` for a backbone with pretrained weights, `"none"` for the scratch-only ones."""
    return "none" if _check_name(name) in SCRATCH_ONLY else "imagenet"


def resolve_weights(name, weights, flag="--backbone"):
    """`weights`, or `default_weights(name)` when it is None; ImageNet weights of a scratch-only backbone
    are refused in one line naming `flag`."""
    if weights is None:
        return default_weights(name)
    if _check_name(name) in SCRATCH_ONLY and str(weights).lower() == "imagenet":
        raise ValueError(f"{flag} {name} has no ImageNet weights; pass --weights none or a .weights.h5 file")
    return weights


def is_pretrained(weights):
    """Whether a `weights` setting loads trained weights (ImageNet or a file), not a random start."""
    return _check_weights(weights) is not None


def _check_name(name):
    key = str(name).lower()
    if key not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; valid names: {', '.join(BACKBONES)}.")
    return key


def _check_weights(weights):
    if weights is None or str(weights).lower() in ("none", ""):
        return None
    if str(weights).lower() == "imagenet":
        return "imagenet"
    path = os.path.expanduser(str(weights))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"weights file not found: {path}; pass weights='imagenet', 'none' "
            "or the path of an existing .weights.h5 file."
        )
    if not path.endswith(".h5"):
        raise ValueError(
            f"weights file {path} is not a Keras weights file; save one with "
            "model.save_weights('name.weights.h5') and pass that path."
        )
    return path
