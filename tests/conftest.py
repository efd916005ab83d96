"""Shared pytest fixtures: every test starts from the same seeds."""

import gc
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
    keras.backend.clear_session(free_memory=False)
    # clear_session's own gc.collect() walks every object that TensorFlow,
    # Keras and the imported modules hold (1-1.5 s a test on 2 cores: half
    # of the suite's time). Collect what this test left behind, then move the
    # survivors to the permanent generation, so the next collection walks
    # only the objects made after this point.
    gc.collect()
    gc.freeze()


@pytest.fixture(params=["python", "pyarrow"])
def string_storage(request):
    """Runs a test with pandas keeping strings as Python objects, then in Arrow (pandas 3's default with pyarrow).

    Arrow refuses what Python makes of file names that are not UTF-8, so
    tests of file tables take this fixture to pass both ways.
    """
    import pandas as pd

    if request.param == "pyarrow":
        pytest.importorskip("pyarrow")  # requirements-bench.txt installs it (`make test`)
    with pd.option_context("mode.string_storage", request.param):
        yield request.param


def pytest_configure(config):
    """Under xdist, hand tests to the workers one at a time (unless --maxschedchunk is given).

    xdist's default hands each worker a quarter of its share at the start, in
    collection order: the slow tests, sorted first below, would all go to one
    worker. One at a time, each free worker takes the next test, so the long
    ones spread over the workers and the short ones fill the gaps at the end.
    """
    if config.pluginmanager.hasplugin("xdist") and config.getoption("maxschedchunk", None) is None:
        config.option.maxschedchunk = 1


def pytest_collection_modifyitems(config, items):
    """Run the tests marked slow first (the order within each group is kept).

    `make test` spreads the tests over the xdist workers (2 on a 2-core
    machine); slow tests collected late (the notebooks last) would otherwise
    leave one worker running them alone at the end.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
