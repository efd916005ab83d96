"""Label images with a saved patch_training model: a CSV of multi-labels and per-class probabilities, resumable.

    hybridvision patch_training predict --model saved_models/patch_training/latest.keras --images photos/ --out out.csv

The CSV has `file`, `labels` (every class whose probability is at or above
its threshold, `;`-separated; thresholds from --thresholds, the model's
card, else 0.5) and `p_<class>` for the 20 VOC classes.

Images stream in batches (memory stays flat); unreadable inputs go to
`<out>.errors.csv` instead of stopping the run; the same command again after
an interruption carries on without redoing or duplicating rows.
"""

from __future__ import annotations

from hybridvision.apps.patch_training.config import predict_parser
from hybridvision.common.data.names import VOC_CLASSES
from hybridvision.common.predict import PredictSpec, run_predict
from hybridvision.common.run import setup_logging

# What the app's models take and give; the model's card (when it has one) and the flags complete it.
SPEC = PredictSpec(app="patch_training", kind="multilabel", class_names=list(VOC_CLASSES),
                   column_help="a 'file' column with each image's path")


def main(argv=None) -> dict:
    """Predict; returns `hybridvision.common.predict.predict_items`'s summary."""
    args = predict_parser().parse_args(argv)
    setup_logging(args.quiet)
    return run_predict(SPEC, args)


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
