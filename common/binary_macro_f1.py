"""Macro F1 for one sigmoid output, on top of Keras's own F1Score (a metric of any binary classifier)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hybridvision")
class BinaryMacroF1(keras.metrics.F1Score):
    """Macro-averaged F1 of a binary classifier with one sigmoid output.

    `keras.metrics.F1Score(average="macro")` on a `(batch, 1)` output averages
    over one class only, i.e. it returns the F1 of the positive class. The
    macro F1 of a binary task (as scikit-learn's `f1_score(average="macro")`)
    is the mean of the F1 of the positive and of the negative class, so both
    targets and thresholded predictions are expanded to two one-hot columns
    before Keras's F1Score counts them.

    Args:
        threshold: a probability above this is a positive prediction (as in
            `keras.metrics.BinaryAccuracy`).
        name: metric name (`f1_macro` in the logs and metrics.json).
        dtype: metric dtype.
        **kwargs: passed on to `keras.metrics.F1Score`; `average` (in the
            parent's config) may only be "macro".

    Call arguments:
        y_true: 0/1 targets, shape `(batch,)` or `(batch, 1)`.
        y_pred: probabilities, same shape.
        sample_weight: optional `(batch,)` weights.

    Example:
        ```python
        import keras
        from hybridvision.metrics import BinaryMacroF1

        metric = BinaryMacroF1()
        metric.update_state([[1], [0], [1], [0]], [[0.9], [0.2], [0.4], [0.3]])
        print(round(float(metric.result()), 4))  # 0.7333: (F1 of the positives + F1 of the negatives) / 2

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
        model.compile("adam", "binary_crossentropy", metrics=[BinaryMacroF1()])
        ```

    Reference:
        Van Rijsbergen, "Information Retrieval" (1979), ch. 7 (the F measure).
    """

    def __init__(self, threshold=0.5, name="f1_macro", dtype=None, **kwargs):
        average = kwargs.pop("average", "macro")
        if average != "macro":
            raise ValueError(f"BinaryMacroF1 is always average='macro', got average={average!r}")
        # The parent's threshold sees the 0/1 columns built in update_state, so 0.5 there is exact.
        super().__init__(average="macro", threshold=0.5, name=name, dtype=dtype, **kwargs)
        self.binary_threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.cast(y_true, self.dtype), (-1, 1))
        positive = ops.cast(ops.reshape(y_pred, (-1, 1)) > self.binary_threshold, self.dtype)
        two_true = ops.concatenate([1.0 - y_true, y_true], axis=-1)
        two_pred = ops.concatenate([1.0 - positive, positive], axis=-1)
        if sample_weight is not None:
            sample_weight = ops.reshape(sample_weight, (-1,))
        super().update_state(two_true, two_pred, sample_weight)

    def get_config(self):
        # The parent's config, with our probability threshold in place of its fixed 0.5.
        return {**super().get_config(), "threshold": self.binary_threshold}
