"""Transfer learning: BatchNorm-safe freezing and hybridising a pretrained network.

`freeze` makes a model (BatchNormalization included, so its statistics stay
as pretrained) non-trainable; `unfreeze_top` releases its last layers for
fine-tuning; `hybridize` rebuilds a model with chosen Conv2D layers replaced
by `HybridConv2D` (or `FiLMConv2D` / `CondConv2D`) fed by a new covariate
input, starting with exactly the outputs of the original.

Re-exports of `hybridvision.common.transfer`.
"""

from hybridvision.common.transfer import freeze, hybridize, unfreeze_top

__all__ = ["freeze", "hybridize", "unfreeze_top"]
