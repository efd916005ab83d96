"""Losses shared by the apps (Keras 3, `keras.ops` only, so any backend runs them)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hybridvision")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy with a weight on the positives of each class.

    Per class `c`: `-(w_c * y * log(p) + (1 - y) * log(1 - p))`, averaged
    over the classes (and then over the batch by the reduction). With
    `w_c = negatives / positives` of the training labels, a rare class's few
    positives weigh as much as its many negatives, so a multi-label model on
    imbalanced data does not settle on predicting all zeros. All weights 1
    is the plain binary cross-entropy. This is PyTorch's
    `BCEWithLogitsLoss(pos_weight=...)`.

    Args:
        pos_weight: list of per-class weights of the positives (length =
            number of classes), or one float for every class.
        from_logits: True when `y_pred` are logits, False for
            probabilities (clipped to `[eps, 1 - eps]`).
        reduction: how the per-sample losses are reduced, as for any
            `keras.losses.Loss`.
        name: the loss's name.
        dtype: the dtype of the loss computation, as for any
            `keras.losses.Loss`.

    Call arguments:
        y_true: `(batch, classes)` 0/1 targets.
        y_pred: `(batch, classes)` probabilities or logits.

    Example:
        ```python
        import numpy as np
        from hybridvision.losses import WeightedBinaryCrossentropy

        labels = np.array([[1, 0], [0, 1], [0, 1], [0, 0], [0, 0]])  # the training labels
        pos_weight = (labels == 0).sum(axis=0) / labels.sum(axis=0)  # negatives / positives: [4.0, 1.5]
        loss = WeightedBinaryCrossentropy(pos_weight=pos_weight)
        value = float(loss([[1.0, 0.0]], [[0.5, 0.5]]))
        print(value)  # (4 * log(2) + log(2)) / 2 = 1.7329
        assert abs(value - 2.5 * np.log(2)) < 1e-5
        ```

    Reference:
        The report's weighted BCE (docs/reports.md: patch_training); PyTorch
        `torch.nn.BCEWithLogitsLoss`, argument `pos_weight`.
    """

    def __init__(self, pos_weight=1.0, from_logits=False, reduction="sum_over_batch_size", name="weighted_binary_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(pos_weight, (int, float)):
            pos_weight = float(pos_weight)
        else:
            pos_weight = [float(w) for w in ops.convert_to_numpy(pos_weight).reshape(-1)]
        self.pos_weight = pos_weight
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        weight = ops.cast(ops.convert_to_tensor(self.pos_weight), y_pred.dtype)
        if self.from_logits:
            # log(sigmoid(x)) = -softplus(-x), log(1 - sigmoid(x)) = -softplus(x): stable for any x.
            log_p = -ops.softplus(-y_pred)
            log_not_p = -ops.softplus(y_pred)
        else:
            eps = keras.config.epsilon()
            p = ops.clip(y_pred, eps, 1.0 - eps)
            log_p, log_not_p = ops.log(p), ops.log(1.0 - p)
        per_class = -(weight * y_true * log_p + (1.0 - y_true) * log_not_p)
        return ops.mean(per_class, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"pos_weight": self.pos_weight, "from_logits": self.from_logits})
        return config
