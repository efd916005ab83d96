"""SpatialPyramidPooling2D: fixed-length features from feature maps of any size."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hybridvision")
class SpatialPyramidPooling2D(keras.layers.Layer):
    """Max or average pooling over several grids, concatenated.

    For each bin count `n` the feature map is split into an `n x n` grid of
    nearly equal cells, as adaptive pooling does: along an axis of length `L`,
    cell `i` spans `[floor(i * L / n), ceil((i + 1) * L / n))`, so cells may
    overlap by one pixel when `n` does not divide `L` and are never empty.
    Each cell is pooled to one value per channel. The result has
    `sum(n * n for n in bins) * channels` features whatever the input height
    and width, so patches of any size (also `None` height / width in a
    functional model) feed the same dense head.

    Output order: for each bin in `bins`, the grid cells row by row
    (row `i`, column `j`), each holding all channels.

    Args:
        bins: sequence of positive ints, the grid sizes, e.g. `(1, 2, 4)`.
        pooling: `"max"` or `"average"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `(batch, height, width, channels)` (channels
            last, channels known). Output: `(batch, sum(n^2) * channels)`.

    Example:
        A head that takes feature maps of any height and width:

        ```python
        import keras
        import numpy as np
        from hybridvision.layers import SpatialPyramidPooling2D

        patches = keras.Input((None, None, 16))
        features = SpatialPyramidPooling2D(bins=(1, 2, 4))(patches)  # (None, 21 * 16)
        model = keras.Model(patches, keras.layers.Dense(3)(features))
        print(model(np.zeros((2, 9, 13, 16))).shape)  # (2, 3)
        print(model(np.zeros((2, 30, 20, 16))).shape)  # (2, 3)
        ```

    Reference:
        He, Zhang, Ren & Sun, "Spatial Pyramid Pooling in Deep Convolutional
        Networks for Visual Recognition", ECCV 2014.
    """

    def __init__(self, bins=(1, 2, 4), pooling="max", **kwargs):
        super().__init__(**kwargs)
        if isinstance(bins, int):
            bins = (bins,)
        bins = tuple(bins)
        if not bins or not all(isinstance(n, int) and n > 0 for n in bins):
            raise ValueError(
                "SpatialPyramidPooling2D: `bins` must be a non-empty sequence of positive "
                f"ints such as (1, 2, 4); received bins={bins!r}."
            )
        if pooling not in ("max", "average"):
            raise ValueError(
                "SpatialPyramidPooling2D: `pooling` must be 'max' or 'average'; "
                f"received pooling={pooling!r}."
            )
        self.bins = bins
        self.pooling = pooling

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "SpatialPyramidPooling2D: input must have shape (batch, height, width, "
                f"channels) with known channels (channels_last); received {input_shape}."
            )

    def _reduce(self, x, axis):
        if self.pooling == "max":
            return ops.max(x, axis=axis)
        return ops.mean(x, axis=axis)

    def call(self, inputs):
        _, height, width, channels = ops.shape(inputs)
        features = []
        for n in self.bins:
            # Pooling is separable for max and for mean over a rectangle
            # (the mean of row-band means is the cell mean, every row band
            # having the same width), so pool row bands first, then columns:
            # 2n slices per grid instead of n^2 over the full map.
            rows = []
            for i in range(n):
                start, stop = (i * height) // n, -((-(i + 1) * height) // n)
                rows.append(self._reduce(inputs[:, start:stop], axis=1))
            rows = ops.stack(rows, axis=1)  # (batch, n, width, channels)
            cells = []
            for j in range(n):
                start, stop = (j * width) // n, -((-(j + 1) * width) // n)
                cells.append(self._reduce(rows[:, :, start:stop], axis=2))
            cells = ops.stack(cells, axis=2)  # (batch, n, n, channels)
            features.append(ops.reshape(cells, (-1, n * n * channels)))
        return ops.concatenate(features, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], sum(n * n for n in self.bins) * input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"bins": list(self.bins), "pooling": self.pooling})
        return config
