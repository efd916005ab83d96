"""`hybridvision export`: SavedModel and TFLite artefacts with a free batch give Keras's outputs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from hybridvision import cli
from hybridvision.common.cli import UserError
from hybridvision.common.export import check_paths, export_model, use_expanded_convolutions
from hybridvision.common.layers import CondConv2D, FiLMConv2D, HybridConv1D, HybridConv2D, HybridConv3D

ROOT = Path(__file__).resolve().parents[2]
BATCH = 8
KINDS = ("hybrid", "film", "cond")


def small_model(kind: str, implementation: str = "auto") -> keras.Model:
    """Images + covariates in (free batch), the layer's feature maps and a score out.

    Non-zero covariate weights everywhere, so a wrong per-sample kernel shows.
    """
    images = keras.Input((10, 9, 3), name="images")
    covariates = keras.Input((2,), name="covariates")
    if kind == "hybrid":
        layer = HybridConv2D(4, 3, 2, strides=2, padding="same", covariate_initializer="random_normal",
                             bias_initializer="random_normal", implementation=implementation)
    elif kind == "film":
        layer = FiLMConv2D(4, 3, 2, padding="same", scale_initializer="random_normal",
                           shift_initializer="random_normal")
    else:
        layer = CondConv2D(4, 3, num_experts=3, num_covariates=2, dilation_rate=2, padding="same",
                           bias_initializer="random_normal", routing_bias_initializer="random_normal",
                           implementation=implementation)
    maps = layer([images, covariates])
    score = keras.layers.Dense(1, name="score")(keras.layers.GlobalAveragePooling2D()(maps))
    return keras.Model([images, covariates], [maps, score])


def batch_of_8():
    rng = np.random.default_rng(3)
    return {"images": rng.normal(size=(BATCH, 10, 9, 3)).astype("float32"),
            "covariates": rng.normal(size=(BATCH, 2)).astype("float32")}


def keras_outputs(model, inputs):
    return model.predict([inputs["images"], inputs["covariates"]], batch_size=BATCH, verbose=0)


def run_saved_model(path, inputs):
    """The serving signature's outputs, in the model's output order (output_0, output_1, ...)."""
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    outputs = serve(**{name: tf.constant(value) for name, value in inputs.items()})
    return [outputs[key].numpy() for key in sorted(outputs)]


def run_tflite(path, inputs):
    """Resize the inputs to the batch, allocate, invoke: outputs in the signature's output order."""
    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner("serving_default")
    input_details, output_details = runner.get_input_details(), runner.get_output_details()
    del runner  # it holds views of the interpreter's buffers, which resizing would invalidate
    assert sorted(input_details) == sorted(inputs)
    for name, detail in input_details.items():
        assert detail["shape_signature"][0] == -1, f"the batch of '{name}' is not free"
        interpreter.resize_tensor_input(detail["index"], inputs[name].shape)
    interpreter.allocate_tensors()
    for name, detail in input_details.items():
        interpreter.set_tensor(detail["index"], inputs[name])
    interpreter.invoke()
    return [interpreter.get_tensor(output_details[name]["index"]) for name in sorted(output_details)]


def assert_matches(got, expected, atol=1e-4):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)
    return max(float(np.abs(a - b).max()) for a, b in zip(got, expected))


@pytest.mark.parametrize("kind", KINDS)
def test_saved_model_with_a_free_batch_gives_the_keras_outputs(kind, tmp_path):
    model, inputs = small_model(kind), batch_of_8()
    expected = keras_outputs(model, inputs)
    export_model(model, "saved_model", tmp_path / "model.saved_model")
    diff = assert_matches(run_saved_model(tmp_path / "model.saved_model", inputs), expected)
    print(f"{kind} saved_model max |diff| {diff:.2e}")


@pytest.mark.parametrize("kind", KINDS)
def test_tflite_with_a_free_batch_gives_the_keras_outputs(kind, tmp_path):
    model, inputs = small_model(kind), batch_of_8()
    expected = keras_outputs(model, inputs)  # before the export switches the implementation
    export_model(model, "tflite", tmp_path / "model.tflite")
    diff = assert_matches(run_tflite(tmp_path / "model.tflite", inputs), expected)
    print(f"{kind} tflite max |diff| {diff:.2e}")
    # The same file serves another batch size.
    one = {name: value[:1] for name, value in inputs.items()}
    assert_matches(run_tflite(tmp_path / "model.tflite", one), [e[:1] for e in expected])


@pytest.mark.parametrize("cls, shape, options", [
    (HybridConv1D, (20, 3), {"padding": "causal", "dilation_rate": 2}),
    (HybridConv3D, (6, 7, 5, 2), {"strides": 2, "padding": "same"}),
])
def test_tflite_of_the_other_ranks(cls, shape, options, tmp_path):
    images, covariates = keras.Input(shape, name="images"), keras.Input((3,), name="covariates")
    layer = cls(4, 3, 3, covariate_initializer="random_normal", **options)
    model = keras.Model([images, covariates], layer([images, covariates]))
    rng = np.random.default_rng(5)
    inputs = {"images": rng.normal(size=(BATCH, *shape)).astype("float32"),
              "covariates": rng.normal(size=(BATCH, 3)).astype("float32")}
    expected = [keras_outputs(model, inputs)]
    export_model(model, "tflite", tmp_path / "model.tflite")
    assert_matches(run_tflite(tmp_path / "model.tflite", inputs), expected)


