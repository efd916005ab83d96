"""The backbones, BatchNorm-safe transfer helpers and the apps' models on the JAX backend.

Their TensorFlow-backend tests are re-run unchanged: every model kind builds
and trains a step, frozen BatchNorm statistics stay put through `fit`, a
hybridised network equals the original at initialisation, and models survive
a save and reload.
"""

from tests.common.test_backbones import fake_imagenet, offline  # noqa: F401  (fixtures the reused tests take)
from tests.jax._reuse import reuse_tests

for module in (
    "tests.common.test_backbones",
    "tests.common.test_transfer",
    "tests.apps.digit_pairs.test_models",
    "tests.apps.orientation_light.test_models",
    "tests.apps.patch_training.test_models",
):
    reuse_tests(module, globals())

