"""Model builders: frozen / fine-tuned / from-scratch backbones with a Dense 256 head, and per-modality CNNs.

Every model takes raw RGB images with values 0..255 and preprocesses them
itself, so a saved `.keras` file needs no other knowledge. Each model is
`extractor` (preprocessing + backbone, a nested model) -> `head` (a nested
model: Flatten or GAP -> Dense 256 relu -> Dropout -> softmax); keeping the
head separate lets the frozen model train it on cached features and share
those weights with the full model. Only built-in Keras layers are used.
"""

from __future__ import annotations

import keras

from hybridvision.common.backbones import EFFICIENTNET_LITE, build_backbone, preprocessing_layer
from hybridvision.common.optimizers import get_optimizer
from hybridvision.common.transfer import freeze, unfreeze_top

# Layers with weights unfrozen by default when fine-tuning (BatchNorm not
# counted): each backbone's top block; for EfficientNet-Lite 49, all of Lite0's
# (the top 49 of Lite1/2's 64): at 224 px it beat Lite0's top 20 on PACS photo ->
# art / cartoon / sketch (docs/results/cross_modal_settings.md).
TOP_BLOCK_LAYERS = {"vgg16": 3, "vgg16_bn": 3, "resnet50": 3, "inception_v3": 3, "small": 1, "from_scratch": 2,
                    **{name: 49 for name in EFFICIENTNET_LITE}}


def build_extractor(cfg, name_prefix: str = "") -> keras.Model:
    """Raw images -> `cfg.backbone`'s feature map (4D), loaded with `cfg.weights`."""
    shape = (cfg.image_size, cfg.image_size, 3)
    inputs = keras.Input(shape, name=f"{name_prefix}image")
    preprocess = preprocessing_layer(cfg.backbone, layer_name=f"{name_prefix}preprocess")
    base = build_backbone(cfg.backbone, shape, weights=cfg.weights, name_prefix=name_prefix or None)
    outputs = base(preprocess(inputs))
    return keras.Model(inputs, outputs, name=f"{name_prefix}extractor")


def backbone_of(extractor: keras.Model) -> keras.Model:
    """The backbone nested in an extractor built by `build_extractor`."""
    return next(layer for layer in extractor.layers if isinstance(layer, keras.Model))


def _pool(cfg, name):
    if cfg.pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=name)
    return keras.layers.Flatten(name=name)


def build_head(cfg, feature_shape, num_classes: int, pooled: bool = False) -> keras.Model:
    """Features -> (Flatten | GAP) -> Dense `cfg.dense_units` relu -> Dropout -> softmax."""
    inputs = keras.Input(tuple(feature_shape), name="features")
    x = inputs if pooled else _pool(cfg, "pool")(inputs)
    x = keras.layers.Dense(cfg.dense_units, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(cfg.dropout, name="dropout")(x)
    # float32 probabilities also under a mixed-precision policy.
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="head")


def build_model(cfg, num_classes: int, modalities=()):
    """The (uncompiled) classifier for `cfg.model`.

    frozen / finetune: a frozen extractor (BatchNorm in inference mode) ->
    head. scratch: a trainable extractor -> head. per_modality: inputs
    `[images, modality one-hot]`; one extractor per modality (frozen when
    pretrained weights are given, trained otherwise), each pooled to a
    vector; the one-hot picks the sample's own branch (a `Dot`, so only that
    branch gets gradients) and one shared head classifies it.

    Returns:
        `(model, extractor, head)`; `extractor` is None for per_modality.
    """
    shape = (cfg.image_size, cfg.image_size, 3)
    if cfg.model != "per_modality":
        extractor = build_extractor(cfg)
        if cfg.model in ("frozen", "finetune"):
            freeze(extractor)
        else:
            _set_batchnorm_momentum(extractor, cfg.bn_momentum)
        _keep_preprocessing_fixed(extractor)
        head = build_head(cfg, extractor.output.shape[1:], num_classes)
        inputs = keras.Input(shape, name="image")
        model = keras.Model(inputs, head(extractor(inputs)), name=f"cross_modal_{cfg.model}")
        return model, extractor, head
    if not modalities:
        raise ValueError("--model per_modality needs the list of modalities")
    images = keras.Input(shape, name="image")
    onehot = keras.Input((len(modalities),), name="modality")
    vectors = []
    for modality in modalities:
        branch = build_extractor(cfg, name_prefix=f"{modality}_")
        if str(cfg.weights).lower() != "none":
            freeze(branch)
        else:
            _set_batchnorm_momentum(branch, cfg.bn_momentum)
        _keep_preprocessing_fixed(branch)
        vector = _pool(cfg, f"{modality}_pool")(branch(images))
        vectors.append(keras.layers.Reshape((1, -1), name=f"{modality}_row")(vector))
    stacked = keras.layers.Concatenate(axis=1, name="branches")(vectors) if len(vectors) > 1 else vectors[0]
    chosen = keras.layers.Dot(axes=1, name="own_branch")([onehot, stacked])
    head = build_head(cfg, chosen.shape[1:], num_classes, pooled=True)
    model = keras.Model([images, onehot], head(chosen), name="cross_modal_per_modality")
    return model, None, head


def _set_batchnorm_momentum(model, momentum):
    # Keras's 0.99 leaves the moving statistics near their initial values
    # after the few hundred steps of a small dataset, so a net trained from
    # scratch predicts one class at inference; the layer reads the attribute
    # when called and get_config saves it.
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def _keep_preprocessing_fixed(extractor):
    for layer in extractor.layers:
        if layer.name.endswith("preprocess"):
            layer.trainable = False


def compile_model(model: keras.Model, cfg, learning_rate: float, num_classes: int) -> keras.Model:
    """Sparse categorical cross-entropy; accuracy, and top-5 accuracy with more than 5 classes."""
    metrics = ["accuracy"]
    if num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"))
    model.compile(optimizer=get_optimizer(cfg.optimizer, learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=metrics)
    return model


def prepare_finetuning(extractor: keras.Model, cfg) -> int:
    """Unfreeze the top block of the backbone (BatchNorm stays frozen); returns the layer count."""
    n_layers = cfg.finetune_layers or TOP_BLOCK_LAYERS[cfg.backbone]
    # Counted through the nested backbone; the preprocessing at the bottom stays fixed.
    unfreeze_top(extractor, n_layers, keep_batchnorm_frozen=True)
    return n_layers
