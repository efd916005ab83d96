"""Backbone CNNs shared by the apps (see `registry` for the list), built offline-first.

The names and the settings worked out from them (`names`) import without
Keras; the builders (`registry`) load on first use, so a config module can
import `hybridvision.common.backbones` and `--help` stays fast.
"""

import importlib

from hybridvision.common.backbones.names import (
    BACKBONES,
    EFFICIENTNET_LITE,
    OFFLINE_PRETRAINED,
    SCRATCH_ONLY,
    default_weights,
    is_pretrained,
    native_resolution,
    resolve_image_size,
    resolve_weights,
)

# Need Keras: imported from `registry` when first asked for.
_FROM_REGISTRY = ("build_backbone", "conv_layer_names", "preprocess", "preprocessing_layer", "with_preprocessing")

__all__ = [
    "BACKBONES",
    "EFFICIENTNET_LITE",
    "OFFLINE_PRETRAINED",
    "SCRATCH_ONLY",
    "build_backbone",
    "conv_layer_names",
    "default_weights",
    "is_pretrained",
    "native_resolution",
    "preprocess",
    "preprocessing_layer",
    "resolve_image_size",
    "resolve_weights",
    "with_preprocessing",
]


def __getattr__(name):
    if name in _FROM_REGISTRY:
        return getattr(importlib.import_module("hybridvision.common.backbones.registry"), name)
    raise AttributeError(f"module 'hybridvision.common.backbones' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
