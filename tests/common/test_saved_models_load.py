"""Saved models load in a fresh process after one `import hybridvision`, safe_mode on, without warnings."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import keras
import numpy as np

from hybridvision.common.binary_macro_f1 import BinaryMacroF1
from hybridvision.common.layers import CondConv2D, FiLMConv2D, HybridConv2D, SpatialPyramidPooling2D
from hybridvision.common.losses import WeightedBinaryCrossentropy
from hybridvision.common.optimizers import AdaBound
from hybridvision.common.run.atomic import atomic_save_model

ROOT = Path(__file__).resolve().parents[2]


def _hybrid_model():
    """Like attractiveness's: a HybridConv2D fed by covariates, the BinaryMacroF1 metric."""
    images, covariates = keras.Input((8, 8, 3)), keras.Input((2,))
    x = HybridConv2D(4, 3, num_covariates=2, padding="same")([images, covariates])
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model([images, covariates], outputs)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy", BinaryMacroF1(name="f1_macro")])
    return model, [np.zeros((4, 8, 8, 3), "float32"), np.zeros((4, 2), "float32")], np.ones((4, 1), "float32")


def _multilabel_model():
    """Like patch_training's: spatial pyramid pooling, the weighted BCE loss, AdaBound."""
    images = keras.Input((8, 8, 3))
    x = SpatialPyramidPooling2D()(keras.layers.Conv2D(4, 3, padding="same")(images))
    model = keras.Model(images, keras.layers.Dense(3, activation="sigmoid")(x))
    model.compile(AdaBound(1e-3), WeightedBinaryCrossentropy([1.0, 2.0, 3.0]))
    return model, np.zeros((4, 8, 8, 3), "float32"), np.ones((4, 3), "float32")


_LOAD = textwrap.dedent(
    """
    import sys, warnings
    sys.path.insert(0, {root!r})
    warnings.simplefilter("error")  # a warning on load (skipped optimizer variables, ...) fails
    import keras
    import hybridvision
    for path in sys.argv[1:]:
        model = keras.saving.load_model(path)  # safe_mode=True, the default
        print("loaded", path, model.optimizer.__class__.__name__)
    """
)


def test_saved_models_load_in_a_fresh_process_after_one_import(tmp_path):
    paths = []
    for name, make in (("hybrid", _hybrid_model), ("multilabel", _multilabel_model)):
        model, x, y = make()
        model.fit(x, y, epochs=1, verbose=0)
        paths.append(tmp_path / f"{name}.keras")
        atomic_save_model(model, paths[-1])
    # A compiled model whose optimizer never ran (cross_modal trains its head on cached features).
    model, _, _ = _multilabel_model()
    model.compile("rmsprop", "binary_crossentropy")
    paths.append(tmp_path / "unused_optimizer.keras")
    atomic_save_model(model, paths[-1])

    script = tmp_path / "load.py"
    script.write_text(_LOAD.format(root=str(ROOT)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(script), *map(str, paths)], cwd=tmp_path, capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("loaded") == 3, result.stdout


_LOAD_LEGACY = textwrap.dedent(
    """
    import sys, warnings
    sys.path.insert(0, {root!r})
    warnings.simplefilter("error")
    import numpy as np
    import hybridvision  # light: Keras is not imported yet, hybridvision.load_model registers what it needs
    model = hybridvision.load_model(sys.argv[1])
    data = np.load(sys.argv[2])
    outputs = model.predict([data["images"], data["covariates"]], verbose=0)
    print("max difference", float(np.abs(outputs - data["outputs"]).max()), model.optimizer.__class__.__name__)
    """
)


def _saved_under_the_old_module_names(path: Path) -> Path:
    """`path` as the code before the move under `hybridvision.` saved it: a copy whose config names the old
    modules (`common.layers.hybrid_conv2d`, `common.optimizers`, `apps.attractiveness.metrics`).

    Checked against a file the old code wrote: its config.json differed from today's only in these
    `module` strings (and in Keras's `shared_object_id` bookkeeping); registered names and weights are the same.
    """
    old = path.with_name("old_names.keras")
    with zipfile.ZipFile(path) as new_file, zipfile.ZipFile(old, "w") as old_file:
        for name in new_file.namelist():
            data = new_file.read(name)
            if name == "config.json":
                text = data.decode().replace('"module": "hybridvision.common.binary_macro_f1"',
                                             '"module": "apps.attractiveness.metrics"')
                data = text.replace('"module": "hybridvision.common.', '"module": "common.').encode()
            old_file.writestr(name, data)
    return old


def test_a_model_saved_under_the_old_module_names_loads_to_equal_outputs(tmp_path):
    images, covariates = keras.Input((8, 8, 3)), keras.Input((2,))
    x = HybridConv2D(4, 3, num_covariates=2, padding="same")([images, covariates])
    x = FiLMConv2D(4, 3, num_covariates=2, padding="same")([x, covariates])
    x = CondConv2D(4, 3, num_covariates=2, padding="same")([x, covariates])
    outputs = keras.layers.Dense(1, activation="sigmoid")(SpatialPyramidPooling2D()(x))
    model = keras.Model([images, covariates], outputs)
    model.compile(AdaBound(1e-3), "binary_crossentropy", metrics=[BinaryMacroF1(name="f1_macro")])
    rng = np.random.default_rng(0)
    data = {"images": rng.uniform(0, 1, (4, 8, 8, 3)).astype("float32"),
            "covariates": rng.normal(size=(4, 2)).astype("float32")}
    model.fit([data["images"], data["covariates"]], np.array([[0], [1], [0], [1]], "float32"), epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "io.npz", **data, outputs=model.predict([data["images"], data["covariates"]], verbose=0))

    old = _saved_under_the_old_module_names(tmp_path / "model.keras")
    config = json.loads(zipfile.ZipFile(old).read("config.json"))
    modules = {layer.get("module") for layer in config["config"]["layers"]}
    assert "common.layers.hybrid_conv2d" in modules and "hybridvision.common.layers.hybrid_conv2d" not in modules
    assert config["compile_config"]["metrics"][0]["module"] == "apps.attractiveness.metrics"
    script = tmp_path / "load_legacy.py"
    script.write_text(_LOAD_LEGACY.format(root=str(ROOT)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(script), str(old), str(tmp_path / "io.npz")], cwd=tmp_path,
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max difference 0.0 AdaBound" in result.stdout, result.stdout
