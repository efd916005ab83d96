"""MirroredStrategy with two replicas (two logical CPU devices), in a process of its own.

The checks run once in `tests/common/mirrored_replicas_worker.py` (TensorFlow
must split the CPU into logical devices before it initialises them, long done
in a pytest process); each test asserts one part of what it measured.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="MirroredStrategy is TensorFlow-only")


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored") / "result.json"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": ""}  # the two replicas are the two logical CPUs, even on a GPU machine
    proc = subprocess.run([sys.executable, "-m", "tests.common.mirrored_replicas_worker", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_mirrored_two_replicas_train_like_one_replica_with_the_global_batch(two_replicas):
    result = two_replicas["equivalence"]
    assert len(two_replicas["devices"]) == 2
    assert result["replicas"] == [1, 2] and result["global_batch"] == [8, 8]
    # Training moved the weights by far more than the two runs differ (float32 summation order only).
    assert result["max_weight_change"] > 1e-2
    assert result["max_weight_difference"] < 1e-4, result
    assert result["loss"][0] == pytest.approx(result["loss"][1], rel=1e-5)


def test_mirrored_replica_count_scales_batch_and_learning_rate(two_replicas):
    scaling = two_replicas["scaling"]
    assert scaling["replicas"] == 2 and scaling["global_batch_of_8"] == 16
    assert scaling["learning_rate_scaled"] == pytest.approx(0.2) and scaling["learning_rate_plain"] == pytest.approx(0.1)
    # Through the app's command line (--scale-learning-rate), on both invocations.
    assert two_replicas["app"]["learning_rates"] == pytest.approx([0.01, 0.01])


def test_mirrored_two_replica_app_run_resumes_after_a_crash(two_replicas):
    app = two_replicas["app"]
    assert app["crashed"] and app["epochs"] == [[0], [1]], app["epochs"]
    # The second invocation starts from the weights the first one had after epoch 1.
    assert app["restored_weight_difference"] == 0.0
    assert app["history_rows"] == 2 and app["finished"]
    assert 0.0 <= app["test_accuracy"] <= 1.0
