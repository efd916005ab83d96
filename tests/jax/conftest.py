"""Runs the tests in this folder on the JAX backend (`make test-jax`).

Keras picks its backend once, at import, so these tests need a process of
their own: `KERAS_BACKEND=jax python -m pytest tests/jax`. We set the
variable here too, which is enough when only this folder is collected. In a
run of the whole suite Keras is already on TensorFlow by the time this file
loads; the tests are then reported as skipped with the command to use, never
run on the wrong backend.
"""

import os
import sys

import pytest

if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "jax")

_WRONG_BACKEND = None
if os.environ.get("KERAS_BACKEND") != "jax" or (
    "keras" in sys.modules and sys.modules["keras"].config.backend() != "jax"
):
    _WRONG_BACKEND = "Keras runs on another backend in this process; run `make test-jax` (KERAS_BACKEND=jax python -m pytest tests/jax)"
else:
    # jax is an optional extra (setup.cfg `jax`); without it these tests cannot run at all.
    import jax  # noqa: F401


def pytest_collection_modifyitems(config, items):
    if _WRONG_BACKEND is None:
        return
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.skip(reason=_WRONG_BACKEND))
