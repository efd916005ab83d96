"""Two processes on localhost train one model data-parallel (keras.distribution on JAX)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_end_with_identical_trained_weights(tmp_path):
    port, steps, local_batch = _free_port(), 3, 4
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hybridvision.common.multihost", "--coordinator", f"localhost:{port}",
             "--num-processes", "2", "--process-id", str(pid), "--local-devices", "2",
             "--steps", str(steps), "--local-batch", str(local_batch), "--out", str(tmp_path / f"w{pid}.npz")],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for pid in (0, 1)
    ]
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for pid, (p, log) in enumerate(zip(procs, logs)):
        assert p.returncode == 0, f"process {pid} failed:\n{log[-3000:]}"
        assert f"process {pid}/2: 4 devices" in log, log[-2000:]
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    n = len([k for k in w0 if k.startswith("final_")])
    for i in range(n):
        np.testing.assert_array_equal(w0[f"final_{i}"], w1[f"final_{i}"])
        np.testing.assert_array_equal(w0[f"initial_{i}"], w1[f"initial_{i}"])
    assert all(not np.allclose(w0[f"final_{i}"], w0[f"initial_{i}"]) for i in range(n)), "training changed no weight"

    # Same steps on one device with the global batches: data parallelism must
    # give the same model as plain training (gradients averaged over both processes).
    import tensorflow as tf

    from hybridvision.common.multihost import build_demo_model, demo_data

    model = build_demo_model()
    model.set_weights([w0[f"initial_{i}"] for i in range(n)])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    x, y = demo_data(steps * 2 * local_batch)
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(2 * local_batch), epochs=1, shuffle=False, verbose=0)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w0[f"final_{i}"], w, atol=1e-5, rtol=1e-4)