def test_grouped_per_sample_convolution_is_what_tflite_cannot_convert(tmp_path, monkeypatch):
    """Why the exporter switches to "expanded": the grouped convolution (batch folded into channels) is no builtin."""
    import hybridvision.common.export as export

    monkeypatch.setattr(export, "use_expanded_convolutions", lambda model: [])
    with pytest.raises(UserError, match=r"TensorFlow Lite cannot convert.*Conv2D"):
        export_model(small_model("hybrid", implementation="grouped"), "tflite", tmp_path / "model.tflite")
    assert not (tmp_path / "model.tflite").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing half-written left behind


def test_expanded_is_switched_on_in_nested_models_and_film_is_left_alone():
    inner = small_model("hybrid")
    images, covariates = keras.Input((10, 9, 3)), keras.Input((2,))
    film = FiLMConv2D(2, 1, 2, name="film")
    cond = CondConv2D(2, 1, num_experts=2, name="cond")
    maps, _ = inner([images, covariates])
    outer = keras.Model([images, covariates], [cond(maps), film([maps, covariates])])
    hybrid = next(layer for layer in inner.layers if isinstance(layer, HybridConv2D))
    assert hybrid.implementation == "auto"
    assert sorted(use_expanded_convolutions(outer)) == sorted(["cond", hybrid.name])
    assert hybrid.implementation == cond.implementation == "expanded"
    assert "implementation" not in film.get_config()


def write_keras_model(path):
    small_model("cond").save(path)
    return path


@pytest.mark.slow
def test_command_end_to_end(tmp_path):
    """`hybridvision export` in a process of its own, default output path, then the artefacts match Keras."""
    model_path = write_keras_model(tmp_path / "model.keras")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "hybridvision", "export", str(model_path), "--format", "tflite"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == f"wrote {tmp_path / 'model.tflite'} (tflite, inputs: images, covariates)\n"
    inputs = batch_of_8()
    expected = keras_outputs(keras.saving.load_model(model_path), inputs)
    assert_matches(run_tflite(tmp_path / "model.tflite", inputs), expected)

    assert cli.run(["export", str(model_path), "--format", "saved_model"]) == 0
    assert_matches(run_saved_model(tmp_path / "model.saved_model", inputs), expected)
    # A second export needs --overwrite, then replaces it.
    with pytest.raises(UserError, match=r"model.saved_model exists; pass --overwrite"):
        cli.run(["export", str(model_path), "--format", "saved_model"])
    out = tmp_path / "elsewhere.saved_model"
    assert cli.run(["export", str(model_path), "--format", "saved_model", "--out", str(out)]) == 0
    assert cli.run(["export", str(model_path), "--format", "saved_model", "--out", str(out), "--overwrite"]) == 0
    assert_matches(run_saved_model(out, inputs), expected)


def test_bad_commands_fail_in_one_line(tmp_path):
    not_keras = tmp_path / "notes.keras"
    not_keras.write_text("not a zip")
    done = subprocess.run([sys.executable, "-m", "hybridvision", "export", str(not_keras), "--format", "tflite"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.endswith(f"error: {not_keras} is not a Keras model: expected a .keras file "
                                "(as saved by model.save)\n"), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "make, fmt, out, message",
    [
        (lambda d: d / "missing.keras", "tflite", None, "missing.keras: no such file"),
        (lambda d: d / "model.h5", "tflite", None, "model.h5 is not a Keras model"),
        (lambda d: d / "empty.keras", "tflite", None, "empty.keras is not a Keras model"),
        (lambda d: d / "model.keras", "onnx", None, "unknown format 'onnx'; the formats are saved_model, tflite"),
        (lambda d: d / "model.keras", "tflite", "taken.tflite", "taken.tflite exists; pass --overwrite"),
        (lambda d: d / "model.keras", "tflite", "no/such/dir/m.tflite", "no/such/dir: no such folder"),
    ],
)
def test_paths_are_checked_before_anything_loads(tmp_path, make, fmt, out, message):
    _archive(tmp_path / "model.keras")  # passes the format check, never loaded here
    with zipfile.ZipFile(tmp_path / "empty.keras", "w"):
        pass
    (tmp_path / "model.h5").write_bytes(b"")
    (tmp_path / "taken.tflite").write_bytes(b"")
    with pytest.raises(UserError, match=message):
        check_paths(make(tmp_path), fmt, tmp_path / out if out else None)


def test_default_output_is_next_to_the_model(tmp_path):
    _archive(tmp_path / "run.keras")
    assert check_paths(tmp_path / "run.keras", "tflite")[1] == tmp_path / "run.tflite"
    assert check_paths(tmp_path / "run.keras", "saved_model")[1] == tmp_path / "run.saved_model"


def _archive(path):
    """A zip with a config.json, as a .keras file has (not a loadable model)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")


def test_an_archive_keras_cannot_load_is_one_error(tmp_path):
    from hybridvision.common.export import main

    with zipfile.ZipFile(tmp_path / "broken.keras", "w") as archive:
        archive.writestr("config.json", '{"class_name": "Functional", "config": {}}')
    with pytest.raises(UserError, match=r"broken.keras could not be loaded as a Keras model: "):
        main([str(tmp_path / "broken.keras"), "--format", "tflite"])
    assert not (tmp_path / "broken.tflite").exists()
