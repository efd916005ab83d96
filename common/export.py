"""Export a saved Keras model as a TensorFlow SavedModel or a TensorFlow Lite file.

    hybridvision export model.keras --format saved_model   # -> model.saved_model/
    hybridvision export model.keras --format tflite        # -> model.tflite
    hybridvision export model.keras --format tflite --out phone/model.tflite --overwrite

Both keep the batch size free. A SavedModel is Keras's own
`model.export(path, format="tf_saved_model")`: load it with
`tf.saved_model.load(path)` and call its `serve` function or its
`serving_default` signature (one named input per model input). A TFLite file
is converted from such a SavedModel with builtin TFLite ops only (no
TensorFlow "select" ops needed at run time); before the conversion every
per-sample convolution (`HybridConv1D/2D/3D`, `CondConv2D`) is switched to
`implementation="expanded"` (see `common/layers/expanded_conv.py`): their
other implementations fold the batch into the channels of a grouped
convolution whose kernel is built at run time, which TFLite's builtin
convolution cannot express, so conversion failed unless the batch was fixed
at 1. The exported numbers are the Keras model's, up to float rounding.

This module imports TensorFlow only when it exports, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import zipfile
from pathlib import Path

from hybridvision.common.cli import UserError, main_entry, stderr_to
from hybridvision.common.config import OneLineErrorParser

FORMATS = ("saved_model", "tflite")
# model.keras -> model.saved_model/ or model.tflite, next to it.
SUFFIXES = {"saved_model": ".saved_model", "tflite": ".tflite"}


def build_parser() -> argparse.ArgumentParser:
    """The command's parser (imports nothing heavy, so `--help` needs no TensorFlow)."""
    parser = OneLineErrorParser(
        prog="hybridvision export",
        description="Export a saved Keras model as a TensorFlow SavedModel or a TensorFlow Lite file.",
        epilog="Both keep the batch size free. Load a SavedModel with tf.saved_model.load(PATH) "
        "(signature 'serving_default'), a TFLite file with tf.lite.Interpreter (resize the inputs "
        "to your batch, then allocate_tensors).",
    )
    parser.add_argument("model", help="the .keras file (as saved by model.save or a training run)")
    # No argparse `choices`: check_paths says what is wrong in one line, as for the other mistakes.
    parser.add_argument("--format", required=True, metavar="{saved_model,tflite}",
                        help="saved_model (a folder) or tflite (a file)")
    parser.add_argument("--out", help="where to write it (default: next to the model, "
                                      "MODEL.saved_model/ or MODEL.tflite)")
    parser.add_argument("--overwrite", action="store_true", help="replace what is already at the output path")
    return parser


def default_output(model_path, fmt: str) -> Path:
    """`dir/model.keras` -> `dir/model.saved_model` or `dir/model.tflite`."""
    return Path(model_path).with_suffix(SUFFIXES[fmt])


def check_paths(model_path, fmt: str, out=None, overwrite: bool = False) -> tuple[Path, Path]:
    """(the model file, the output path), or a `UserError` saying what is wrong, before anything loads."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'; the formats are {', '.join(FORMATS)}")
    model_path = Path(model_path)
    if not model_path.exists():
        raise UserError(f"{model_path}: no such file")
    if not (model_path.is_file() and model_path.suffix == ".keras" and _is_keras_archive(model_path)):
        raise UserError(f"{model_path} is not a Keras model: expected a .keras file (as saved by model.save)")
    out = Path(out) if out else default_output(model_path, fmt)
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; pass --overwrite to replace it, or --out for another path")
    if out.exists() and fmt == "tflite" and out.is_dir():
        raise UserError(f"{out} is a folder; a TFLite export is one file: give --out a file name")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder (for {out})")
    return model_path, out


def _is_keras_archive(path: Path) -> bool:
    """A `.keras` file is a zip archive with the model's `config.json` in it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "config.json" in archive.namelist()


def use_expanded_convolutions(model) -> list[str]:
    """Switch every per-sample convolution in `model` (nested ones too) to `implementation="expanded"`.

    Returns the names of the layers switched. The layers read `implementation`
    when they are traced, so the export traced after this uses the expanded
    path, with the same weights. Layers without the choice (`FiLMConv2D`: a
    plain convolution, then a per-sample scale) are left alone.
    """
    from hybridvision.common.layers.per_sample_conv import PerSampleConv

    switched = []
    # Keras's own walk over every sublayer (nested models and layers inside custom layers too).
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, PerSampleConv) and "implementation" in layer.get_config():
            layer.implementation = "expanded"
            switched.append(layer.name)
    return switched


def _tflite_error(text: str) -> UserError:
    """The converter's long message, cut to the line that names the ops TFLite lacks (if there is one)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = [line for line in lines if line.startswith(("TF Select ops:", "Flex ops:", "Custom ops:"))]
    reason = named[0] if named else (lines[0] if lines else "no reason given")
    return UserError(f"TensorFlow Lite cannot convert this model with its builtin ops ({reason[:300]})")


def _replace(staged: Path, out: Path) -> None:
    """Move the finished export to `out`, replacing what was there (the overwrite was checked before)."""
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    staged.replace(out)


def export_model(model, fmt: str, out) -> Path:
    """Export a Keras `model` to `out` as `fmt` ("saved_model" or "tflite"); returns `out`.

    The export is written next to `out` first and moved there when complete,
    so a failed export leaves no half-written artefact. For "tflite" the
    model's per-sample convolutions are switched to "expanded" (in place:
    export a copy, e.g. a freshly loaded model, if you train on after).
    """
    import tensorflow as tf

    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'; the formats are {', '.join(FORMATS)}")
    out = Path(out)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        saved_model = Path(tmp) / "saved_model"
        if fmt == "tflite":
            use_expanded_convolutions(model)
        model.export(str(saved_model), format="tf_saved_model", verbose=False)
        if fmt == "saved_model":
            _replace(saved_model, out)
            return out
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        # The converter's C++ side writes its log (and, on failure, the whole
        # MLIR module) to file descriptor 2: kept out of the command's output,
        # the reason goes into the one-line error.
        with tempfile.TemporaryFile() as log:
            try:
                with stderr_to(log):
                    flatbuffer = converter.convert()
            except Exception as err:  # noqa: BLE001 - several types, the reason is in the text
                log.seek(0)
                raise _tflite_error(f"{err}\n{log.read().decode(errors='replace')}") from err
        staged = Path(tmp) / "model.tflite"
        staged.write_bytes(flatbuffer)
        _replace(staged, out)
    return out


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    model_path, out = check_paths(args.model, args.format, args.out, args.overwrite)
    from hybridvision.common.custom_objects import load_model

    try:
        model = load_model(model_path, compile=False)
    except (ValueError, KeyError, TypeError) as err:  # what Keras raises for an archive it cannot read
        raise UserError(f"{model_path} could not be loaded as a Keras model: {err}") from err
    export_model(model, args.format, out)
    print(f"wrote {out} ({args.format}, inputs: {', '.join(_input_names(model))})")
    return 0


def _input_names(model) -> list[str]:
    return [tensor.name for tensor in model.inputs] if getattr(model, "inputs", None) else ["?"]


if __name__ == "__main__":
    main_entry(main)
