"""hybridvision: Keras 3 layers, backbones and apps for images that come with side information.

The public API:

- `hybridvision.layers`: `HybridConv2D` (ShortFuse) and its 1D/3D siblings,
  `FiLMConv2D`, `CondConv2D`, `SpatialPyramidPooling2D`, `AffineAugmentation`.
- `hybridvision.backbones`: offline pretrained EfficientNet-Lite0/1/2 and the
  other backbones by name, with their preprocessing.
- `hybridvision.transfer`: `freeze`, `unfreeze_top`, `hybridize`.
- `hybridvision.optimizers`, `hybridvision.losses`, `hybridvision.metrics`.
- `hybridvision.load_model(path)`: loads any model the suite saved, and
  `hybridvision.read_card(model_or_path)`: what an exported model is (its
  classes, covariates and their coding, how it was trained).

`import hybridvision` is light (the `hybridvision` command answers `--help`
without loading TensorFlow): the API modules load on first use. When Keras is
already imported, every custom object is registered at once, so
`keras.saving.load_model` works on the suite's models right after
`import hybridvision`.
"""

import importlib
import sys
from pathlib import Path as _Path

__version__ = "0.2.0"

# An install puts common/, apps/ and data_prep/ inside this package (setup.py's
# package_dir); in a source checkout they sit beside it, so let the checkout
# import them under the same names.
_CHECKOUT = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "common").is_dir() and (_CHECKOUT / "setup.py").is_file():
    __path__.append(str(_CHECKOUT))

from hybridvision.common.custom_objects import load_model  # noqa: E402 - light: Keras loads on the first call
from hybridvision.common.custom_objects import register_all as _register_all  # noqa: E402

_API_MODULES = ("layers", "backbones", "transfer", "optimizers", "losses", "metrics")

__all__ = [*_API_MODULES, "load_model", "read_card", "__version__"]


def __getattr__(name):
    if name in _API_MODULES:
        return importlib.import_module(f"hybridvision.{name}")
    if name == "read_card":  # its module imports Keras: loaded on first use
        from hybridvision.common.model_card import read_card

        return read_card
    raise AttributeError(f"module 'hybridvision' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


if "keras" in sys.modules:  # Keras is loaded anyway: registering now costs little
    _register_all()
