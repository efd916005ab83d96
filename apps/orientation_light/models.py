"""Model builders: the report's FromScratch CNN and the InceptionV3 / ResNet50 transfer models.

Every model takes raw RGB images with values 0..255 and does its backbone's
preprocessing itself, so a saved `.keras` file labels images with no other
knowledge (see `hybridvision.apps.orientation_light.predict`). Only built-in Keras layers
are used, so loading needs no custom objects.
"""

from __future__ import annotations

import keras

from hybridvision.common.backbones import build_backbone, preprocessing_layer
from hybridvision.common.optimizers import get_optimizer
from hybridvision.common.transfer import freeze, unfreeze_top


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested backbone model inside a model built by `build_model`."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"model '{model.name}' has no nested backbone")


def build_model(cfg, num_classes: int) -> keras.Model:
    """The (uncompiled) classifier for `cfg.model`; transfer bases come frozen.

    from_scratch: the `from_scratch` backbone (VGG-style, BatchNorm after the
    activations with momentum `cfg.bn_momentum`, dropout after each pooling at
    `cfg.conv_dropout` + 0.05 per block) -> Flatten -> Dense(`cfg.dense_units`) -> Dropout(`cfg.head_dropout`)
    -> softmax. Transfer: frozen base (BatchNorm in inference mode; with
    `cfg.batchnorm_fix` "off" its BatchNorm layers trainable, in training mode,
    see `release_batchnorm`) -> GAP -> Dense 512 -> Dense 128 ->
    Dropout(`cfg.head_dropout`) -> softmax.
    """
    shape = (cfg.image_size, cfg.image_size, 3)
    inputs = keras.Input(shape, name="image")
    x = preprocessing_layer(cfg.model)(inputs)
    base = build_backbone(cfg.model, shape, weights=cfg.weights)
    if cfg.model == "from_scratch":
        drops = [layer for layer in base.layers if isinstance(layer, keras.layers.Dropout)]
        for block, layer in enumerate(drops):
            # Dropout reads its rate when called, so changing it before the
            # first fit (and before saving: get_config reads it too) is enough.
            layer.rate = min(0.9, cfg.conv_dropout + 0.05 * block)
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                # Like the rates above: read when called and by get_config.
                layer.momentum = cfg.bn_momentum
        x = keras.layers.Flatten(name="flatten")(base(x))
        x = keras.layers.Dense(cfg.dense_units, activation="relu", name="dense")(x)
    else:
        freeze(base)
        if cfg.batchnorm_fix == "off":
            release_batchnorm(base)
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base(x))
        x = keras.layers.Dense(512, activation="relu", name="dense_512")(x)
        x = keras.layers.Dense(128, activation="relu", name="dense_128")(x)
    x = keras.layers.Dropout(cfg.head_dropout, name="head_dropout")(x)
    # float32 probabilities also under a mixed-precision policy.
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"{cfg.task}_{cfg.model}")


def release_batchnorm(base: keras.Model) -> keras.Model:
    """The report's setting without its patch: every other layer of `base` stays frozen, its
    BatchNormalization layers become trainable, so in training they normalise with the batch's
    statistics and update their moving mean and variance (the old Keras's "frozen" BatchNorm)."""
    base.trainable = True  # recurses; then every leaf layer but BatchNorm is frozen again
    for layer in base._flatten_layers(include_self=False, recursive=True):
        if not list(layer._flatten_layers(include_self=False)):
            layer.trainable = isinstance(layer, keras.layers.BatchNormalization)
    return base


def compile_model(model: keras.Model, cfg, learning_rate: float | None = None) -> keras.Model:
    """Compile with `cfg.optimizer` (AdaBound with `cfg.final_lr`) and sparse categorical cross-entropy."""
    rate = cfg.learning_rate if learning_rate is None else learning_rate
    extra = {"final_lr": cfg.final_lr} if cfg.optimizer == "adabound" else {}
    model.compile(optimizer=get_optimizer(cfg.optimizer, rate, **extra), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def prepare_finetuning(model: keras.Model, cfg, learning_rate: float) -> keras.Model:
    """Unfreeze the top `cfg.finetune_layers` layers of the base (BatchNorm stays frozen with
    `cfg.batchnorm_fix` on) and recompile."""
    unfreeze_top(backbone_of(model), cfg.finetune_layers, keep_batchnorm_frozen=cfg.batchnorm_fix == "on")
    return compile_model(model, cfg, learning_rate * cfg.finetune_learning_rate_factor)
