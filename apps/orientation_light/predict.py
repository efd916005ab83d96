"""Label a whole image folder with a saved orientation or light model: a CSV, and optionally a 3x3 grid.

    hybridvision orientation_light predict --model saved_models/orientation_light/orientation_from_scratch.keras \\
        --images img_align_celeba --out orientation_labels.csv --grid orientation_grid.png
    hybridvision orientation_light predict --model M --csv faces.csv --out labels.csv   # a CSV with a 'file' column

The folder is searched recursively. The CSV has the columns `file` (path
relative to `--images`, or as the input CSV gives it), `label` and
`p_<class>` per class. Images stream in batches (memory stays flat for
CelebA's 200k images); images that cannot be decoded go to
`<out>.errors.csv` instead of stopping the run; running the same command
again after an interruption carries on without redoing or duplicating rows.
Class names come from the model's card, `<model>.classes.json` (written by
`train.py` beside every model it saves), or `--classes`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hybridvision.apps.orientation_light.config import predict_parser
from hybridvision.common.predict import PredictSpec, run_predict, save_prediction_grid
from hybridvision.common.run import setup_logging

log = logging.getLogger("hybridvision")

# What the app's models take and give; the model's card (when it has one) and the flags complete it.
SPEC = PredictSpec(app="orientation_light", kind="single", column_help="a 'file' column with each image's path")


def main(argv=None) -> dict:
    """Label the images; returns `hybridvision.common.predict.predict_items`'s summary."""
    parser = predict_parser()
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    summary = run_predict(SPEC, args)
    if args.grid:
        base = args.images or str(Path(args.csv).parent)
        save_prediction_grid(args.out, base, args.grid, seed=args.seed)
        summary["grid"] = args.grid
        print(f"orientation_light predict: grid in {args.grid}")
    return summary


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
