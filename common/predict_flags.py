"""The flags of every app's `predict` and `explain` tools, built without importing TensorFlow.

Each app's `config.py` calls these from its `predict_parser()` /
`explain_parser()` (so `hybridvision <app> predict --help` stays light),
naming only what differs between apps: covariates, pairs, thresholds.
"""

from __future__ import annotations

import argparse

from hybridvision.common.config import OneLineErrorParser


def _parser(app: str, tool: str, description: str) -> argparse.ArgumentParser:
    # Not ArgumentDefaultsHelpFormatter: most flags default to "none given", which it would print as "None".
    return OneLineErrorParser(prog=f"hybridvision {app} {tool}", description=description)


def add_model_flags(parser, covariates: bool = False, target: bool = False) -> None:
    """--model and what names its outputs/inputs when the model has no card."""
    parser.add_argument("--model", required=True, help="a .keras model saved by train.py")
    parser.add_argument("--classes", help="class names in output order, e.g. left,center,right; default: the "
                        "model's card, else <model>.classes.json")
    if covariates:
        parser.add_argument("--covariates", help="the model's covariates in training order, e.g. Male,Smiling; "
                            "default: the model's card")
    if target:
        parser.add_argument("--target", help="the attribute the model predicts; default: the model's card, "
                            "else Attractive")


def predict_parser(app: str, description: str, columns: str = "file", covariates: bool = False,
                   target: bool = False, thresholds: bool = False) -> argparse.ArgumentParser:
    """`hybridvision <app> predict`: --model, --images DIR | --csv FILE, --out, and the app's extras."""
    parser = _parser(app, "predict", description)
    add_model_flags(parser, covariates=covariates, target=target)
    extra = ",<covariates...>" if covariates else ""
    parser.add_argument("--images", help="folder of images, searched recursively; with --csv: the folder "
                        "the CSV's relative file names are under (default: the CSV's folder)")
    parser.add_argument("--csv", help=f"CSV listing the inputs, one per row, with the columns {columns}{extra}")
    parser.add_argument("--out", required=True, help="CSV to write (or to resume); unreadable inputs go to "
                        "<out>.errors.csv")
    if thresholds:
        parser.add_argument("--thresholds", help="a label is given at or above its threshold: one for every class "
                            "or one per class in output order; default: the model's card, else 0.5")
    parser.add_argument("--batch-size", type=int, default=64, help="inputs per forward pass (default: 64)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def explain_parser(app: str, description: str, images: int = 1, covariates: bool = False,
                   target: bool = False) -> argparse.ArgumentParser:
    """`hybridvision <app> explain`: Grad-CAM of --model on --image (two for pairs), as a PNG."""
    parser = _parser(app, "explain", description)
    parser.add_argument("--model", required=True, help="a .keras model saved by train.py")
    add_explain_flags(parser, images=images, covariates=covariates, target=target)
    parser.add_argument("--layer", default=None, help="Grad-CAM layer (default: the last convolution on the "
                        "image's path)")
    parser.add_argument("--out", default=None, help="PNG to write (default: <image>.gradcam.png beside the image)")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the final line")
    return parser


def add_explain_flags(parser, images: int = 1, covariates: bool = False, target: bool = False,
                      required: bool = True) -> None:
    """--image, --class, --classes and the app's extras (cross_modal adds these to its run-folder explain)."""
    parser.add_argument("--image", nargs=images, metavar="FILE", required=required,
                        help="the image to explain" if images == 1 else f"the {images} images of the pair, in order")
    parser.add_argument("--class", dest="class_name", help="the class to explain (e.g. the true class); "
                        "default: the predicted class")
    parser.add_argument("--classes", help="class names in output order, e.g. left,center,right; default: the "
                        "model's card, else <model>.classes.json")
    if covariates:
        parser.add_argument("--covariates", help="the image's covariates with their values, in the model's "
                            "training order, e.g. Male=1,Smiling=0 (1/0, 1/-1 or true/false)")
    if target:
        parser.add_argument("--target", help="the attribute the model predicts; default: the model's card, "
                            "else Attractive")
