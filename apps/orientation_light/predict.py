"""Label a whole image folder with a saved orientation or light model: a CSV, and optionally a 3x3 grid.

    hybridvision orientation_light predict --model saved_models/orientation_light/orientation_from_scratch.keras \\
        --images img_align_celeba --out orientation_labels.csv --grid orientation_grid.png

The folder is searched recursively. The CSV has the columns `file` (path
relative to `--images`), `label` and `p_<class>` per class. Images stream in
batches (memory stays flat for CelebA's 200k images); images that cannot be
decoded go to `<out>.errors.csv` instead of stopping the run; running the
same command again after an interruption carries on without redoing or
duplicating rows. Class names come from `<model>.classes.json`, written by
`train.py` beside every model it saves, or from `--classes`.
"""

from __future__ import annotations

import logging

from hybridvision.apps.orientation_light.config import predict_parser
from hybridvision.common.predict import label_folder, read_class_names, save_prediction_grid
from hybridvision.common.run import setup_logging

log = logging.getLogger("hybridvision")


def main(argv=None) -> dict:
    """Label the folder; returns `hybridvision.common.predict.label_folder`'s summary."""
    parser = predict_parser()
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    if args.batch_size < 1:
        parser.error(f"--batch-size {args.batch_size} must be at least 1")
    names = [n.strip() for n in args.classes.split(",") if n.strip()] if args.classes else read_class_names(args.model)
    summary = label_folder(args.model, args.images, args.out, names, batch_size=args.batch_size,
                           progress=not args.quiet)
    if args.grid:
        save_prediction_grid(args.out, args.images, args.grid, seed=args.seed)
        summary["grid"] = args.grid
    print(f"orientation_light predict: {summary['labelled']} labelled now, {summary['already_done']} done before, "
          f"{summary['errors']} unreadable (listed in {summary['errors_csv']}), "
          f"{summary['images_per_second']:.1f} images/s -> {summary['csv']}"
          + (f"; grid in {args.grid}" if args.grid else ""))
    return summary


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
