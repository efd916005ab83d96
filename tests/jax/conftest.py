"""The tests in this folder run only on the JAX backend (`make test-jax`).

Keras picks its backend once per process, from KERAS_BACKEND, so these
tests need a run of their own: `KERAS_BACKEND=jax python -m pytest tests/jax`.
We do not set the variable here: pytest may load this file before other
folders' tests import Keras, and would then move them to JAX too. In a run
without KERAS_BACKEND=jax the tests are reported as skipped, with this
command as the reason, never run on the wrong backend.
"""

import os

import pytest

ON_JAX = os.environ.get("KERAS_BACKEND") == "jax"
REASON = "needs its own process on JAX: run `make test-jax` (KERAS_BACKEND=jax python -m pytest tests/jax)"


def pytest_collection_modifyitems(config, items):
    if ON_JAX:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if os.path.abspath(str(item.fspath)).startswith(here + os.sep):
            item.add_marker(pytest.mark.skip(reason=REASON))
