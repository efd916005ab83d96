"""One import that registers every custom Keras object of this project, so saved models load.

Keras finds a custom layer, loss, metric or optimizer of a `.keras` file by
its registered name (`hybridvision>HybridConv2D`), which exists only once the
module defining it has been imported. Importing this package imports them
all:

    import keras
    import hybridvision  # noqa: F401  (registers the custom objects)

    model = keras.saving.load_model("saved_models/attractiveness/hybrid.keras")  # safe_mode stays on

`hybridvision.load_model(path)` does the same in one call.
"""

import keras

import apps.attractiveness.metrics  # noqa: F401  BinaryMacroF1
import common.data.affine_augment  # noqa: F401  AffineAugmentation
import common.layers  # noqa: F401  HybridConv*, FiLM*, CondConv2D, SpatialPyramidPooling2D
import common.losses  # noqa: F401  WeightedBinaryCrossentropy
import common.optimizers  # noqa: F401  AdaBound

__all__ = ["load_model"]


def load_model(path, **kwargs):
    """`keras.saving.load_model(path, **kwargs)` with every custom object of the project registered."""
    return keras.saving.load_model(path, **kwargs)
