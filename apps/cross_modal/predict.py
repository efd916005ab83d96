"""Label images with a saved cross_modal model: a CSV of labels and probabilities, resumable.

    hybridvision cross_modal predict --model saved_models/cross_modal/latest.keras --images sketches/ --out labels.csv

The CSV has `file`, `label` and `p_<class>` per class. Class names come
from the model's card, `<model>.classes.json`, or --classes in output order
(a run's metrics.json lists them under notes.class_names).

Images stream in batches (memory stays flat); unreadable inputs go to
`<out>.errors.csv` instead of stopping the run; the same command again after
an interruption carries on without redoing or duplicating rows.
"""

from __future__ import annotations

from hybridvision.apps.cross_modal.config import predict_parser
from hybridvision.common.predict import PredictSpec, run_predict
from hybridvision.common.run import setup_logging

# What the app's models take and give; the model's card (when it has one) and the flags complete it.
SPEC = PredictSpec(
    app="cross_modal", kind="single", takes_covariates=True,  # per_modality models also take the modality, one-hot
    column_help="a 'file' column with each image's path (per_modality models: also one 1/0 column per modality)",
)


def main(argv=None) -> dict:
    """Predict; returns `hybridvision.common.predict.predict_items`'s summary."""
    args = predict_parser().parse_args(argv)
    setup_logging(args.quiet)
    return run_predict(SPEC, args)


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
