"""The conditioning layers and the other custom layers of hybridvision.

Re-exports; each class lives in `hybridvision.common` and is documented there.
"""

from hybridvision.common.data.affine_augment import AffineAugmentation
from hybridvision.common.layers import (
    CondConv2D,
    FiLM,
    FiLMConv2D,
    HybridConv1D,
    HybridConv2D,
    HybridConv3D,
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
    "SpatialPyramidPooling2D",
]
