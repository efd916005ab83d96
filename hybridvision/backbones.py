"""Backbone CNNs by name, offline-first, with their preprocessing.

`available()` lists the names; EfficientNet-Lite0/1/2 carry ImageNet weights
that ship inside installed packages, so `weights="imagenet"` needs no
internet for them. `build_raw_image_backbone` gives a backbone that takes raw
0..255 RGB images of any size (resizing and preprocessing inside);
`build_backbone` the bare network, which takes preprocessed images
(`preprocessing_layer`, or `with_preprocessing` around a whole model).

Re-exports of `hybridvision.common.backbones.registry` and `.raw_image_backbone`.
"""

from hybridvision.common.backbones.raw_image_backbone import build_raw_image_backbone
from hybridvision.common.backbones.registry import (
    available,
    build_backbone,
    preprocessing_layer,
    with_preprocessing,
)

__all__ = [
    "available",
    "build_backbone",
    "build_raw_image_backbone",
    "preprocessing_layer",
    "with_preprocessing",
]
