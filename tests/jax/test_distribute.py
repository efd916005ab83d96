"""Distribution and mixed precision on the JAX backend."""

import pytest

from hybridvision.common.distribute import Distribution
from tests.jax._reuse import reuse_tests

# MirroredStrategy and the multi-host refusal are TensorFlow-only; on JAX the flag must fail clearly instead.
reuse_tests("tests.common.test_distribute", globals(), exclude=(
    "test_mirrored_on_local_devices_scales_batch_and_learning_rate",
    "test_multihost_on_tensorflow_or_with_mirrored_errors_clearly",
))


def test_mirrored_on_jax_says_what_to_use():
    with pytest.raises(ValueError, match="--strategy mirrored needs KERAS_BACKEND=tensorflow; use --strategy data_parallel"):
        Distribution("mirrored")


def test_data_parallel_runs_eager_compiled_models_jitted():
    # digit_pairs compiles with jit_compile=False; op by op under DataParallel hung XLA's CPU all-reduce.
    import keras

    from hybridvision.apps.digit_pairs.models import build_model, compile_model
    from hybridvision.common.data.affine_augment import AffineAugmentation
    from hybridvision.common.distribute import jit_steps_under_data_parallel

    model = compile_model(build_model("siamese", 14), "siamese", 1e-3)
    assert model.jit_compile is False
    assert jit_steps_under_data_parallel(model) is False and model.jit_compile is False  # no distribution: as compiled
    Distribution("data_parallel")
    try:
        assert jit_steps_under_data_parallel(model) is True and model.jit_compile is True
        assert model.train_function is None
        inputs = keras.Input((8, 8, 3))
        held = keras.Model(inputs, keras.layers.Dense(2)(AffineAugmentation(rotation_range=10)(inputs)))
        held.compile(optimizer="sgd", loss="mse", jit_compile=False)
        assert jit_steps_under_data_parallel(held) is False
    finally:
        keras.distribution.set_distribution(None)
