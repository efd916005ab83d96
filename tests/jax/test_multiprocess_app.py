"""An app's own command line trains over two processes on localhost (keras.distribution on JAX).

Two processes of `hybridvision.apps.digit_pairs.train` (model cnn), one CPU device each,
process 0 with `--coordinator localhost:PORT --num-processes 2 --process-id 0`,
process 1 with the same settings in `KERAS_DISTRIBUTION_*` variables, are
stopped after epoch 1 and started again: the second launch resumes the run
process 0 started, both processes end with identical weights, and only
process 0 wrote the run directory and the export. The two run in folders of
their own: process 1's stays empty, and the private copy of the run
directory it works in (under its TMPDIR) is gone when it ends.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(tmp_path, app_argv, crash: bool, tag: str):
    port = _free_port()
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    procs = []
    for pid in (0, 1):
        cwd = tmp_path / f"process{pid}"
        cwd.mkdir(exist_ok=True)
        (tmp_path / f"tmp{pid}").mkdir(exist_ok=True)
        # Process 0 is told by flags, process 1 by Keras's environment variables (as a launcher sets them).
        flags = ["--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id", "0"] if pid == 0 else []
        launcher = {} if pid == 0 else {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port}",
                                        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1"}
        command = [sys.executable, "-m", "tests.jax.multiprocess_app_worker", str(tmp_path / f"{tag}{pid}.npz"),
                   *(["--crash-after-first-epoch"] if crash else []), "--", *app_argv, *flags]
        procs.append(subprocess.Popen(command, env={**env, **launcher, "TMPDIR": str(tmp_path / f"tmp{pid}")}, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = []
    for pid, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == (3 if crash else 0), f"process {pid} exited with {p.returncode}:\n{log[-4000:]}"
        data = np.load(tmp_path / f"{tag}{pid}.npz")
        results.append((json.loads(str(data["info"])), data, log))
    return results


@pytest.mark.slow
def test_two_processes_train_an_app_resume_and_end_with_identical_weights(tmp_path):
    from hybridvision.common.data.demo import generate

    mnist = generate("mnist", tmp_path / "mnist", scale="tiny")
    # 42 pairs: 34 train, 8 val, 42 test; global batch 8 (4 per device x 2 devices), so the last
    # train and test batches are short (2): each process takes 1 of them (hybridvision.common.distribute.even_shards).
    # (Two epochs on 42 pairs learn nothing: --export-anyway exports the model all the same.)
    app_argv = ["--data-dir", str(mnist), "--model", "cnn", "--export-anyway", "--pairs", "42", "--epochs", "2",
                "--batch-size", "4",
                "--warmup-epochs", "0", "--quiet"]
    # Process 0 chooses runs/digit_pairs/<timestamp> under its own folder; process 1 is told that one.
    first = _launch(tmp_path, app_argv, crash=True, tag="crash")
    (info0, _, _), (info1, _, _) = first
    assert info0["epochs"] == info1["epochs"] == [0]
    run_dir = Path(info0["run_dir"])
    assert run_dir.is_relative_to(tmp_path / "process0") and Path(info1["run_dir"]).name == run_dir.name
    assert (run_dir / "history.csv").exists() and not (run_dir / "metrics.json").exists()

    left_by_the_crash = set((tmp_path / "tmp1").iterdir())
    second = _launch(tmp_path, app_argv, crash=False, tag="final")
    (info0, w0, log0), (info1, w1, log1) = second
    assert info0["run_dir"] == str(run_dir), "the second launch did not resume the first run"
    assert Path(info1["run_dir"]).name == run_dir.name
    assert info0["epochs"] == info1["epochs"] == [1]
    assert "resuming" in log0 and "resuming" in log1
    n = len([k for k in w0.files if k.startswith("final_")])
    assert n > 0 and n == len([k for k in w1.files if k.startswith("final_")])
    for i in range(n):
        np.testing.assert_array_equal(w0[f"final_{i}"], w1[f"final_{i}"])
        np.testing.assert_array_equal(w0[f"start_{i}"], w1[f"start_{i}"])
    assert any(not np.array_equal(w0[f"final_{i}"], w0[f"start_{i}"]) for i in range(n)), "epoch 2 changed no weight"
    assert info0["test_accuracy"] == info1["test_accuracy"]

    # Process 0 wrote the run and the export; process 1 wrote nothing.
    assert (run_dir / "metrics.json").exists() and len((run_dir / "history.csv").read_text().splitlines()) == 3
    assert list((tmp_path / "process0" / "saved_models" / "digit_pairs").glob("*.keras"))
    assert list((tmp_path / "process1").iterdir()) == []
    assert set((tmp_path / "tmp1").iterdir()) == left_by_the_crash
