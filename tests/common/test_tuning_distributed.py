"""Distributed KerasTuner: a chief and two workers on localhost (hybridvision.common.tuning_launch)."""

import json
import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hybridvision.common import tuning
from hybridvision.common.tuning_launch import (
    ENV_ORACLE_IP,
    ENV_ORACLE_PORT,
    ENV_TUNER_ID,
    Launcher,
    role,
)

ROOT = Path(__file__).resolve().parents[2]

# The search script every process runs. Each trial appends "start" and "end"
# lines keyed by its learning rate (RandomSearch never repeats values), so the
# test can count how often each trial ran and find a worker to kill mid-trial.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import numpy as np, keras, tensorflow as tf
    from hybridvision.common.config import TrainConfig
    from hybridvision.common.tuning import ConfigHyperModel, search, trials_table
    from hybridvision.common.tuning_launch import role

    # Once the last trial is handed out, KerasTuner's chief looks every 20 s
    # whether all trials ended (keras_tuner/src/distribute/oracle_chief.py);
    # these trials take seconds, so it looks every 0.5 s here.
    from types import SimpleNamespace
    from keras_tuner.src.distribute import oracle_chief
    oracle_chief.time = SimpleNamespace(sleep=lambda seconds: time.sleep(min(seconds, 0.5)))

    out = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")

    def build(cfg):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.SGD(cfg.learning_rate), loss="binary_crossentropy")
        return model

    def data(cfg):
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
        return ds, ds

    def mark(*words):
        with open(out / "marks.txt", "a") as f:
            f.write(" ".join(str(w) for w in words) + "\\n")

    class Marked(ConfigHyperModel):
        def fit(self, hp, model, *args, **kwargs):
            key = hp.values["learning_rate"]
            mark("start", key, role(), os.getpid())
            time.sleep(float(os.environ.get("TRIAL_SLEEP", "0")))
            history = super().fit(hp, model, *args, **kwargs)
            mark("end", key, role(), os.getpid())
            return history

    cfg = TrainConfig(epochs=1, quiet=True)
    hypermodel = Marked(cfg, {"learning_rate": [0.3, 0.1, 0.03, 0.01, 0.003]}, build, data)
    best, tuner = search(hypermodel, "random", "val_loss", out / "search", "toy", max_trials=4,
                         best_config_path=out / "best.yaml")
    if best is not None:
        rows = trials_table(tuner)
        best_trial = tuner.oracle.get_best_trials(1)[0]
        (out / "result.json").write_text(json.dumps({
            "role": role(), "rows": rows, "best_trial": best_trial.trial_id,
            "best_learning_rate": best.learning_rate}))
    """
)


def _marks(out):
    path = out / "marks.txt"
    lines = path.read_text().split("\n") if path.exists() else []
    return [line.split() for line in lines if line]


def test_role_reads_the_three_variables(monkeypatch):
    for name in (ENV_TUNER_ID, ENV_ORACLE_IP, ENV_ORACLE_PORT):
        monkeypatch.delenv(name, raising=False)
    assert role() is None
    monkeypatch.setenv(ENV_ORACLE_IP, "127.0.0.1")
    with pytest.raises(ValueError, match="KERASTUNER_ORACLE_PORT, KERASTUNER_TUNER_ID"):
        role()
    monkeypatch.setenv(ENV_ORACLE_PORT, "8000")
    monkeypatch.setenv(ENV_TUNER_ID, "tuner1")
    assert role() == "tuner1"


def test_launch_cli_errors_clearly(capsys):
    assert tuning.main([]) == 2
    assert "launch --workers N" in capsys.readouterr().err
    with pytest.raises(ValueError, match="search command after `--`"):
        tuning.main(["launch", "--workers", "2"])
    with pytest.raises(ValueError, match="at least one worker"):
        tuning.main(["launch", "--workers", "0", "--", "true"])


@pytest.mark.slow
def test_chief_and_two_workers_survive_a_killed_worker(tmp_path, monkeypatch):
    (tmp_path / "search_script.py").write_text(SCRIPT)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("TRIAL_SLEEP", "2")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    launcher = Launcher([sys.executable, str(tmp_path / "search_script.py"), str(tmp_path)], workers=2,
                        log_dir=tmp_path / "logs", max_restarts=2)
    result = {}
    thread = threading.Thread(target=lambda: result.update(code=launcher.run(timeout_s=240)), daemon=True)
    thread.start()

    # Kill tuner0 with SIGKILL in the middle of its first trial.
    killed = None
    deadline = time.monotonic() + 180
    while killed is None and time.monotonic() < deadline:
        for words in _marks(tmp_path):
            if words[0] == "start" and words[2] == "tuner0":
                killed = words
                os.kill(int(words[3]), signal.SIGKILL)
                break
        time.sleep(0.1)
    assert killed is not None, "tuner0 never started a trial; logs: " + str(sorted((tmp_path / "logs").iterdir()))
    thread.join(timeout=240)
    logs = {p.name: p.read_text()[-1500:] for p in (tmp_path / "logs").iterdir()}
    assert result.get("code") == 0, logs
    assert launcher.restarts == {"tuner0": 1}

    marks = _marks(tmp_path)
    ends = [w[1] for w in marks if w[0] == "end"]
    starts = [w[1] for w in marks if w[0] == "start"]
    # Every trial finished exactly once; the killed one was started again by
    # the restarted tuner0 (same tuner ID -> the oracle hands back its trial).
    assert len(ends) == 4 and len(set(ends)) == 4, marks
    assert starts.count(killed[1]) == 2 and ends.count(killed[1]) == 1, marks
    assert next(w for w in marks if w[0] == "end" and w[1] == killed[1])[2] == "tuner0"
    assert {w[2] for w in marks if w[0] == "end"} == {"tuner0", "tuner1"}

    report = json.loads((tmp_path / "result.json").read_text())
    assert report["role"] == "chief"
    assert len(report["rows"]) == 4 and len({r["trial_id"] for r in report["rows"]}) == 4
    assert all(r["status"] == "COMPLETED" for r in report["rows"]), report["rows"]
    best = min(report["rows"], key=lambda r: r["score"])
    assert report["best_trial"] == best["trial_id"]
    assert report["best_learning_rate"] == pytest.approx(best["learning_rate"])
    assert (tmp_path / "best.yaml").exists() and (tmp_path / "search" / "toy" / "trials.csv").exists()
