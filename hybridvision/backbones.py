"""Backbone CNNs by name, offline-first, with their preprocessing.

Re-exports of `hybridvision.common.backbones`.
"""

from hybridvision.common.backbones import (
    BACKBONES,
    EFFICIENTNET_LITE,
    OFFLINE_PRETRAINED,
    build_backbone,
    native_resolution,
    preprocessing_layer,
    with_preprocessing,
)

__all__ = [
    "BACKBONES",
    "EFFICIENTNET_LITE",
    "OFFLINE_PRETRAINED",
    "build_backbone",
    "native_resolution",
    "preprocessing_layer",
    "with_preprocessing",
]
