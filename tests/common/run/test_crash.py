"""Crash safety of the harness: a kill at each commit point of an epoch, damaged folders, concurrent runs.

In-process tests stop the run at a commit point by raising where the harness
would SIGKILL itself (`hybridvision.common.run.commit_points._die`); the files on disk are then
exactly those a kill -9 leaves (every write is a rename of a flushed file).
The slow tests kill real processes with SIGKILL through `HYBRIDVISION_KILL_AT`.
"""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from hybridvision.common.cli import UserError, main_entry
from hybridvision.common.config import TrainConfig
from hybridvision.common.history import read_history
from hybridvision.common.run import COMMIT_POINTS, KILL_ENV, Run, commit_points, refuse_unexported, resolve_run_dir
from hybridvision.common.run.rundir import MARKER

ROOT = Path(__file__).resolve().parents[3]
EPOCHS = 3


class _Killed(BaseException):
    """Stands in for SIGKILL: nothing after the commit point runs, not even `except Exception`."""


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("float32")
    return x, y


def _model():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(4, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"],
                  run_eagerly=True)  # no graph tracing: faster for a model this small
    return model


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def _cfg(path, **kw):
    # A data_dir: these stand for runs on real data, which export to saved_models/<app>/.
    return TrainConfig(**{"run_dir": str(path), "data_dir": "toy-data", "epochs": EPOCHS, "batch_size": 16, "quiet": True,
                          **kw})


def _fit(run, seen=None, **kw):
    """Fit the toy model; returns (and appends to `seen`) the 0-based epochs it began."""
    x, y = _data()
    recorder = _Epochs()
    if seen is not None:
        recorder.seen = seen
    run.fit(_model(), (x, y), (x, y), monitor="val_loss", batch_size=16, callbacks=[recorder], **kw)
    return recorder.seen


def _kill_at(monkeypatch, point, epoch):
    monkeypatch.setenv(KILL_ENV, f"{point}@{epoch}")

    def die(name):
        raise _Killed(name)

    monkeypatch.setattr(commit_points, "_die", die)


def _assert_consistent(run_dir: Path, epochs=EPOCHS):
    """The finished directory: every epoch's row once, integer epochs, best.keras = best.json = history's best."""
    history = read_history(run_dir / "history.csv")
    assert [r["epoch"] for r in history] == list(range(epochs))
    assert [line.split(",")[0] for line in (run_dir / "history.csv").read_text().splitlines()[1:]] == [
        str(e) for e in range(epochs)
    ], "the epoch column must stay integer"
    record = json.loads((run_dir / "best.json").read_text())
    best_row = min(history, key=lambda r: r["val_loss"])
    assert record["epoch"] == best_row["epoch"] and record["score"] == pytest.approx(best_row["val_loss"], rel=1e-6)
    x, y = _data()
    loss = keras.models.load_model(run_dir / "best.keras").evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(record["score"], rel=1e-4), "best.keras must be the model best.json describes"
    leftovers = [p.name for p in run_dir.rglob("*") if ".tmp" in p.name]
    assert leftovers == [], leftovers
    assert (run_dir / "metrics.json").is_file() and not (run_dir / "backup").exists()


def test_a_kill_at_every_commit_point_in_turn_then_the_run_finishes_whole(tmp_path, monkeypatch):
    """One run killed once per commit point (point i in epoch i), resumed after each kill."""
    monkeypatch.chdir(tmp_path)
    run_dir, epochs = tmp_path / "run", len(COMMIT_POINTS) + 1
    trained = []
    for epoch, point in enumerate(COMMIT_POINTS):
        _kill_at(monkeypatch, point, epoch)
        run = Run("toy", _cfg(run_dir, epochs=epochs))
        with pytest.raises(_Killed):
            _fit(run, trained)
        run.close()
    monkeypatch.delenv(KILL_ENV)
    run = Run("toy", _cfg(run_dir, epochs=epochs))
    _fit(run, trained)
    run.finish(_model(), {"val": _data()})
    _assert_consistent(run_dir, epochs)
    assert trained[-1] == epochs - 1 and sorted(set(trained)) == list(range(epochs))
    # Every invocation after the first kill (epoch 0, nothing committed yet) says that it resumed.
    assert (run_dir / "run.log").read_text().count(f"resuming {run_dir} from epoch") == len(COMMIT_POINTS) - 1


