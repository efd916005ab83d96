"""The models of the digit-pair comparison, exactly as the report's tables give them.

Every model takes one input, the pair as an (S, S, 2) image (channels
last), and returns a dict of outputs: `compare`, the softmax over
{first > second, first <= second}, and for the auxiliary-loss models also
`digit_a` and `digit_b`, 10-way softmaxes over each digit's class.

Layer output sizes on the report's 14x14 pairs (channels x height x width;
its convolutions are 5x5 with padding 1, so 14 -> 12 and 6 -> 4):

- `fc`: flatten (392) -> dense 32 -> 2.                       12,642 parameters
- `fc_dropout`: the same with dropout 0.4 after the hidden layer.
- `cnn`: conv 32x12x12 -> maxpool 32x6x6 -> flatten 1152 -> dropout -> dense 64
  -> dropout -> 2.                                              75,554 parameters
- `deep_cnn`: conv 32x12x12 + BatchNorm -> maxpool 32x6x6 -> dropout -> conv
  64x4x4 + BatchNorm -> maxpool 64x2x2 -> flatten 256 -> dropout -> dense 64
  -> dropout... three dropouts in all (after each block and after dense 64)
  -> 2.                      69,858 parameters (Keras counts the BatchNorm
  moving statistics too; PyTorch's count of the trainable ones is 69,666)
- `siamese`: the deep CNN's feature extractor (to dense 64) as one shared
  model applied to each digit; the two 64-vectors concatenated (128) -> dense
  64 -> 2. No aux loss. (The report gives no table for it.)
- `aux`: the same shared branch ending in Linear 10 (softmax) per digit
  (auxiliary losses against the digit classes); the two 10-vectors
  concatenated (20) -> ONE Linear to 2.
- `aux_prob` (ours, not in the report): the `aux` branch, but the comparison
  is computed, not learnt: P(a <= b) = sum over i <= j of p_a(i) p_b(j), a
  fixed linear map of the outer product of the two class distributions.
  It has no comparison weights to overfit on 800 pairs.
- `aux_same_dense` (the earlier layout, not the report's): the aux net on a
  branch with 'same' padding, no conv bias and one dropout, and a dense 64
  between the concatenated 10-vectors and the comparison (91,436
  parameters). It did better than the report's `aux` on real MNIST pairs
  (docs/results/digit_pairs_compare).

Reference: the pair task and the models follow the EPFL deep learning
course project 1 as described in docs/reports.md (digit_pairs).
"""

from __future__ import annotations

import keras
import numpy as np

from hybridvision.apps.digit_pairs.config import MODELS

AUX_MODELS = ("aux", "aux_prob", "aux_same_dense")


def has_aux(name: str) -> bool:
    """Whether model `name` has the digit-class outputs (and losses)."""
    return name in AUX_MODELS


def _check(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"--model {name!r} is not valid; choose one of: {', '.join(MODELS)}")


def _conv(x, filters: int, name: str, activation=None):
    # The report's convolutions: 5x5 with padding 1 (PyTorch's `padding=1`), bias on.
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, 5, activation=activation, name=name)(x)


