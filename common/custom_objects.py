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
    "hybridvision.common.model_card",  # ModelCard (the description inside every exported model)
)


def register_all() -> None:
    """Import every module that registers a custom object (idempotent, cheap after the first call)."""
    for name in MODULES:
        importlib.import_module(name)


def load_model(path, **kwargs):
    """`keras.saving.load_model(path, **kwargs)` with every custom object of hybridvision registered.

    `safe_mode` stays on; no `custom_objects` are needed. Models saved by
    earlier versions (whose config names `common.layers...`) load too.

    Args:
        path: a `.keras` file saved by `model.save`.
        **kwargs: passed on to `keras.saving.load_model` (e.g. `compile=False`).

    Returns:
        The `keras.Model`.

    Example:
        ```python
        import os
        import tempfile

        import keras
        import numpy as np
        import hybridvision
        from hybridvision.layers import HybridConv2D

        images, covariates = keras.Input((16, 16, 3)), keras.Input((2,))
        x = HybridConv2D(4, 3, num_covariates=2)([images, covariates])
        model = keras.Model([images, covariates], keras.layers.GlobalAveragePooling2D()(x))
        path = os.path.join(tempfile.mkdtemp(), "model.keras")
        model.save(path)

        restored = hybridvision.load_model(path)  # in any later Python process
        inputs = [np.ones((1, 16, 16, 3)), np.ones((1, 2))]
        np.testing.assert_allclose(restored.predict(inputs, verbose=0), model.predict(inputs, verbose=0))
        ```
    """
    import keras

    register_all()
    return keras.saving.load_model(path, **kwargs)
