"""Distribution and mixed precision on the JAX backend (MirroredStrategy's test skips: TensorFlow-only)."""

from tests.jax._reuse import reuse_tests

reuse_tests("tests.common.test_distribute", globals())
