"""The shared training harness: run directory, resume, metrics.json, export."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from hybridvision.common.config import TrainConfig
from hybridvision.common.history import read_history
from hybridvision.common.run import Run, resolve_run_dir


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("float32")
    return x, y


def _model():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(8, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    return model


class _StopAt(keras.callbacks.Callback):
    """Simulates a crash: raises in the middle of epoch `epoch` (0-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.current = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1:
            raise KeyboardInterrupt("simulated crash")


class _EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def _cfg(tmp_path, **kw):
    # A data_dir: these stand for runs on real data, which export to saved_models/<app>/.
    settings = {"run_dir": str(tmp_path / "run"), "data_dir": "toy-data", "epochs": 3, "batch_size": 16, "quiet": True,
                **kw}
    return TrainConfig(**settings)


def test_run_directory_contents_and_metrics_schema(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _data()
    cfg = _cfg(tmp_path)
    run = Run("toy", cfg)
    model = _model()
    run.fit(model, (x, y), (x, y), monitor="val_accuracy", batch_size=16)
    final, metrics = run.finish(model, {"val": (x, y), "test": (x[:32], y[:32])})

    for name in ("config.yaml", "config.json", "run.log", "history.csv", "curves.png", "best.keras", "model.keras", "metrics.json"):
        assert (run.dir / name).is_file(), name
    assert (run.dir / "tensorboard").is_dir()
    assert not (run.dir / "backup").exists(), "a finished run must not leave a backup behind"
    saved = json.loads((run.dir / "metrics.json").read_text())
    assert set(saved["val"]) >= {"loss", "accuracy"} and set(saved["test"]) >= {"loss", "accuracy"}
    assert saved["val"] == pytest.approx(metrics["val"])
    assert len(read_history(run.dir / "history.csv")) == 3
    export = tmp_path / "saved_models" / "toy" / "run.keras"
    assert export.is_file()
    reloaded = keras.models.load_model(export)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), final.predict(x, verbose=0), rtol=1e-6)
    # The config written is the one --config reads back.
    from hybridvision.common.config import load_config_file

    assert load_config_file(run.dir / "config.yaml")["epochs"] == 3
    # model.keras is the best checkpoint by val_accuracy.
    best_row = max(read_history(run.dir / "history.csv"), key=lambda r: r["val_accuracy"])
    assert saved["val"]["accuracy"] == pytest.approx(best_row["val_accuracy"], abs=1e-6)


def test_resume_after_interruption_continues_from_last_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _data()
    cfg = _cfg(tmp_path, seed=3)
    run = Run("toy", cfg)
    with pytest.raises(KeyboardInterrupt):
        run.fit(_model(), (x, y), (x, y), batch_size=16, callbacks=[_StopAt(epoch=1)])
    run.close()
    assert len(read_history(run.dir / "history.csv")) == 1
    assert (run.dir / "backup").is_dir()

    recorder = _EpochRecorder()
    run = Run("toy", cfg)
    history = run.fit(_model(), (x, y), (x, y), batch_size=16, callbacks=[recorder])
    assert recorder.epochs == [1, 2], "the second invocation must start at epoch 2 (index 1)"
    assert [int(r["epoch"]) for r in history] == [0, 1, 2]
    run.finish(_model(), {"val": (x, y)})


def test_finished_phase_is_skipped_on_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _data()
    cfg = _cfg(tmp_path, epochs=1)
    run = Run("toy", cfg)
    model = _model()
    run.fit(model, (x, y), (x, y), phase="frozen", batch_size=16)
    with pytest.raises(KeyboardInterrupt):
        run.fit(model, (x, y), (x, y), phase="finetune", epochs=2, batch_size=16, callbacks=[_StopAt(epoch=1)])
    run.close()
    weights_after_phase1 = keras.models.load_model(run.dir / "best_frozen.keras").get_weights()

    run = Run("toy", cfg)
    model = _model()
    recorder = _EpochRecorder()
    run.fit(model, (x, y), (x, y), phase="frozen", batch_size=16, callbacks=[recorder])
    assert recorder.epochs == [], "a finished phase must not train again"
    assert len(weights_after_phase1) == len(model.get_weights())
    run.fit(model, (x, y), (x, y), phase="finetune", epochs=2, batch_size=16, callbacks=[recorder])
    assert recorder.epochs == [1]


