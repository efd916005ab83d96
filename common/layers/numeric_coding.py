"""NumericCoding: one numeric covariate standardised, its missing values imputed and flagged."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hybridvision")
class NumericCoding(keras.layers.Layer):
    """`(x - mean) / std` with a missing value (NaN) imputed at the mean, plus a missing flag.

    The statistics are the training split's, fixed at construction and
    saved with the model, so a saved model takes the raw number. Keras's
    `Normalization` layer standardises but has no notion of a missing
    value (a NaN stays NaN), hence this layer; it follows scikit-learn's
    `SimpleImputer(add_indicator=True)`: the flag column exists only when
    the training split had missing values (`indicator=True`).

    Args:
        mean: the training mean of the column.
        std: its training standard deviation (a zero is treated as 1).
        indicator: add a second output column, 1.0 where the value was missing.

    Call arguments:
        inputs: `(batch, 1)` floats, NaN for a missing value. Output:
            `(batch, 1)`, or `(batch, 2)` with the flag.

    Example:
        ```python
        import numpy as np
        from hybridvision.layers import NumericCoding

        age = NumericCoding(mean=50.0, std=10.0, indicator=True)
        print(np.asarray(age(np.array([[60.0], [np.nan]], "float32"))))  # [[1, 0], [0, 1]]
        ```
    """

    def __init__(self, mean, std, indicator=False, **kwargs):
        super().__init__(**kwargs)
        self.mean = float(mean)
        self.std = float(std) if std and float(std) > 0 else 1.0
        self.indicator = bool(indicator)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        missing = ops.isnan(x)
        coded = ops.where(missing, ops.zeros_like(x), (x - self.mean) / self.std)
        if not self.indicator:
            return coded
        return ops.concatenate([coded, ops.cast(missing, "float32")], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 if self.indicator else 1)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std, "indicator": self.indicator}
