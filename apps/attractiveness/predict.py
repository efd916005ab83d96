"""Label images with a saved attractiveness model: a CSV of labels and probabilities from images and their covariates, resumable.

    hybridvision attractiveness predict --model saved_models/attractiveness/latest.keras \\
        --csv faces.csv --out attractive.csv      # faces.csv: file,Male,Young,... (1/0 or 1/-1)
    hybridvision attractiveness predict --model saved_models/attractiveness/baseline.keras --images faces/ --out a.csv

A model that takes covariates needs them per image, so it reads a CSV whose
columns are the image column (`file`, or the training table's image column)
and the model's covariates (named by the model's card), written as in
training: raw numbers and categories (an empty cell is a missing value; a
category never seen in training is taken too), or CelebA's 1/0 (1/-1). The
CSV written has the image column, the covariates, `label` (e.g.
`Attractive` or `not_Attractive` at p >= 0.5; a table's class names) and one
probability column per class (two classes: the positive one's).

Images stream in batches (memory stays flat); unreadable inputs go to
`<out>.errors.csv` instead of stopping the run; the same command again after
an interruption carries on without redoing or duplicating rows.
"""

from __future__ import annotations

from hybridvision.apps.attractiveness.config import predict_parser
from hybridvision.common.predict import PredictSpec, run_predict
from hybridvision.common.run import setup_logging

# What the app's models take and give; the model's card (when it has one) and the flags complete it.
SPEC = PredictSpec(
    app="attractiveness", kind="binary", takes_covariates=True, class_names=["not_Attractive", "Attractive"],
    column_help="one row per image: the image file, then each of the model's covariates as in training",
)


def main(argv=None) -> dict:
    """Predict; returns `hybridvision.common.predict.predict_items`'s summary."""
    args = predict_parser().parse_args(argv)
    setup_logging(args.quiet)
    return run_predict(SPEC, args)


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
