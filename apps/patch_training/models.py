"""One backbone, two heads: the multi-label head (full images) and the patch head.

    backbone ─┬─ GAP -> dropout -> dense 20 sigmoid          full_model  (image -> multi-hot)
              └─ pool to 4x4 (or SPP) -> 3 dense -> softmax  patch_model (patch -> class)

Both `keras.Model`s call the same backbone model, so they share its layers
and variables: training `patch_model` moves the backbone and the patch head,
training `full_model` the backbone and the multi-label head (a second head
after the backbone's last conv block, as in the report).

With `patch_shape="keep"` the backbone and `patch_model` take images of any
size, `(None, None, 3)`: patches keep their own shape and the pooling (SPP
or adaptive, both pool a grid of any map to fixed cells) gives the dense
head a fixed-length vector; `full_model` still takes `image_size` squares.

Both models take raw RGB images with values 0..255: one shared
preprocessing layer (`hybridvision.common.backbones.preprocessing_layer`) in front of the
backbone does its normalisation, so a saved `.keras` file needs no other
knowledge.
"""

from __future__ import annotations

import keras

from hybridvision.common.backbones import build_backbone, preprocessing_layer
from hybridvision.common.data.voc import VOC_CLASSES
from hybridvision.common.layers import SpatialPyramidPooling2D
from hybridvision.common.losses import WeightedBinaryCrossentropy
from hybridvision.common.optimizers import get_optimizer

# adaptive: PyTorch's AdaptiveAvgPool2d((4, 4)) of the report; spp: the
# max-pooling pyramid the report describes for patches of any size.
POOLING = {"adaptive": {"bins": (4,), "pooling": "average"}, "spp": {"bins": (1, 2, 4), "pooling": "max"}}


def build_models(
    backbone="vgg16",
    image_size=224,
    weights="none",
    patch_pooling="adaptive",
    patch_hidden=512,
    dropout=0.5,
    num_classes=len(VOC_CLASSES),
    patch_shape="square",
):
    """Returns `(full_model, patch_model)` sharing one backbone, both on 0..255 images.

    Args:
        backbone: a `hybridvision.common.backbones.BACKBONES` name.
        image_size: side of the square full images and patches.
        weights: backbone weights ("imagenet", "none" or a file).
        patch_pooling: "adaptive" (average to 4x4) or "spp" (max 1x1+2x2+4x4).
        patch_hidden: units of the patch head's two hidden dense layers.
        dropout: rate before each dense layer.
        num_classes: outputs of both heads.
        patch_shape: "square" (patches are `image_size` squares) or "keep"
            (the backbone and the patch model take any height and width).
    """
    if patch_pooling not in POOLING:
        raise ValueError(f"--patch-pooling {patch_pooling!r} is not valid; choose one of: {', '.join(POOLING)}")
    if patch_shape not in ("square", "keep"):
        raise ValueError(f"--patch-shape {patch_shape!r} is not valid; choose square or keep")
    shape = (image_size, image_size, 3)
    patch_input = shape if patch_shape == "square" else (None, None, 3)
    features = build_backbone(backbone, patch_input, weights=weights)
    preprocess = preprocessing_layer(backbone)  # shared, like the backbone

    image = keras.Input(shape, name="image")
    x = keras.layers.GlobalAveragePooling2D(name="labels_pool")(features(preprocess(image)))
    x = keras.layers.Dropout(dropout, name="labels_dropout")(x)
    # float32 outputs keep the loss and the AP stable under mixed precision.
    labels = keras.layers.Dense(num_classes, activation="sigmoid", dtype="float32", name="labels")(x)
    full_model = keras.Model(image, labels, name="full_model")

    patch = keras.Input(patch_input, name="patch")
    p = SpatialPyramidPooling2D(**POOLING[patch_pooling], name="patch_pool")(features(preprocess(patch)))
    p = keras.layers.Flatten(name="patch_flatten")(p)
    for k in (1, 2):
        p = keras.layers.Dropout(dropout, name=f"patch_dropout{k}")(p)
        p = keras.layers.Dense(patch_hidden, activation="relu", name=f"patch_dense{k}")(p)
    p = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="patch_class")(p)
    patch_model = keras.Model(patch, p, name="patch_model")
    return full_model, patch_model


def backbone_of(model):
    """The shared backbone (the nested model) of `full_model` or `patch_model`."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def head_weights(model):
    """The trainable variables of `model`'s own head (not the backbone's)."""
    shared = {id(v) for v in backbone_of(model).trainable_variables}
    return [v for v in model.trainable_variables if id(v) not in shared]


def _optimizer(name, learning_rate, momentum):
    kwargs = {"momentum": momentum} if name in ("sgd", "rmsprop") else {}
    return get_optimizer(name, learning_rate, **kwargs)


def compile_models(full_model, patch_model, pos_weight, learning_rate=1e-3, optimizer="sgd", momentum=0.9,
                   patch_learning_rate=None):
    """Compiles both models, each with its own optimizer (momentum state is per head).

    `patch_learning_rate` is the patch model's (default `learning_rate`).

    The full model learns with `WeightedBinaryCrossentropy(pos_weight)` and
    tracks the PR-AUC averaged over classes (`pr_auc`, close to mAP); the
    patch model with sparse categorical cross-entropy and accuracy.
    """
    full_model.compile(
        optimizer=_optimizer(optimizer, learning_rate, momentum),
        loss=WeightedBinaryCrossentropy([float(w) for w in pos_weight]),
        metrics=[keras.metrics.AUC(curve="PR", multi_label=True, num_labels=len(pos_weight), name="pr_auc")],
    )
    patch_model.compile(
        optimizer=_optimizer(optimizer, learning_rate if patch_learning_rate is None else patch_learning_rate, momentum),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return full_model, patch_model