def _conv_block(x, filters: int, name: str, same: bool = False):
    if same:  # the earlier variant: 'same' padding, no bias (BatchNorm follows)
        x = keras.layers.Conv2D(filters, 5, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = _conv(x, filters, f"{name}_conv")
    # momentum 0.9 = PyTorch's default (0.1 there), which the report used: with
    # only 8 steps per epoch Keras's 0.99 leaves the moving statistics far off
    # for dozens of epochs, so validation (inference mode) lags training.
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    return keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def _deep_features(x, dropout: float, same: bool = False):
    """The deep CNN up to its dense 64: two conv blocks, three dropouts (`same`: the earlier variant)."""
    if same:
        x = _conv_block(_conv_block(x, 32, "block1", same=True), 64, "block2", same=True)
        x = keras.layers.Dropout(dropout, name="dropout")(keras.layers.Flatten(name="flatten")(x))
        return keras.layers.Dense(64, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(dropout, name="block1_dropout")(_conv_block(x, 32, "block1"))
    x = keras.layers.Flatten(name="flatten")(_conv_block(x, 64, "block2"))
    x = keras.layers.Dropout(dropout, name="block2_dropout")(x)
    x = keras.layers.Dense(64, activation="relu", name="dense")(x)
    return keras.layers.Dropout(dropout, name="dense_dropout")(x)


def digit_branch(size: int = 14, dropout: float = 0.4, classes: bool = False, same: bool = False) -> keras.Model:
    """The shared per-digit network: deep-CNN features (64), or a 10-way softmax when `classes`."""
    digit = keras.Input((size, size, 1), name="digit")
    x = _deep_features(digit, dropout, same)
    if classes:
        x = keras.layers.Dense(10, activation="softmax", name="digit_class")(x)
    return keras.Model(digit, x, name="digit_classifier" if classes else "digit_features")


def _comparison_from_probabilities(p_a, p_b):
    # outer[i, j] = p_a(i) p_b(j); a fixed 100 -> 2 map sums it over i > j and i <= j.
    outer = keras.layers.Dot(axes=(2, 1), name="outer")(
        [keras.layers.Reshape((10, 1), name="col_a")(p_a), keras.layers.Reshape((1, 10), name="row_b")(p_b)]
    )
    flat = keras.layers.Flatten(name="joint")(outer)
    compare = keras.layers.Dense(2, use_bias=False, trainable=False, name="compare")
    out = compare(flat)
    i, j = np.divmod(np.arange(100), 10)
    le = (i <= j).astype("float32")
    compare.set_weights([np.stack([1.0 - le, le], axis=1)])
    return out


def _compare_head(x):
    return keras.layers.Dense(2, activation="softmax", name="compare")(x)


def build_model(name: str, size: int = 14, dropout: float = 0.4) -> keras.Model:
    """Builds (does not compile) model `name` on (size, size, 2) pairs; outputs a dict."""
    _check(name)
    pair = keras.Input((size, size, 2), name="pair")
    if name in ("fc", "fc_dropout"):
        x = keras.layers.Dense(32, activation="relu", name="hidden")(keras.layers.Flatten(name="flatten")(pair))
        if name == "fc_dropout":
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        return keras.Model(pair, {"compare": _compare_head(x)}, name=name)
    if name == "cnn":
        x = _conv(pair, 32, "conv", activation="relu")
        x = keras.layers.Flatten(name="flatten")(keras.layers.MaxPooling2D(2, name="pool")(x))
        x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.Dense(64, activation="relu", name="dense")(x)
        x = keras.layers.Dropout(dropout, name="dense_dropout")(x)
        return keras.Model(pair, {"compare": _compare_head(x)}, name=name)
    if name == "deep_cnn":
        return keras.Model(pair, {"compare": _compare_head(_deep_features(pair, dropout))}, name=name)
    # Shared-weight models: one branch model, called on each digit.
    first, second = pair[..., 0:1], pair[..., 1:2]
    branch = digit_branch(size, dropout, classes=has_aux(name), same=name == "aux_same_dense")
    a, b = branch(first), branch(second)
    if name == "siamese":
        x = keras.layers.Concatenate(name="features")([a, b])
        x = keras.layers.Dense(64, activation="relu", name="joint")(x)
        return keras.Model(pair, {"compare": _compare_head(x)}, name=name)
    # The branch's softmax is shared, so the named outputs go through Identity layers.
    p_a = keras.layers.Identity(name="digit_a")(a)
    p_b = keras.layers.Identity(name="digit_b")(b)
    if name in ("aux", "aux_same_dense"):
        x = keras.layers.Concatenate(name="classes")([p_a, p_b])
        if name == "aux_same_dense":
            x = keras.layers.Dense(64, activation="relu", name="joint")(x)
        compare = _compare_head(x)
    else:
        compare = _comparison_from_probabilities(p_a, p_b)
    return keras.Model(pair, {"compare": compare, "digit_a": p_a, "digit_b": p_b}, name=name)


def compile_model(
    model: keras.Model, name: str, learning_rate: float, aux_weight: float = 0.2, warmup_steps: int = 0
) -> keras.Model:
    """Adam + cross-entropy on the comparison; aux models add the digit losses, weighted.

    `warmup_steps` > 0 ramps the learning rate linearly from 0 to `learning_rate`
    over that many steps, then holds it.
    """
    loss = {"compare": "sparse_categorical_crossentropy"}
    metrics = {"compare": ["accuracy"]}
    weights = None
    if has_aux(name):
        if not 0 <= aux_weight < 0.5:
            raise ValueError(f"--aux-weight must be in [0, 0.5) so the comparison keeps a positive weight, got {aux_weight}")
        for out in ("digit_a", "digit_b"):
            loss[out] = "sparse_categorical_crossentropy"
            metrics[out] = ["accuracy"]
        weights = {"compare": 1.0 - 2.0 * aux_weight, "digit_a": aux_weight, "digit_b": aux_weight}
    # No XLA: for these small models it compiled for 20 s and then ran 2-5x
    # slower per epoch than plain TensorFlow on a 2-core CPU (measured).
    schedule = learning_rate
    if warmup_steps > 0:
        # CosineDecay with alpha=1 never decays: a linear warm-up, then constant.
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=1, alpha=1.0, warmup_target=learning_rate, warmup_steps=warmup_steps
        )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss=loss, loss_weights=weights, metrics=metrics,
        jit_compile=False,
    )
    return model


def accuracy_key(name: str) -> str:
    """The comparison accuracy's name in Keras logs (multi-output models prefix it)."""
    return "compare_accuracy" if has_aux(name) else "accuracy"