@pytest.mark.slow
@pytest.mark.parametrize("point", COMMIT_POINTS)
def test_kill_at_each_commit_point_resumes_to_a_consistent_run(point, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    kill_epoch = 1
    _kill_at(monkeypatch, point, kill_epoch)
    run = Run("toy", _cfg(run_dir))
    with pytest.raises(_Killed):
        _fit(run)
    run.close()  # the kernel releases a killed process's lock
    monkeypatch.delenv(KILL_ENV)

    run = Run("toy", _cfg(run_dir))
    seen = _fit(run)
    # The killed epoch runs again unless all of its results were durable (then only the counter was missing).
    assert seen in ([kill_epoch, 2], [2]), seen
    run.finish(_model(), {"val": _data()})
    _assert_consistent(run_dir)
    log_text = (run_dir / "run.log").read_text()
    assert f"resuming {run_dir} from epoch {seen[0] + 1} of {EPOCHS}" in log_text


def test_kill_in_the_first_epoch_and_mid_checkpoint_leftovers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    _kill_at(monkeypatch, "mid_checkpoint", 0)
    run = Run("toy", _cfg(run_dir))
    with pytest.raises(_Killed):
        _fit(run)
    run.close()
    assert (run_dir / "best.tmp.keras").exists() and not (run_dir / "best.keras").exists()
    monkeypatch.delenv(KILL_ENV)
    run = Run("toy", _cfg(run_dir))
    assert _fit(run) == [0, 1, 2]
    run.finish(_model(), {"val": _data()})
    _assert_consistent(run_dir)
    assert "removed best.tmp.keras" in (run_dir / "run.log").read_text()


def _interrupted(tmp_path, monkeypatch, point="counter", epoch=1):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    _kill_at(monkeypatch, point, epoch)
    run = Run("toy", _cfg(run_dir))
    with pytest.raises(_Killed):
        _fit(run)
    run.close()
    monkeypatch.delenv(KILL_ENV)
    return run_dir


def test_missing_history_row_is_refused_with_one_line(tmp_path, monkeypatch):
    run_dir = _interrupted(tmp_path, monkeypatch)
    lines = (run_dir / "history.csv").read_text().splitlines()
    (run_dir / "history.csv").write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # drop epoch 0's row
    run = Run("toy", _cfg(run_dir))
    with pytest.raises(UserError, match=r"is damaged: 2 epoch\(s\) finished but history.csv lacks the row\(s\) of "
                                        r"epoch\(s\) 1; delete the folder or pass a new --run-dir") as info:
        _fit(run)
    run.close()
    assert "\n" not in str(info.value)


def test_missing_backup_weights_and_missing_best_are_refused(tmp_path, monkeypatch):
    run_dir = _interrupted(tmp_path, monkeypatch)
    state = json.loads((run_dir / "backup" / "state.json").read_text())
    (run_dir / "best.keras").rename(tmp_path / "best.keras")
    run = Run("toy", _cfg(run_dir))
    with pytest.raises(UserError, match="best.json is there but best.keras is missing"):
        _fit(run)
    (tmp_path / "best.keras").rename(run_dir / "best.keras")
    (run_dir / "backup" / state["weights"]).unlink()
    with pytest.raises(UserError, match=r"backup/epoch-2.weights.h5 \(the state after epoch 2\) is missing"):
        _fit(run)
    run.close()


def test_unreadable_history_is_refused(tmp_path, monkeypatch):
    run_dir = _interrupted(tmp_path, monkeypatch)
    (run_dir / "history.csv").write_text("epoch,loss\nzero,abc\n")
    run = Run("toy", _cfg(run_dir))
    with pytest.raises(UserError, match="history.csv is not a history this harness wrote"):
        _fit(run)
    run.close()


def _damage(path: Path):
    """A file cut short by a full disk or a bad copy: its first half (a CSV: its last row's first cells)."""
    data = path.read_bytes()
    if path.suffix == ".csv":
        path.write_bytes(data[: data.rstrip(b"\n").rindex(b"\n") + 12])
    else:
        path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name", ["best.keras", "best.json", "history.csv", "backup"])
def test_a_damaged_file_is_refused_on_resume_naming_it_and_the_fix(name, tmp_path, monkeypatch):
    run_dir = _interrupted(tmp_path, monkeypatch)
    damaged = run_dir / name
    if name == "backup":
        damaged = run_dir / "backup" / json.loads((run_dir / "backup" / "state.json").read_text())["weights"]
    _damage(damaged)
    run = Run("toy", _cfg(run_dir))
    with pytest.raises(UserError) as info:
        _fit(run)
        run.finish(_model(), {"val": _data()})
    run.close()
    message = str(info.value)
    assert str(damaged) in message and "\n" not in message, message
    assert message.endswith("delete the run directory or pass a new --run-dir"), message
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.parametrize("name", ["best.keras", "last.weights.h5"])
def test_a_damaged_file_of_a_finished_phase_is_refused_naming_it(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    run = Run("toy", _cfg(run_dir))
    _fit(run)
    run.close()  # killed before finish: the phase is done, metrics.json not written
    _damage(run_dir / name)
    run = Run("toy", _cfg(run_dir))
    with pytest.raises(UserError) as info:
        _fit(run)
        run.finish(_model(), {"val": _data()})
    run.close()
    message = str(info.value)
    assert str(run_dir / name) in message and "\n" not in message, message
    assert message.endswith("delete the run directory or pass a new --run-dir"), message


def test_run_dir_of_the_earlier_harness_is_repaired(tmp_path, monkeypatch):
    """Old layout: backup/latest.weights.h5 + training_metadata.json, best.keras without best.json, float epochs."""
    run_dir = _interrupted(tmp_path, monkeypatch)
    backup = run_dir / "backup"
    state = json.loads((backup / "state.json").read_text())
    (backup / state["weights"]).rename(backup / "latest.weights.h5")
    (backup / "state.json").unlink()
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    (run_dir / "best.json").unlink()
    text = (run_dir / "history.csv").read_text().replace("\n0,", "\n0.0,")
    (run_dir / "history.csv").write_text(text)
    (run_dir / MARKER).unlink()  # the earlier version marked no run directory
    run = Run("toy", _cfg(run_dir))
    assert _fit(run) == [2]
    run.finish(_model(), {"val": _data()})
    assert (run_dir / MARKER).exists()
    history = read_history(run_dir / "history.csv")
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert json.loads((run_dir / "best.json").read_text())["epoch"] in (0, 1, 2)


def test_second_run_on_a_locked_dir_is_refused_naming_the_pid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = Run("toy", _cfg(tmp_path / "run"))
    with pytest.raises(UserError, match=rf"run directory {tmp_path / 'run'} is in use by another training "
                                        rf"\(pid {os.getpid()}\); wait for it to finish or pass another --run-dir"):
        Run("toy", _cfg(tmp_path / "run"))
    first.close()
    Run("toy", _cfg(tmp_path / "run")).close()  # free again


def test_automatic_resume_skips_a_dir_in_use(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(epochs=2, quiet=True)
    first = Run("toy", cfg)
    assert resolve_run_dir("toy", cfg) != first.dir
    second = Run("toy", cfg)
    assert second.dir != first.dir and second.dir.parent == first.dir.parent
    second.close()
    first.close()
    assert resolve_run_dir("toy", cfg) in (first.dir, second.dir)


def test_other_settings_on_an_unfinished_dir_are_refused(tmp_path, monkeypatch):
    run_dir = _interrupted(tmp_path, monkeypatch)
    with pytest.raises(UserError, match=r"holds an unfinished run with other settings \(epochs: 3 there, 5 now\)"):
        Run("toy", _cfg(run_dir, epochs=5))


def _exported(tmp_path, monkeypatch, name="same"):
    """A model that learned, exported as saved_models/toy/<name>.keras (and latest.keras, a sidecar each)."""
    monkeypatch.chdir(tmp_path)
    x, y = _data()
    run = Run("toy", _cfg(tmp_path / "good", epochs=1), export_name=name)
    model = _model()
    run.fit(model, (x, y), (x, y), batch_size=16)
    (run.dir / "model.classes.json").write_text('["no", "yes"]')
    run.finish(model, {"val": (x, y)})
    folder = tmp_path / "saved_models" / "toy"
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _unchanged(tmp_path, before):
    folder = tmp_path / "saved_models" / "toy"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, "an export was replaced or added"


def test_zero_epoch_or_diverged_runs_do_not_replace_an_export(tmp_path, monkeypatch):
    before = _exported(tmp_path, monkeypatch)
    x, y = _data()
    run = Run("toy", _cfg(tmp_path / "b", epochs=1), export_name="same")  # trains nothing
    _, metrics = run.finish(_model(), {"val": (x, y)})
    assert metrics["notes"]["exported_model"] is None and "0 epochs" in metrics["notes"]["not_exported"]
    with pytest.raises(UserError, match=r"^not exported to saved_models/toy/same.keras: the run trained 0 epochs; "
                                        rf"nothing there was replaced, the run is kept in {tmp_path / 'b'}$"):
        refuse_unexported(metrics)
    run = Run("toy", _cfg(tmp_path / "c", epochs=1), export_name="same")
    model = _model()
    run.fit(model, (x, y), (x, y), batch_size=16)
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    _, metrics = run.finish(model, {"val": (x, y)}, final="last")
    assert "not finite" in metrics["notes"]["not_exported"]
    _unchanged(tmp_path, before)


def _regression(learning_rate):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse", run_eagerly=True)
    return model


def test_a_run_whose_loss_exploded_replaces_no_export_and_exits_2_in_one_line(tmp_path, monkeypatch, capsys):
    """Too high a learning rate: the loss grows 10^7-fold in 3 epochs, the weights stay finite and the best
    checkpoint (epoch 1) is what would be exported."""
    before = _exported(tmp_path, monkeypatch)
    x, _ = _data()
    y = x.sum(axis=1, keepdims=True)

    def main(_argv):  # a train command
        # --export-anyway overrides only the floor: a diverged model is never exported.
        run = Run("toy", _cfg(tmp_path / "diverged", export_anyway=True), export_name="same")
        model = _regression(2.0)
        run.fit(model, (x, y), (x, y), batch_size=16)
        return refuse_unexported(run.finish(model, {"val": (x, y)})[1])

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main_entry(main, [])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert info.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("error: not exported to saved_models/toy/same.keras: the training diverged: its loss at "
                             "epoch "), err
    _unchanged(tmp_path, before)
    notes = json.loads((tmp_path / "diverged" / "metrics.json").read_text())["notes"]
    assert notes["exported_model"] is None and notes["not_exported"].startswith("the training diverged")
    assert (tmp_path / "diverged" / "model.keras").is_file(), "the run directory is kept"


def test_a_model_no_better_than_its_floor_or_chance_is_not_exported(tmp_path, monkeypatch):
    before = _exported(tmp_path, monkeypatch)
    x, y = _data()
    run = Run("toy", _cfg(tmp_path / "floor", epochs=1), export_name="same")
    model = _model()
    run.fit(model, (x, y), (x, y), monitor="val_accuracy", batch_size=16)
    _, metrics = run.finish(model, {"val": (x, y)}, floor={"val": {"accuracy": 0.9999}})
    assert re.match(r"its val accuracy 0\.\d+ is no better than the run's floor, 0\.9999: it learned nothing "
                    r"\(--export-anyway exports it all the same\)$", metrics["notes"]["not_exported"])
    # Without a floor an accuracy must beat 1 / the number of classes: a model answering one class of two
    # balanced ones (its weights all zero) does not.
    y2 = np.arange(len(x)) % 2

    def chance(run_dir, **kw):
        run = Run("toy", _cfg(run_dir, epochs=1, **kw), export_name="same")
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros")(inputs))
        model.compile(optimizer=keras.optimizers.SGD(1e-9), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], run_eagerly=True)
        run.fit(model, (x, y2), (x, y2), monitor="val_accuracy", batch_size=16)
        return run.finish(model, {"val": (x, y2)}, card={"class_names": ["even", "odd"]})[1]["notes"]

    notes = chance(tmp_path / "chance")
    assert notes["not_exported"].startswith("its val accuracy 0.5000 is no better than chance (1/2 classes), 0.5000")
    _unchanged(tmp_path, before)
    notes = chance(tmp_path / "anyway", export_anyway=True)  # a smoke test on tiny data: exported, said so
    assert notes["exported_model"] and "no better than chance" in notes["exported_anyway"]


def test_export_false_keeps_the_model_in_the_run_dir_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = _data()
    run = Run("toy", _cfg(tmp_path / "a", epochs=1), export=False)
    model = _model()
    run.fit(model, (x, y), (x, y), batch_size=16)
    _, metrics = run.finish(model, {"val": (x, y)})
    assert (tmp_path / "a" / "model.keras").exists() and not (tmp_path / "saved_models").exists()
    assert metrics["notes"]["exported_model"] is None and "export=False" in metrics["notes"]["not_exported"]


def test_disk_full_and_read_only_dir_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real_usage(p)._replace(free=1000))
    run = Run("toy", _cfg(tmp_path / "run"))
    with pytest.raises(UserError, match=r"not enough disk space in .*backup for the epoch's backup: about "
                                        r"[0-9.]+ MB needed, 0.0 MB free"):
        _fit(run)
    run.close()
    assert not list((tmp_path / "run").rglob("*.tmp*"))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Path, "write_bytes", read_only)
    with pytest.raises(UserError, match=r"run directory .*ro is not writable \(Read-only file system\); pass a "
                                        r"writable --run-dir"):
        Run("toy", _cfg(tmp_path / "ro"))


