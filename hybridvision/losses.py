"""Losses: per-class weighted binary cross-entropy. Re-exports of `hybridvision.common.losses`."""

from hybridvision.common.losses import WeightedBinaryCrossentropy

__all__ = ["WeightedBinaryCrossentropy"]
