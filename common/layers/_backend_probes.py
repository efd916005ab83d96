"""What the backend and the device offer: the inputs of `PerSampleConv`'s `implementation="auto"`."""

import functools

import keras

from hybridvision.common.compat import tf_in_xla_context


def _accelerator_visible():
    """Whether the backend sees a GPU or TPU (decides `implementation="auto"`)."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(
            tf.config.list_logical_devices("GPU")
            or tf.config.list_logical_devices("TPU")
        )
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


@functools.cache
def _grouped_conv_differentiable_on_cpu():
    """Whether the backend can differentiate a grouped convolution on a CPU.

    TensorFlow's own CPU kernels cannot ("Gradients for grouped convolutions
    are not supported on CPU"); its oneDNN ones can, and TensorFlow turns
    oneDNN on by default only on some CPUs (e.g. with AVX-512), so this asks
    TensorFlow once, with a tiny grouped convolution.
    """
    if keras.config.backend() != "tensorflow":
        return True
    import tensorflow as tf

    with tf.init_scope():  # eagerly, even while a tf.function is being traced
        try:
            # The input gradient of a 2-group convolution of a (1, 3, 3, 2) input.
            tf.raw_ops.Conv2DBackpropInput(
                input_sizes=[1, 3, 3, 2],
                filter=tf.zeros((2, 2, 1, 2)),
                out_backprop=tf.zeros((1, 2, 2, 2)),
                strides=[1, 1, 1, 1],
                padding="VALID",
            )
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            return False
    return True


def _compiled_by_xla():
    """Whether the ops being built now will be compiled by XLA.

    Always on JAX; on TensorFlow inside a `tf.function(jit_compile=True)`
    (which is what `model.compile(jit_compile=True)` traces the train step
    in), detected through the XLA control-flow context that TensorFlow
    enters for such functions.
    """
    backend = keras.config.backend()
    if backend == "jax":
        return True
    if backend != "tensorflow":
        return False
    return tf_in_xla_context()
