"""Shared pytest fixtures: every test starts from the same seeds."""

import os
import random

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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


def pytest_collection_modifyitems(config, items):
    """Run the tests marked slow first (the order within each group is kept).

    `make test` spreads the tests over 2 xdist workers (`-n auto` on 2 cores) in
    collection order; the notebooks and subprocess tests, collected last, would
    otherwise leave one worker running them alone at the end.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
