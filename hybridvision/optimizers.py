"""Optimizers: AdaBound / AMSBound. Re-exports of `hybridvision.common.optimizers`."""

from hybridvision.common.optimizers import AdaBound

__all__ = ["AdaBound"]
