"""Every custom Keras object of the project, registered in one call, and `load_model`.

Keras finds a custom layer, loss, metric or optimizer of a `.keras` file by
its registered name (`hybridvision>HybridConv2D`), which exists only once the
module defining it has been imported. The name does not depend on the module
path, so models saved before the folders moved under `hybridvision.` (their
config says `common.layers.hybrid_conv2d`) load too.
"""

from __future__ import annotations

import importlib

# The modules whose import registers a custom object (`register_keras_serializable(package="hybridvision")`).
MODULES = (
    "hybridvision.common.layers",  # HybridConv1D/2D/3D, FiLM, FiLMConv2D, CondConv2D, SpatialPyramidPooling2D
    "hybridvision.common.data.affine_augment",  # AffineAugmentation
    "hybridvision.common.losses",  # WeightedBinaryCrossentropy
    "hybridvision.common.optimizers",  # AdaBound
    "hybridvision.common.binary_macro_f1",  # BinaryMacroF1
)


def register_all() -> None:
    """Import every module that registers a custom object (idempotent, cheap after the first call)."""
    for name in MODULES:
        importlib.import_module(name)


def load_model(path, **kwargs):
    """`keras.saving.load_model(path, **kwargs)` with every custom object of hybridvision registered.

    `safe_mode` stays on (the default); no `custom_objects` are needed.

    Example:

    ```python
    import hybridvision
    model = hybridvision.load_model("saved_models/attractiveness/hybrid.keras")
    ```
    """
    import keras

    register_all()
    return keras.saving.load_model(path, **kwargs)
