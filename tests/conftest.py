"""Shared pytest fixtures: every test starts from the same seeds."""

import os
import random

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow 2.21 turned oneDNN off by default; the grouped HybridConv2D path needs it on a CPU.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# tests/jax re-runs the backend-neutral tests on JAX, in a process of its own
# (`make test-jax`): Keras picks its backend once per process.
collect_ignore = [] if os.environ.get("KERAS_BACKEND") == "jax" else ["jax"]

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    import keras

    random.seed(1337)
    np.random.seed(1337)
    keras.utils.set_random_seed(1337)
    yield
    keras.backend.clear_session()
