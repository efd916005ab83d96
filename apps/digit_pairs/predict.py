"""Label images with a saved digit_pairs model: a CSV of pair labels (is the first digit <= the second?) and probabilities, resumable.

    hybridvision digit_pairs predict --model saved_models/digit_pairs/latest.keras --csv pairs.csv --out out.csv

pairs.csv names two digit images per row (columns `first,second`, white
digit on black as in MNIST). The CSV written has `first`, `second`, `label`
(`first_le_second` when the first digit is <= the second, else
`first_gt_second`), the predicted digits `digit_first`, `digit_second`
when the model has auxiliary digit outputs, and the two probabilities.

Images stream in batches (memory stays flat); unreadable inputs go to
`<out>.errors.csv` instead of stopping the run; the same command again after
an interruption carries on without redoing or duplicating rows.
"""

from __future__ import annotations

from hybridvision.apps.digit_pairs.config import predict_parser
from hybridvision.common.predict import PredictSpec, run_predict
from hybridvision.common.run import setup_logging

# What the app's models take and give; the model's card (when it has one) and the flags complete it.
SPEC = PredictSpec(
    app="digit_pairs", kind="pair", class_names=["first_gt_second", "first_le_second"],
    image_columns=("first", "second"), output="compare",
    extra_outputs={"digit_a": "digit_first", "digit_b": "digit_second"},
    # The training pairs are 28 px MNIST digits average-pooled to 14 px, with values in [0, 1].
    scale=1 / 255, resize="area", round_pixels=False,
    column_help="one row per pair, 'first' and 'second' naming its two digit images",
)


def main(argv=None) -> dict:
    """Predict; returns `hybridvision.common.predict.predict_items`'s summary."""
    args = predict_parser().parse_args(argv)
    setup_logging(args.quiet)
    return run_predict(SPEC, args)


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