def test_finished_run_dir_is_not_overwritten(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _data()
    cfg = _cfg(tmp_path, epochs=1)
    run = Run("toy", cfg)
    model = _model()
    run.fit(model, (x, y), (x, y), batch_size=16)
    run.finish(model, {"val": (x, y)})
    with pytest.raises(FileExistsError, match="--run-dir"):
        Run("toy", cfg)


def test_default_run_dir_resumes_unfinished_run_with_same_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(epochs=2, quiet=True)
    first = Run("toy", cfg)
    first.close()
    assert first.dir.parent == Path("runs") / "toy"
    assert resolve_run_dir("toy", cfg) == first.dir
    assert resolve_run_dir("toy", dataclasses.replace(cfg, epochs=5)) != first.dir


def test_monitor_missing_metric_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _data()
    run = Run("toy", _cfg(tmp_path, epochs=1))
    with pytest.raises(KeyError, match="val_auc"):
        run.fit(_model(), (x, y), (x, y), monitor="val_auc", batch_size=16)
    run.close()



class _NoDeterministicKernel(keras.callbacks.Callback):
    """Raises what TensorFlow raises under op determinism for an op with no deterministic kernel on the device."""

    def on_train_batch_end(self, batch, logs=None):
        import tensorflow as tf

        raise tf.errors.UnimplementedError(
            None, None, "A deterministic GPU implementation of DepthwiseConvBackpropFilter is not currently available.")


@pytest.mark.parametrize("deterministic", [True, False])
def test_deterministic_without_a_deterministic_kernel_is_one_line(tmp_path, monkeypatch, deterministic):
    import tensorflow as tf

    from hybridvision.common.cli import UserError

    monkeypatch.chdir(tmp_path)
    # Op determinism, once on, stays on for the process: the switch itself is not turned here.
    turned_on = []
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: turned_on.append(True))
    x, y = _data()
    run = Run("toy", _cfg(tmp_path, epochs=1, deterministic=deterministic))
    assert turned_on == ([True] if deterministic else [])
    expected = (UserError, "--deterministic: .*DepthwiseConvBackpropFilter.*run without --deterministic") \
        if deterministic else (tf.errors.UnimplementedError, "DepthwiseConvBackpropFilter")  # passed on unchanged
    with pytest.raises(expected[0], match=expected[1]):
        run.fit(_model(), (x, y), (x, y), monitor="val_accuracy", batch_size=16, callbacks=[_NoDeterministicKernel()])
    run.close()


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import keras, numpy as np
    sys.path.insert(0, {root!r})
    from hybridvision.common.config import TrainConfig
    from hybridvision.common.run import Run

    kill_epoch = int(sys.argv[1])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32"); y = (x[:, 0] > 0).astype("float32")
    inputs = keras.Input((4,)); outputs = keras.layers.Dense(1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            print("EPOCH", epoch, flush=True)
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == kill_epoch and batch == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    run = Run("toy", TrainConfig(run_dir="run", epochs=4, quiet=True))
    run.fit(model, (x, y), (x, y), batch_size=8, callbacks=[Kill()])
    run.finish(model, {{"val": (x, y)}})
    print("FINISHED", flush=True)
    """
)


@pytest.mark.slow
def test_kill_minus_9_mid_epoch_then_same_command_resumes(tmp_path):
    root = str(Path(__file__).resolve().parents[3])
    script = tmp_path / "train.py"
    script.write_text(_KILL_SCRIPT.format(root=root))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.run([sys.executable, str(script), "2"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    assert "EPOCH 2" in first.stdout and "FINISHED" not in first.stdout
    second = subprocess.run([sys.executable, str(script), "-1"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    epochs = [int(line.split()[1]) for line in second.stdout.splitlines() if line.startswith("EPOCH")]
    assert epochs == [2, 3], f"expected to resume at epoch index 2, saw {epochs}"
    history = read_history(tmp_path / "run" / "history.csv")
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["val"]["accuracy"] >= 0
    keras.models.load_model(tmp_path / "run" / "model.keras")


def _fit_then_move_weights(tmp_path, name):
    """A finished fit whose model then moves away from its best checkpoint (weights scaled by 3)."""
    x, y = _data()
    run = Run("toy", _cfg(tmp_path / name, epochs=2), export_name=name)
    model = _model()
    run.fit(model, (x, y), (x, y), monitor="val_accuracy", batch_size=16)
    model.set_weights([3.0 * w for w in model.get_weights()])
    best = keras.models.load_model(run.best_path()).predict(x, verbose=0)
    last = model.predict(x, verbose=0)
    assert not np.allclose(best, last)
    return run, model, x, y, best, last


@pytest.mark.parametrize("final", ["best", "last"])
def test_finish_final_model_is_the_best_checkpoint_or_the_last_weights(tmp_path, monkeypatch, final):
    monkeypatch.chdir(tmp_path)
    run, model, x, y, best, last = _fit_then_move_weights(tmp_path, final)
    expected = best if final == "best" else last
    evaluated = []
    real_evaluate = Run.evaluate
    monkeypatch.setattr(Run, "evaluate", lambda self, m, d: evaluated.append(m) or real_evaluate(self, m, d))
    chosen, metrics = run.finish(model, {"val": (x, y)}, final=final)
    assert evaluated == [chosen], "the final model is evaluated once"
    assert (chosen is model) == (final == "last")
    np.testing.assert_allclose(chosen.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    for path in (run.dir / "model.keras", tmp_path / "saved_models" / "toy" / f"{final}.keras"):
        np.testing.assert_allclose(keras.models.load_model(path).predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    accuracy = float(np.mean((expected[:, 0] > 0.5) == y))
    assert metrics["val"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_finish_without_a_checkpoint_keeps_the_given_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _data()
    run = Run("toy", _cfg(tmp_path, epochs=1))
    model = _model()
    with pytest.raises(ValueError, match="final='first'.*best, last"):
        run.final_model(model, final="first")
    chosen, _ = run.finish(model, {"val": (x, y)}, final="best")  # nothing trained: no best.keras
    assert chosen is model


def test_finish_report_hook_adds_results_and_sidecars_travel_with_the_export(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run, model, x, y, best, _ = _fit_then_move_weights(tmp_path, "hook")
    calls = []

    def report(final_model, run_dir, results):
        calls.append(results)
        assert (run_dir / "model.keras").is_file()  # written before the hook runs
        np.testing.assert_allclose(final_model.predict(x, verbose=0), best, rtol=1e-5, atol=1e-6)
        (run_dir / "model.classes.json").write_text('{"class_names": ["no", "yes"]}')
        return {"val": {"positives": int((best[:, 0] > 0.5).sum())}, "extra": {"a": 1}}

    _, metrics = run.finish(model, {"val": (x, y)}, report=report, metrics={"val": {"given": 2.0}, "seconds": 3.0})
    assert len(calls) == 1 and set(calls[0]["val"]) >= {"loss", "accuracy"}
    saved = json.loads((run.dir / "metrics.json").read_text())
    assert saved["val"]["positives"] == int((best[:, 0] > 0.5).sum()) and saved["val"]["given"] == 2.0
    assert "accuracy" in saved["val"] and saved["extra"] == {"a": 1} and saved["seconds"] == 3.0
    assert saved == json.loads(json.dumps(metrics))
    export = tmp_path / "saved_models" / "toy" / "hook.keras"
    assert json.loads(export.with_suffix(".classes.json").read_text()) == {"class_names": ["no", "yes"]}
    assert sorted(p.name for p in export.parent.iterdir()) == [
        "hook.classes.json", "hook.keras", "latest.classes.json", "latest.keras"]


def _train_and_finish(tmp_path, name, **cfg):
    x, y = _data()
    run = Run("toy", _cfg(tmp_path, run_dir=str(tmp_path / "runs" / name), epochs=1, **cfg))
    model = _model()
    run.fit(model, (x, y), (x, y), batch_size=16)
    _, metrics = run.finish(model, {"val": (x, y)}, card={"class_names": ["yes"]})
    return run, metrics


def test_exports_are_named_by_run_with_a_card_and_latest_is_a_copy_of_the_newest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exports = tmp_path / "saved_models" / "toy"
    first, _ = _train_and_finish(tmp_path, "first")
    assert first.export_name == "first"
    assert (exports / "latest.keras").read_bytes() == (exports / "first.keras").read_bytes()
    second, metrics = _train_and_finish(tmp_path, "second")
    assert metrics["notes"]["exported_model"] == str(Path("saved_models/toy/second.keras"))
    assert sorted(p.name for p in exports.iterdir()) == ["first.keras", "latest.keras", "second.keras"]
    assert (exports / "latest.keras").read_bytes() == (exports / "second.keras").read_bytes()
    from hybridvision.common.model_card import read_card

    card = read_card(keras.saving.load_model(exports / "second.keras"))
    assert card["app"] == "toy" and card["run"] == "second" and card["class_names"] == ["yes"]
    assert card["training"]["data_dir"] == "toy-data" and card["training"]["epochs_trained"] == 1
    assert card["training"]["settings"]["epochs"] == 1
    assert card["training"]["metrics"]["val"]["accuracy"] == pytest.approx(metrics["val"]["accuracy"])
    # An export replaced by a run of the same name says so.
    import shutil

    shutil.rmtree(tmp_path / "runs" / "second")
    again, _ = _train_and_finish(tmp_path, "second")
    log = (again.dir / "run.log").read_text()
    assert "WARNING replacing saved_models/toy/second.keras: an earlier export had the same name" in log
    assert "saved_models/toy/latest.keras now is a copy of saved_models/toy/second.keras" in log


def test_a_demo_data_run_exports_under_demo_and_leaves_real_exports_untouched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = tmp_path / "saved_models" / "toy"
    real.mkdir(parents=True)
    (real / "latest.keras").write_bytes(b"a real model")
    (real / "mine.keras").write_bytes(b"another real model")
    _, metrics = _train_and_finish(tmp_path, "demo_run", data_dir=None)
    assert (real / "latest.keras").read_bytes() == b"a real model"
    assert sorted(p.name for p in real.iterdir()) == ["latest.keras", "mine.keras"]
    demo = tmp_path / "saved_models" / "demo" / "toy"
    assert metrics["notes"]["exported_model"] == str(Path("saved_models/demo/toy/demo_run.keras"))
    assert sorted(p.name for p in demo.iterdir()) == ["demo_run.keras", "latest.keras"]
    from hybridvision.common.model_card import read_card

    assert "SYNTHETIC" in read_card(demo / "demo_run.keras")["training"]["data"]
