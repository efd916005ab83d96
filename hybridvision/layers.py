"""The conditioning layers and the other custom layers of hybridvision.

Conditioned on a per-sample covariate vector (called on `[x, covariates]`):
`HybridConv2D` (ShortFuse: kernel `W0 + sum_l s_l W_l`) and its siblings
`HybridConv1D` / `HybridConv3D`, `FiLMConv2D` (a convolution whose filters are
scaled and shifted by the covariates), `FiLM` (the same on any feature map)
and `CondConv2D` (kernel mixed from experts, routed by the input and
optionally the covariates). Each conditioned convolution has `from_conv2d`
(`from_conv1d` / `from_conv3d`), which starts exactly where a trained Keras
convolution is. Also `SpatialPyramidPooling2D` (fixed-length features from
maps of any size) and `AffineAugmentation` (ImageDataGenerator-style random
affine warp, fused into one warp per image) and `NumericCoding` (a numeric
covariate standardised, a missing value imputed and flagged, inside the model).

Every layer is registered for `.keras` saving. Re-exports; each class lives
in `hybridvision.common` and is documented there.
"""

from hybridvision.common.data.affine_augment import AffineAugmentation
from hybridvision.common.layers import (
    CondConv2D,
    FiLM,
    FiLMConv2D,
    HybridConv1D,
    HybridConv2D,
    HybridConv3D,
    NumericCoding,
    SpatialPyramidPooling2D,
)

__all__ = [
    "AffineAugmentation",
    "CondConv2D",
    "FiLM",
    "FiLMConv2D",
    "HybridConv1D",
    "HybridConv2D",
    "HybridConv3D",
    "NumericCoding",
    "SpatialPyramidPooling2D",
]
