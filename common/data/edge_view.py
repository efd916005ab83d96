"""EdgeView: with some probability, replace a training image by a sketch-like edge drawing.

A photo-trained classifier meets sketches (dark strokes on white, no colour,
no texture) and clip art at test time; showing it edge drawings of its own
photos during training is a cheap bridge. The drawing is the Sobel gradient
magnitude of the grey image, scaled so its 99th percentile is full
strength, with weak gradients (below `THRESHOLD` of it) left white, inverted
(dark lines on white) and repeated to three channels.

Written by hand: Keras has no preprocessing layer that draws edges
(`tf.image.sobel_edges` computes the gradients; the rest is a few lines).
It runs inside a tf.data pipeline (TensorFlow ops), as the apps use it.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Gradients below this share of the 99th percentile are left white.
THRESHOLD = 0.25


@keras.saving.register_keras_serializable(package="hybridvision")
class EdgeView(keras.layers.Layer):
    """Swap each image of a batch for its edge drawing with probability `rate`.

    Args:
        rate: probability per image, in [0, 1].
        seed: seed of the per-image draws.

    Input and output: float images `(batch, height, width, 3)` with values
    in 0..255. Without `training=True` the layer returns its input.
    """

    def __init__(self, rate=0.3, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"EdgeView rate {rate} is a probability; use a value in [0, 1]")
        self.rate = float(rate)
        self.seed = seed
        self._generator = tf.random.Generator.from_seed(seed if seed is not None else 0)

    def call(self, images, training=False):
        if not training or self.rate == 0.0:
            return images
        images = tf.convert_to_tensor(images, tf.float32)
        grey = tf.image.rgb_to_grayscale(images)
        gradients = tf.image.sobel_edges(grey)  # (batch, h, w, 1, 2)
        magnitude = tf.norm(gradients, axis=-1)  # (batch, h, w, 1)
        flat = tf.reshape(magnitude, (tf.shape(magnitude)[0], -1))
        k = tf.maximum(1, tf.cast(tf.cast(tf.shape(flat)[1], tf.float32) * 0.01, tf.int32))
        scale = tf.reduce_min(tf.math.top_k(flat, k=k).values, axis=1)  # the 99th percentile per image
        # Weak gradients (texture, noise) drop out, as a sketch draws outlines only.
        relative = magnitude / (scale[:, None, None, None] + 1e-6)
        strength = tf.clip_by_value((relative - THRESHOLD) / (1.0 - THRESHOLD), 0.0, 1.0)
        drawing = tf.repeat(255.0 * (1.0 - strength), 3, axis=-1)
        swap = self._generator.uniform((tf.shape(images)[0], 1, 1, 1)) < self.rate
        return tf.where(swap, drawing, images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
