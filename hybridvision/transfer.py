"""Transfer learning: BatchNorm-safe freezing and hybridising a pretrained network.

Re-exports of `hybridvision.common.transfer`.
"""

from hybridvision.common.transfer import freeze, hybridize, unfreeze_top

__all__ = ["freeze", "hybridize", "unfreeze_top"]
