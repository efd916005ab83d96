"""Grad-CAM of a saved attractiveness model on an image you name: the image beside its heat map, in a PNG.

    hybridvision attractiveness explain --model saved_models/attractiveness/latest.keras --image face.jpg --covariates Male=0,Smiling=1
    hybridvision attractiveness explain --model M --image ... --class NAME --out cam.png   # explain another class

The title gives the class explained, its score, and whether it is the
predicted class or the one named by --class (e.g. the true class).
"""

from __future__ import annotations

from hybridvision.apps.attractiveness.config import explain_parser
from hybridvision.apps.attractiveness.predict import SPEC
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