def _no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _tensorboard_no_space(*_args, **_kwargs):
    # What TensorFlow raises when its summary writer meets a full disk: the op's text, many lines.
    raise RuntimeError("{{function_node __wrapped__FlushSummaryWriter_device_/job:localhost/replica:0/task:0/device:"
                       "CPU:0}} run/tensorboard/main/events.out.tfevents.1; No space left on device\n\t [[{{node "
                       "FlushSummaryWriter}}]] [Op:FlushSummaryWriter]")


@pytest.mark.parametrize("where", ["tensorboard", "backup", "export"])
def test_a_full_disk_during_fit_commit_or_export_is_named_in_one_line(where, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    if where == "tensorboard":
        monkeypatch.setattr(keras.callbacks.TensorBoard, "on_epoch_end", _tensorboard_no_space)
        folder = run_dir
    elif where == "backup":
        monkeypatch.setattr(keras.Model, "save_weights", _no_space)
        folder = run_dir / "backup"
    else:
        save = keras.Model.save
        monkeypatch.setattr(keras.Model, "save", lambda m, path, *a, **k: _no_space() if "saved_models" in str(path)
                            else save(m, path, *a, **k))
        folder = Path("saved_models") / "toy"

    def main(_argv):
        run = Run("toy", _cfg(run_dir, epochs=1))
        model = _model()
        run.fit(model, _data(), _data(), batch_size=16)
        run.finish(model, {"val": _data()})

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main_entry(main, [])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert info.value.code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: not enough disk space in {folder} for "), err
    assert re.search(r"about [0-9.]+ MB needed, [0-9.]+ MB free; free some space", err[0]), err
    assert "Op:" not in err[0] and not list(run_dir.rglob("*.tmp*"))


_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    import keras, numpy as np
    from hybridvision.common.cli import main_entry
    from hybridvision.common.config import TrainConfig
    from hybridvision.common.run import Run

    def main(argv):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(48, 4)).astype("float32"); y = (x[:, 0] > 0).astype("float32")
        inputs = keras.Input((4,)); outputs = keras.layers.Dense(1, activation="sigmoid")(inputs)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
        run = Run("toy", TrainConfig(run_dir="run", epochs=3, batch_size=16, quiet=True))
        if argv and argv[0] == "hold":
            print("HOLDING", flush=True)
            time.sleep(60)
        run.fit(model, (x, y), (x, y), batch_size=16)
        run.finish(model, {{"val": (x, y)}})
        print("FINISHED", flush=True)

    main_entry(main, sys.argv[1:])
    """
)


def _script(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(_SCRIPT.format(root=str(ROOT)))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("point", ["mid_checkpoint", "best_keras", "counter"])
def test_sigkill_at_commit_points_then_the_same_command_finishes(point, tmp_path):
    script = _script(tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", KILL_ENV: f"{point}@1"}
    first = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    env.pop(KILL_ENV)
    second = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "FINISHED" in second.stdout
    assert "resuming run from epoch" in second.stderr, "--quiet still says that the run resumed"
    history = read_history(tmp_path / "run" / "history.csv")
    assert [r["epoch"] for r in history] == [0, 1, 2]
    record = json.loads((tmp_path / "run" / "best.json").read_text())
    assert record["score"] == min(r["val_loss"] for r in history)
    assert not [p for p in (tmp_path / "run").rglob("*") if ".tmp" in p.name]


@pytest.mark.slow
def test_concurrent_process_on_the_same_run_dir_is_refused(tmp_path):
    script = _script(tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    holder = subprocess.Popen([sys.executable, str(script), "hold"], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        assert holder.stdout.readline().strip() == "HOLDING"
        second = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert second.returncode == 2
        assert second.stderr.strip().splitlines()[-1] == (
            f"error: run directory run is in use by another training (pid {holder.pid}); wait for it to finish or "
            "pass another --run-dir"
        )
        assert "Traceback" not in second.stderr
    finally:
        holder.kill()
        holder.wait()


def _final_weights(run_dir: Path) -> list:
    model = _model()
    model.load_weights(run_dir / "last.weights.h5")
    return model.get_weights()


@pytest.mark.parametrize("point", ["counter", pytest.param("history", marks=pytest.mark.slow)])
def test_kill_and_resume_with_cosine_schedule_and_ema_ends_with_the_weights_of_an_uninterrupted_run(
        point, tmp_path, monkeypatch):
    """The schedule's position (the optimizer's step counter) and the moving averages come back exactly."""
    recipe = {"lr_schedule": "cosine", "warmup_epochs": 1.0, "ema": True, "ema_momentum": 0.5}
    whole, resumed = _whole_and_resumed(tmp_path, monkeypatch, point, recipe, "val_loss")
    # Validation ran on the averaged weights and best.keras holds them: it scores best.json's val_loss.
    _assert_consistent(whole)
    _assert_consistent(resumed)
    # The checkpoint's optimizer is the app's Adam with the recipe set on it.
    optimizer = keras.models.load_model(whole / "best.keras").optimizer.get_config()
    assert optimizer["use_ema"] and optimizer["ema_momentum"] == 0.5
    assert optimizer["learning_rate"]["class_name"] == "CosineDecay"


@pytest.mark.slow
def test_kill_and_resume_with_plateau_and_early_stopping_ends_as_an_uninterrupted_run(tmp_path, monkeypatch):
    """The reduced learning rate (an optimizer variable) and the counters (replayed from history.csv)."""
    recipe = {"lr_schedule": "plateau", "early_stopping": 3, "epochs": 8, "weight_decay": 0.01, "clipnorm": 0.5}
    # Killed after epoch 4 of the toy run, mid-way through both counters: val_accuracy peaks at epoch 3, the
    # rate is cut x0.1 after epoch 5 and the phase stops after epoch 6.
    whole, resumed = _whole_and_resumed(tmp_path, monkeypatch, "counter", recipe, "val_accuracy", kill_epoch=3)
    assert len(read_history(whole / "history.csv")) == 6
    model = _model()
    model.optimizer.build(model.trainable_variables)
    model.load_weights(whole / "last.weights.h5")
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)


def _whole_and_resumed(tmp_path, monkeypatch, point, recipe, monitor, kill_epoch=1):
    monkeypatch.chdir(tmp_path)
    whole = tmp_path / "whole"
    run = Run("toy", _cfg(whole, **recipe))
    x, y = _data()
    run.fit(_model(), (x, y), (x, y), monitor=monitor, batch_size=16, shuffle=False)
    run.finish(_model(), {"val": _data()})

    resumed = tmp_path / "resumed"
    _kill_at(monkeypatch, point, kill_epoch)
    run = Run("toy", _cfg(resumed, **recipe))
    with pytest.raises(_Killed):
        run.fit(_model(), (x, y), (x, y), monitor=monitor, batch_size=16, shuffle=False)
    run.close()
    monkeypatch.delenv(KILL_ENV)
    run = Run("toy", _cfg(resumed, **recipe))
    run.fit(_model(), (x, y), (x, y), monitor=monitor, batch_size=16, shuffle=False)
    run.finish(_model(), {"val": _data()})

    assert read_history(resumed / "history.csv") == read_history(whole / "history.csv")
    for a, b in zip(_final_weights(resumed), _final_weights(whole), strict=True):
        np.testing.assert_array_equal(a, b)
    best = [keras.models.load_model(d / "best.keras").get_weights() for d in (resumed, whole)]
    for a, b in zip(*best, strict=True):
        np.testing.assert_array_equal(a, b)
    return whole, resumed
