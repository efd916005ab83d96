"""Backbone CNNs shared by the apps (see `registry` for the list), built offline-first."""

from hybridvision.common.backbones.registry import (
    BACKBONES,
    EFFICIENTNET_LITE,
    OFFLINE_PRETRAINED,
    SCRATCH_ONLY,
    build_backbone,
    conv_layer_names,
    default_weights,
    is_pretrained,
    native_resolution,
    preprocess,
    preprocessing_layer,
    resolve_image_size,
    resolve_weights,
    with_preprocessing,
)

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
