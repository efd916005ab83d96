"""The private Keras / TensorFlow symbols of `common/compat.py` still exist and behave as the project uses them.

Run against the versions pinned in requirements.txt: a Keras or TensorFlow
upgrade that moves or changes one of them fails here, by name.
"""

import re
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from hybridvision.common import compat

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FOLDERS = ("apps", "common", "data_prep", "benchmarks", "hybridvision", "notebooks")
PRIVATE = re.compile(r"\bkeras\.src\b|\btensorflow\.python\b")


def test_private_names_appear_in_compat_only():
    offenders = []
    for folder in PROJECT_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "common" / "compat.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if PRIVATE.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "import private Keras/TensorFlow names through common/compat.py:\n" + "\n".join(offenders)


# ------------------------------------------------------------------ Functional


def test_functional_is_the_class_of_functional_models_only():
    inputs = keras.Input((3,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert isinstance(functional, compat.Functional)
    assert not isinstance(Subclassed(), compat.Functional)
    # hybridize checks Sequential separately; today it is a Model but not a Functional.
    assert isinstance(sequential, keras.Model) and not isinstance(sequential, compat.Functional)


# ------------------------------------------------------------------ DataLayer


class AddOne(compat.DataLayer):
    """A DataLayer used the way AffineAugmentation uses it."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        self.backends_seen = []

    def call(self, inputs):
        ops = self.backend
        self.backends_seen.append(ops.name)
        seed = self._get_seed_generator(ops._backend)
        noise = ops.random.uniform(ops.core.shape(inputs), 0.0, 1.0, seed=seed)
        return ops.cast(inputs, self.compute_dtype) + ops.numpy.zeros_like(noise) + 1.0

    def compute_output_shape(self, input_shape):
        return input_shape


def test_data_layer_is_a_layer_with_a_dynamic_backend_and_seed_generator():
    layer = AddOne(seed=1)
    assert isinstance(layer, keras.layers.Layer)
    assert layer.backend.name == keras.config.backend()
    assert isinstance(layer._get_seed_generator(layer.backend._backend), keras.random.SeedGenerator)
    x = np.zeros((2, 4, 4, 1), "float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x + 1.0)


def test_data_layer_runs_tensorflow_ops_inside_tf_data():
    layer = AddOne(seed=1)
    data = tf.data.Dataset.from_tensors(np.zeros((2, 4, 4, 1), "float32")).map(layer)
    (batch,) = list(data)
    np.testing.assert_array_equal(batch.numpy(), np.ones((2, 4, 4, 1), "float32"))
    assert layer.backends_seen == ["tensorflow"]
    # The backend switch is undone after the call.
    assert layer.backend.name == keras.config.backend()


# ------------------------------------------------------------------ tf_in_xla_context


def test_tensorflow_internals_behind_tf_in_xla_context_exist():
    # tf_in_xla_context answers False if they moved; make that loud here.
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.ops import control_flow_util

    assert callable(tf_ops.get_default_graph)
    assert callable(control_flow_util.GraphOrParentsInXlaContext)


def test_tf_in_xla_context_sees_jit_compile_only():
    seen = {}

    def probe(key):
        def traced(x):
            seen[key] = compat.tf_in_xla_context()
            return x + 1.0

        return traced

    x = tf.constant(1.0)
    tf.function(probe("graph"))(x)
    tf.function(probe("xla"), jit_compile=True)(x)
    seen["eager"] = compat.tf_in_xla_context()
    assert seen == {"graph": False, "xla": True, "eager": False}
