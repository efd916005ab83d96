"""Custom Keras layers shared by the apps (one public class per module)."""

from common.layers.hybrid_conv2d import HybridConv2D
from common.layers.spatial_pyramid_pooling2d import SpatialPyramidPooling2D

__all__ = ["HybridConv2D", "SpatialPyramidPooling2D"]
