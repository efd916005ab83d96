"""Custom Keras layers shared by the apps (one public class per module)."""

from hybridvision.common.layers.condconv2d import CondConv2D
from hybridvision.common.layers.film import FiLM
from hybridvision.common.layers.film_conv2d import FiLMConv2D
from hybridvision.common.layers.hybrid_conv import HybridConv
from hybridvision.common.layers.hybrid_conv1d import HybridConv1D
from hybridvision.common.layers.hybrid_conv2d import HybridConv2D
from hybridvision.common.layers.hybrid_conv3d import HybridConv3D
from hybridvision.common.layers.numeric_coding import NumericCoding
from hybridvision.common.layers.per_sample_conv import PerSampleConv
from hybridvision.common.layers.spatial_pyramid_pooling2d import SpatialPyramidPooling2D

__all__ = [
    "CondConv2D",
    "FiLM",
    "FiLMConv2D",
    "HybridConv",
    "HybridConv1D",
    "HybridConv2D",
    "HybridConv3D",
    "NumericCoding",
    "PerSampleConv",
    "SpatialPyramidPooling2D",
]
