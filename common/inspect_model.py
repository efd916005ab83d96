"""Print what an exported model is, what it takes and how it was trained (`hybridvision inspect model.keras`).

The card is read from the `.keras` file's config.json (a zip member) without
loading the model, so this needs no TensorFlow and answers at once. The card
is the config of the model's `ModelCard` layer (`hybridvision.common.model_card`).
Models exported before cards existed show what their sidecar
`<model>.classes.json` says.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from hybridvision.common.cli import UserError
from hybridvision.common.config import OneLineErrorParser

CARD_CLASS = "ModelCard"


def _find_card(node):
    """The `card` of the first ModelCard layer config anywhere in a Keras config tree, or None."""
    if isinstance(node, dict):
        if node.get("class_name") == CARD_CLASS and isinstance(node.get("config"), dict) and "card" in node["config"]:
            return node["config"]["card"]
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_card(child)
        if found is not None:
            return found
    return None


def card_in_file(path) -> dict | None:
    """The card stored in a `.keras` file (None: a Keras model without one).

    Raises `UserError` (one line) for a missing file or one that is not a `.keras` zip.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file; pass the path of a .keras file (e.g. saved_models/<app>/latest.keras)")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise UserError(f"{path}: not a readable .keras model file ({type(err).__name__}: {err}); "
                        "pass a file saved by model.save(... .keras) or re-export it") from None
    return _find_card(config)


def sidecar_card(path) -> dict:
    """What the sidecar files of a model exported before cards existed say (`{}` if none)."""
    sidecar = Path(path).with_suffix(".classes.json")
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return {}
    return {**info, "from_sidecar": str(sidecar)} if isinstance(info, dict) else {}


def _shape(shape) -> str:
    return " x ".join("any" if v is None else str(v) for v in shape[1:]) or "scalar"


def _scalars(values: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(values.items()) if isinstance(v, (int, float)))


def describe(card: dict) -> list[str]:
    """The lines `hybridvision inspect` prints for a card."""
    lines = []

    def add(label, text):
        if text not in (None, "", [], {}):
            lines.append(f"{(label + ':').ljust(13)} {text}")

    add("app", card.get("app"))
    add("task", card.get("task"))
    names = card.get("class_names")
    if names:
        add("classes", f"{len(names)} in output order: {', '.join(map(str, names))}")
    add("target", card.get("target"))
    for item in card.get("inputs", []):
        text = _shape(item.get("shape", []))
        if len(item.get("shape", [])) == 2:
            text += " values" + (" (the covariates below)" if item.get("name") == "covariates" else "")
        if item.get("image"):
            size = card.get("image_size")
            text = f"images of any size ({text}), RGB 0..255" + (f", resized inside to {size[0]}x{size[1]}" if size else "")
        add(f"input {item.get('name')}", text)
    covariates = card.get("covariates")
    if covariates:
        add("covariates", f"{len(covariates)} in this order: {', '.join(covariates)}")
        add("coding", card.get("covariate_coding"))
    add("preprocessing", card.get("preprocessing"))
    training = card.get("training", {})
    add("run", card.get("run"))
    add("exported", card.get("created"))
    add("data", training.get("data"))
    add("epochs", training.get("epochs_trained"))
    settings = training.get("settings", {})
    add("settings", ", ".join(f"{k}={v}" for k, v in sorted(settings.items()) if v not in (None, "", [], {})))
    for split, values in training.get("metrics", {}).items():
        add(f"{split} metrics", _scalars(values) if isinstance(values, dict) else values)
    if card.get("from_sidecar"):
        add("note", f"exported before model cards: read from {card['from_sidecar']}")
    shown = {"app", "task", "class_names", "target", "inputs", "image_size", "covariates", "covariate_coding",
             "preprocessing", "training", "run", "created", "from_sidecar"}
    for key, value in sorted(card.items()):
        if key not in shown:
            add(key, json.dumps(value) if isinstance(value, (dict, list)) else value)
    return lines


def build_parser(prog: str = "hybridvision inspect") -> OneLineErrorParser:
    parser = OneLineErrorParser(prog=prog, description="What an exported model is, what it takes and how it was "
                                "trained (read from the .keras file, without loading it).")
    parser.add_argument("model", help="a .keras file, e.g. saved_models/<app>/latest.keras")
    parser.add_argument("--json", action="store_true", help="print the whole card as JSON")
    return parser


def main(argv=None, prog: str = "hybridvision inspect") -> int:
    args = build_parser(prog).parse_args(argv)
    card = card_in_file(args.model)
    if card is None:
        card = sidecar_card(args.model)
        if not card:
            raise UserError(f"{args.model}: a Keras model, but not one hybridvision exported (no model card); "
                            "export it with an app's train tool, or load it with keras.saving.load_model")
    if args.json:
        print(json.dumps(card, indent=2, sort_keys=True))
    else:
        print(args.model)
        for line in describe(card):
            print("  " + line)
    return 0


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
