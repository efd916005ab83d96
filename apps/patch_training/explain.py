"""Grad-CAM of a saved patch_training model on an image you name: the image beside its heat map, in a PNG.

    hybridvision patch_training explain --model saved_models/patch_training/latest.keras --image photo.jpg
    hybridvision patch_training explain --model M --image ... --class NAME --out cam.png   # explain another class

The title gives the class explained, its score, and whether it is the
predicted class or the one named by --class (e.g. the true class).
"""

from __future__ import annotations

from hybridvision.apps.patch_training.config import explain_parser
from hybridvision.apps.patch_training.predict import SPEC
from hybridvision.common.explain import run_explain
from hybridvision.common.run import setup_logging


def main(argv=None) -> dict:
    """Write the PNG; returns `hybridvision.common.explain.explain_image`'s result."""
    args = explain_parser().parse_args(argv)
    setup_logging(args.quiet)
    return run_explain(SPEC, args)


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
