"""How often proposals agree with labels kept as class folders.

    hybridvision agreement --proposals light.csv \
        --labels-dir ../shared/data/faces_orient_light/source_light

A proposal's label is the class folder its image sits in: found from the
`file` path itself when the proposals were made on the labels folder, else
by file name among the images under `--labels-dir`. Prints the agreement
per class (recall of the labels), the confusion table, and the agreement of
the more confident half of the proposals.
"""

from pathlib import Path

import pandas as pd

from hybridvision.common.config import OneLineErrorParser
from hybridvision.common.data.names import TASK_CLASSES
from hybridvision.data_prep import image_views


def _class_of(relative_path, classes):
    for part in reversed(Path(relative_path).parts[:-1]):
        if part in classes:
            return part
    return None


def folder_labels(labels_dir, classes):
    """{relative path: class} and {file name: class} for images in class-named folders."""
    by_path, by_name = {}, {}
    for file in image_views.list_images(labels_dir):
        label = _class_of(file, classes)
        if label is not None:
            by_path[file] = label
            by_name[Path(file).name] = label
    if not by_path:
        raise FileNotFoundError(
            f"no images in folders named {', '.join(classes)} under {labels_dir}"
        )
    return by_path, by_name


def attach_labels(proposals, labels_dir, classes):
    """The proposals that have a label, with a `label` column added."""
    by_path, by_name = folder_labels(labels_dir, classes)
    labels = []
    for file in proposals["file"]:
        label = _class_of(file, classes) if file not in by_path else by_path[file]
        labels.append(label if label is not None else by_name.get(Path(file).name))
    table = proposals.assign(label=labels)
    table = table[table["label"].notna()]
    if table.empty:
        raise ValueError(
            f"none of the proposals' files are among the labelled images under {labels_dir}"
        )
    return table


def agreement_tables(table, classes):
    """(per-class table, confusion table, summary dict) for a table with `label` and `proposal`."""
    proposal = table["proposal"].replace("", "(none)")
    agree = proposal == table["label"]
    rows = []
    for name in classes:
        of_class = table["label"] == name
        proposed = proposal == name
        rows.append(
            {
                "class": name,
                "labelled": int(of_class.sum()),
                "proposed": int(proposed.sum()),
                "agree": int((agree & of_class).sum()),
                "recall": round(float(agree[of_class].mean()), 3)
                if of_class.any()
                else float("nan"),
                "precision": round(float(agree[proposed].mean()), 3)
                if proposed.any()
                else float("nan"),
            }
        )
    per_class = pd.DataFrame(rows).set_index("class")
    columns = list(classes) + (["(none)"] if (proposal == "(none)").any() else [])
    confusion = pd.crosstab(table["label"], proposal).reindex(
        index=list(classes), columns=columns, fill_value=0
    )
    confusion.index.name, confusion.columns.name = "label", "proposal"
    confident = table["confidence"] >= table["confidence"].median()
    summary = {
        "n": len(table),
        "agreement": round(float(agree.mean()), 3),
        "confident_half_agreement": round(float(agree[confident].mean()), 3),
        "confident_half_n": int(confident.sum()),
    }
    return per_class, confusion, summary


def report(proposals, labels_dir, classes):
    """A printable agreement report."""
    table = attach_labels(proposals, labels_dir, classes)
    per_class, confusion, summary = agreement_tables(table, classes)
    return "\n".join(
        [
            (
                f"agreement with {labels_dir}: {summary['agreement']:.3f} of {summary['n']} images "
                f"({summary['confident_half_agreement']:.3f} on the {summary['confident_half_n']} "
                "more confident)"
            ),
            per_class.to_string(),
            "",
            confusion.to_string(),
        ]
    )


def build_parser():
    parser = OneLineErrorParser(
        prog="hybridvision agreement",
        description="Print how often proposals (a propose CSV) agree with labels kept as class "
        "folders, per class, with the confusion table.",
    )
    parser.add_argument("--proposals", required=True, help="CSV written by hybridvision.data_prep.propose")
    parser.add_argument("--labels-dir", required=True, help="folder with class-named sub-folders")
    parser.add_argument(
        "--task",
        choices=sorted(TASK_CLASSES),
        default=None,
        help="class names (default: guessed from the proposals)",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    proposals = pd.read_csv(args.proposals, keep_default_na=False)
    for column in ("file", "proposal", "confidence"):
        if column not in proposals.columns:
            raise ValueError(
                f"{args.proposals} has no column {column!r}: write it with hybridvision.data_prep.propose"
            )
    task = args.task
    if task is None:
        seen = set(proposals["proposal"]) - {""}
        task = "light" if seen and seen <= set(TASK_CLASSES["light"]) else "orientation"
    print(report(proposals, args.labels_dir, TASK_CLASSES[task]))
    return 0


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
