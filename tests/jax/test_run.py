"""The shared training harness (hybridvision.common.run.Run) on the JAX backend.

Run's own tests use in-memory NumPy data; they are re-run here unchanged,
plus one run fed by tf.data, which is how the apps feed JAX-backend Keras.
"""

import keras
import numpy as np
import tensorflow as tf

from hybridvision.common.run import Run
from tests.common.run.test_crash import (  # noqa: F401 - re-run here: the recipes' exact resume on JAX
    test_kill_and_resume_with_cosine_schedule_and_ema_ends_with_the_weights_of_an_uninterrupted_run,
)
from tests.common.run.test_run import _cfg, _data, _model
from tests.jax._reuse import reuse_tests

reuse_tests(
    "tests.common.run.test_run",
    globals(),
    # A minute of subprocess start-up for the same resume logic that the
    # in-process interruption test covers here; it runs on TensorFlow in `make test`.
    exclude=("test_kill_minus_9_mid_epoch_then_same_command_resumes",),
)


def test_run_with_tf_data_input_on_jax(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert keras.config.backend() == "jax"
    x, y = _data()
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    val = tf.data.Dataset.from_tensor_slices(_data(32, seed=1)).batch(16)
    run = Run("toy", _cfg(tmp_path, epochs=4))
    model = _model()
    history = run.fit(model, train, val, monitor="val_accuracy")
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    _, metrics = run.finish(model, {"val": val})
    assert metrics["val"]["accuracy"] > 0.7
    reloaded = keras.models.load_model(run.dir / "model.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), run.best_model().predict(x, verbose=0), rtol=1e-6)
