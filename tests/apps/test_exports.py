"""Every app's export is usable on its own: loaded in a fresh process, it predicts on raw images of
another size than it was trained at, and says what it is (class names, covariates).

Each app's default model trains one short run on the embedded demo data (the
apps' own tests' fastest settings), which exports under saved_models/demo/<app>/.
"""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCH_TINY = ["--backbone", "small", "--image-size", "32", "--min-patch", "32", "--batch-size", "4", "--patch-hidden", "16"]
# app -> (flags of a short run of its default model, what its card must say)
RUNS = {
    # One epoch at 24 px may end at chance (the export guard would refuse it): exported all the same.
    "orientation_light": (["--image-size", "24", "--epochs", "1", "--batch-size", "8", "--export-anyway"],
                          {"class_names": ["center", "left", "right"]}),
    "attractiveness": (["--backbone", "small", "--weights", "none", "--image-size", "16", "--epochs", "1",
                        "--batch-size", "8", "--covariates", "Male,Smiling", "--export-anyway"],
                       {"covariates": ["Male", "Smiling"], "target": "Attractive"}),
    "cross_modal": (["--protocol", "from_source", "--source", "photo", "--backbone", "small", "--weights", "none",
                     "--image-size", "16", "--epochs", "1", "--batch-size", "8", "--finetune-epochs", "1"], {}),
    # One epoch on 40 pairs learns nothing (val below the majority answer): exported all the same.
    "digit_pairs": (["--pairs", "40", "--epochs", "1", "--export-anyway"],
                    {"class_names": ["first > second", "first <= second"]}),
    "patch_training": ([*PATCH_TINY, "--epochs", "2", "--switch-epoch", "1"], {}),
}

# Run in a fresh process: only what `import hybridvision` registers is known there.
CHECK = r"""
import json, sys, warnings
import keras
import numpy as np
import hybridvision
from hybridvision.common.model_card import read_card

export, trained = sys.argv[1], sys.argv[2]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = keras.saving.load_model(export)
card = read_card(model)
rng = np.random.default_rng(0)
height, width = card["image_size"]

def inputs(h, w):
    made = {}
    for tensor in model.inputs:
        shape = (2, h, w, tensor.shape[-1]) if len(tensor.shape) == 4 else (2, *tensor.shape[1:])
        made[tensor.name] = rng.uniform(0, 1 if len(tensor.shape) == 2 else 255, shape).astype("float32")
    # A model with named inputs (covariates coded inside) takes them by name.
    return made if isinstance(model.input, dict) else list(made.values())

same = inputs(height, width)
odd = model.predict(inputs(height + 13, width + 5), verbose=0)
before = keras.saving.load_model(trained, compile=False).predict(same, verbose=0)
after = model.predict(same, verbose=0)
flat = lambda out: [np.asarray(v) for v in (out.values() if isinstance(out, dict) else out if isinstance(out, list) else [out])]
print(json.dumps({
    "card": card, "warnings": [str(w.message) for w in caught],
    "odd_shapes": [list(v.shape) for v in flat(odd)], "finite": all(np.isfinite(v).all() for v in flat(odd)),
    "max_difference": max(float(np.abs(a - b).max()) for a, b in zip(flat(before), flat(after))),
}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("app", list(RUNS))
def test_the_export_loads_in_a_fresh_process_takes_any_size_and_says_what_it_is(app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags, expected = RUNS[app]
    run_dir = tmp_path / "runs" / f"{app}_run"
    importlib.import_module(f"hybridvision.apps.{app}.train").main([*flags, "--run-dir", str(run_dir), "--quiet"])
    export = tmp_path / "saved_models" / "demo" / app / f"{app}_run.keras"
    assert export.is_file() and (export.parent / "latest.keras").read_bytes() == export.read_bytes()
    assert not (tmp_path / "saved_models" / app).exists(), "demo data never exports beside real models"
    done = subprocess.run([sys.executable, "-c", CHECK, str(export), str(run_dir / "model.keras")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["warnings"] == []
    assert result["finite"] and all(shape[0] == 2 for shape in result["odd_shapes"])
    assert result["max_difference"] < 1e-5, "at the training size the export predicts what the trained model did"
    card = result["card"]
    assert card["app"] == app and card["run"] == f"{app}_run" and card["class_names"]
    assert "SYNTHETIC" in card["training"]["data"] and card["training"]["epochs_trained"] >= 1
    for key, value in expected.items():
        assert card[key] == value, key
