"""Distribution and mixed precision on the JAX backend."""

import pytest

from common.distribute import Distribution
from tests.jax._reuse import reuse_tests

# MirroredStrategy is TensorFlow-only; on JAX the flag must fail clearly instead.
reuse_tests("tests.common.test_distribute", globals(), exclude=("test_mirrored_on_local_devices_scales_batch_and_learning_rate",))


def test_mirrored_on_jax_says_what_to_use():
    with pytest.raises(ValueError, match="--strategy mirrored needs KERAS_BACKEND=tensorflow; use --strategy data_parallel"):
        Distribution("mirrored")
