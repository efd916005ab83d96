"""Metrics: the macro F1 of a binary classifier. Re-exports of `hybridvision.common.binary_macro_f1`."""

from hybridvision.common.binary_macro_f1 import BinaryMacroF1

__all__ = ["BinaryMacroF1"]
