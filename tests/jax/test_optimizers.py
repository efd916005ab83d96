"""AdaBound / AMSBound on the JAX backend: the same reference checks as on TensorFlow."""

from tests.jax._reuse import reuse_tests

reuse_tests("tests.common.test_optimizers", globals())
