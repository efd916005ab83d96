"""The private Keras and TensorFlow symbols hybridvision uses, in one place.

Nothing under `keras.src` or `tensorflow.python` is a public API: it may move
or change in any release. Each symbol here is one the project could not do
without through a public name; every other module imports it from here, and
`tests/common/test_compat.py` checks that each one still exists and behaves
as it is used, against the versions pinned in requirements.txt, so an
upgrade that moves one fails there, by name, instead of somewhere deep in a
layer or a training run.

- `Functional`: the class of functional models (`keras.Model(inputs, outputs)`
  returns one). `hybridize` tells functional models apart from subclassed ones
  with it, since only those have a graph to rebuild.
- `DataLayer`: the base class of Keras's preprocessing layers. It runs a
  layer's `call` with TensorFlow ops inside `tf.data` whatever the Keras
  backend (`self.backend`) and gives a per-backend seed generator
  (`_get_seed_generator`); `AffineAugmentation` builds on it as Keras's own
  `RandomRotation` does.
- `tf_in_xla_context()`: whether TensorFlow is building ops that XLA will
  compile (`jit_compile=True`); `PerSampleConv`'s `implementation="auto"`
  chooses differently under XLA. TensorFlow is imported only when it is
  called, so the JAX backend never loads it.
"""

from keras.src.models.functional import Functional

try:
    from keras.src.layers.preprocessing.data_layer import DataLayer
except ImportError:  # Keras < 3.10 called the same base class TFDataLayer.
    from keras.src.layers.preprocessing.tf_data_layer import TFDataLayer as DataLayer

__all__ = ["DataLayer", "Functional", "tf_in_xla_context"]


def tf_in_xla_context():
    """Whether the TensorFlow graph being built now will be compiled by XLA.

    True inside a `tf.function(jit_compile=True)` (which is what
    `model.compile(jit_compile=True)` traces the train step in), detected
    through the XLA control-flow context TensorFlow enters for such
    functions; False when executing eagerly or in a graph without XLA.

    Returns:
        bool.
    """
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # moved by a TensorFlow upgrade: "auto" then acts as without XLA
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))
