"""Visual explanations of a cross_modal model: Grad-CAM of any image, or of a run's test images with activations and first-layer filters.

    hybridvision cross_modal explain --model saved_models/cross_modal/latest.keras --image sketch.png [--class dog]
    hybridvision cross_modal explain --run-dir runs/cross_modal/20260101-120000
    hybridvision cross_modal explain --run-dir RUN --layer block5_conv3 --images 4 --out explain/

With --model and --image: one PNG (default `<image>.gradcam.png`, or
--out), the image beside its Grad-CAM heat map, titled with the class
explained, its score, and whether it is the predicted class or the one
named by --class. Without --model: reads `model.keras`, `config.json` and the class names in `metrics.json` of a
finished run (default: the newest finished run under runs/cross_modal/),
draws `--images` test images per modality from the run's data (seeded), and
writes into `--out` (default `<run-dir>/explain/`):
`gradcam_<modality>.png` (each image beside its Grad-CAM overlay, titled
with the class explained), `activations_<layer>_<modality>.png` (channels of
the chosen layers for the first image) and `filters.png` (first-layer
filters).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import numpy as np

from hybridvision.apps.cross_modal.config import explain_parser
from hybridvision.common.cli import UserError
from hybridvision.common.data import demo
from hybridvision.common.data.domains import read_domains, split_domains
from hybridvision.common.data.images import decode_image
from hybridvision.common.explain import (
    conv_layers,
    run_explain,
    save_activation_grid,
    save_filter_grid,
    save_grad_cam_grid,
)
from hybridvision.common.run import setup_logging

log = logging.getLogger("hybridvision")


def newest_run(root="runs/cross_modal") -> Path:
    runs = sorted(p for p in Path(root).glob("*") if (p / "metrics.json").exists())
    if not runs:
        raise FileNotFoundError(f"no finished run under {root}; train one first or pass --run-dir")
    return runs[-1]


def main(argv=None) -> list[Path]:
    args = explain_parser().parse_args(argv)
    setup_logging(args.quiet)
    if args.model or args.image:
        if not (args.model and args.image):
            raise UserError("--model and --image go together: pass both to explain one image, or neither to "
                            "explain a run's test images (--run-dir)")
        from hybridvision.apps.cross_modal.predict import SPEC

        return [run_explain(SPEC, args)["png"]]
    run_dir = Path(args.run_dir) if args.run_dir else newest_run()
    for name in ("model.keras", "config.json", "metrics.json"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir / name} is missing; --run-dir must be a finished cross_modal run")
    if args.images < 1:
        raise ValueError(f"--images {args.images} must be >= 1")
    cfg = json.loads((run_dir / "config.json").read_text())
    class_names = json.loads((run_dir / "metrics.json").read_text())["notes"]["class_names"]
    data_dir = demo.data_root(args.data_dir or cfg.get("data_dir"), "domains")
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    out = Path(args.out or run_dir / "explain")
    out.mkdir(parents=True, exist_ok=True)
    table = read_domains(data_dir, cfg.get("modalities") or None)
    modalities = table.attrs["modalities"]
    test = split_domains(table, cfg.get("split", "70,20,10"), seed=cfg.get("seed", 0))["test"]
    layers = conv_layers(model)
    chosen = args.activation_layers.split(",") if args.activation_layers else []
    per_modality = cfg.get("model") == "per_modality"
    written = []
    for index, modality in enumerate(modalities):
        rows = test[test["modality"] == modality]
        rows = rows.sample(min(args.images, len(rows)), random_state=args.seed)
        size = (cfg["image_size"], cfg["image_size"])
        images = np.stack([decode_image(p, size).numpy() for p in rows["path"]])
        extra = None
        grad_layer = args.layer
        if per_modality:
            extra = [np.tile(np.eye(len(modalities), dtype="float32")[index], (len(images), 1))]
            # Only the sample's own branch sees gradients: explain that branch.
            grad_layer = grad_layer or [n for n in layers if n.startswith(f"{modality}_")][-1]
        written.append(save_grad_cam_grid(model, images, out / f"gradcam_{modality}.png", class_names,
                                          layer_name=grad_layer, extra_inputs=extra))
        inputs = [images, *extra] if extra else images
        own = [n for n in layers if n.startswith(f"{modality}_")] if per_modality else layers
        for layer in chosen if args.activation_layers else [own[0], own[-1]]:
            if per_modality and not layer.startswith(f"{modality}_"):
                continue
            written.append(save_activation_grid(model, inputs, layer, out / f"activations_{layer}_{modality}.png"))
    written.append(save_filter_grid(model, out / "filters.png"))
    print(f"cross_modal explain: {len(written)} PNG grids in {out}")
    return written


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
