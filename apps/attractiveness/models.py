"""The three networks compared: plain baseline, hybrid (ShortFuse) and late fusion.

All three are built from the same baseline network, so at one seed they
start at the same function of the image:

- `baseline`: backbone -> global average pooling -> Dense(1, sigmoid) (more
  than two classes: Dense(classes, softmax)); with
  `--head fc4096` the thesis's VGG16-BN classifier instead: adaptive average
  pooling to 7x7 (torchvision's) -> flatten -> FC 4096 -> dropout 0.5 -> FC
  4096 -> dropout 0.5 -> Dense(1, sigmoid).
- `hybrid`: the baseline with the conv(s) at `positions` swapped for
  HybridConv2D by `hybridvision.common.transfer.hybridize` (W0 = the conv's kernel and
  bias, W_l = 0): its output equals the baseline's for every covariate
  vector until training moves W_l.
- `film` / `condconv`: the same, with FiLMConv2D (per-filter scale and
  shift from the covariates, identity at init) or CondConv2D (a kernel mixed
  from experts routed by the input and the covariates) in place of
  HybridConv2D (`hybridize(kind=...)`).
- `late_fusion`: the covariates concatenated to the pooled features before
  the Dense head, whose covariate rows start at 0 (also equal at step 0).

`build_coded_model` puts the covariates' coding in front (numbers
standardised, categories one-hot, missing values flagged:
`hybridvision.common.covariate_coding`), so the model takes each covariate's
raw value. Every model takes raw RGB images with values 0..255: its first layer does the
backbone's preprocessing (`hybridvision.common.backbones.with_preprocessing`, added after
the conv positions are counted and swapped, so they count the backbone's
convs only), so a saved `.keras` file needs no other knowledge.
"""

from __future__ import annotations

import keras
import numpy as np

from hybridvision.apps.attractiveness.config import CONDITIONED, HEADS  # noqa: F401 - also imported from here
from hybridvision.common import recipe
from hybridvision.common.backbones import build_backbone, with_preprocessing
from hybridvision.common.binary_macro_f1 import BinaryMacroF1
from hybridvision.common.covariate_coding import with_coding
from hybridvision.common.optimizers import get_optimizer

COVARIATES = "covariates"
# The default --covariate-lr-multiplier per model, chosen on the validation split of a real image + covariates
# table (docs/results/attractiveness_settings.md): at 1, Adam at the fine-tuning rate moves late fusion's
# covariate rows (from 0) too little to matter in a few epochs; the conditioned convolutions lost
# validation ROC AUC at 10 and 100.
COVARIATE_LR_MULTIPLIERS = {"late_fusion": 100.0}


def parse_positions(positions) -> list:
    """`["first", "3", "middle", "last"]` -> `["first", 3, "middle", "last"]` (1-based conv indices as ints).

    `middle` is the conv at half the count, `(count + 1) // 2` (1-based); it is
    resolved against the network by `resolve_positions`.
    """
    parsed = []
    for item in positions:
        text = str(item).strip().lower()
        if text in ("first", "middle", "last"):
            parsed.append(text)
        elif text.isdigit() and int(text) >= 1:
            parsed.append(int(text))
        else:
            raise ValueError(
                f"--hybrid-positions {item!r} is not valid; use first, middle, last or a 1-based conv index (e.g. 3)"
            )
    if not parsed:
        raise ValueError("--hybrid-positions is empty; give first, middle, last or a 1-based conv index")
    return parsed


def resolve_positions(positions, model: keras.Model) -> list:
    """`parse_positions` with `middle` turned into the 1-based index of `model`'s middle Conv2D."""
    parsed = parse_positions(positions)
    if "middle" in parsed:
        from hybridvision.common.transfer import _conv2d_layers  # the convs hybridize counts, in its order

        count = len(_conv2d_layers(model))
        parsed = [max(1, (count + 1) // 2) if p == "middle" else p for p in parsed]
    return parsed


FC_UNITS = 4096  # VGG16's classifier: two fully connected layers of 4096 units
FC_DROPOUT = 0.5  # and dropout 0.5 after each (torchvision's vgg16_bn)


def build_baseline(
    backbone: str, image_size: int, weights: str = "none", bn_momentum: float | None = 0.9, head_dropout: float = 0.0,
    head: str = "pool", num_classes: int = 2,
) -> keras.Model:
    """The plain network on preprocessed images: `backbone` -> head -> one sigmoid unit (two classes)
    or a softmax over `num_classes`.

    `head` "pool": global average pooling -> dropout `head_dropout`; "fc4096":
    the thesis's VGG16-BN classifier, adaptive average pooling to 7x7 ->
    flatten -> (FC 4096 -> ReLU -> dropout 0.5) x 2 (`head_dropout` unused).

    `bn_momentum` (if not None) is set on every BatchNormalization: with
    Keras's default 0.99 the moving statistics lag far behind the weights in
    a run of a few hundred steps and validation collapses to one class;
    0.9 is torchvision's value (`vgg16_bn` already uses it).
    """
    if head not in HEADS:
        raise ValueError(f"--head {head!r} is not valid; choose one of: {', '.join(HEADS)}")
    base = build_backbone(backbone, (image_size, image_size, 3), weights=weights,
                          pooling="avg" if head == "pool" else None)
    for layer in base.layers:
        if bn_momentum is not None and isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(bn_momentum)
    # Built on the backbone's own graph (not nested), so hybridize sees every Conv2D.
    features = base.output
    if head == "fc4096":
        features = keras.layers.AdaptiveAveragePooling2D(7, name="head_pool")(features)
        features = keras.layers.Flatten(name="head_flatten")(features)
        for k in (1, 2):
            features = keras.layers.Dense(FC_UNITS, activation="relu", name=f"head_fc{k}")(features)
            features = keras.layers.Dropout(FC_DROPOUT, name=f"head_fc{k}_dropout")(features)
    elif head_dropout:
        features = keras.layers.Dropout(head_dropout, name="head_dropout")(features)
    output = _output_layer(num_classes, "target")(features)
    return keras.Model(base.input, output, name=f"baseline_{backbone}")


def _output_layer(num_classes: int, name: str) -> keras.layers.Dense:
    """One sigmoid unit for two classes, else a softmax over the classes."""
    if num_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid", name=name, dtype="float32")
    return keras.layers.Dense(num_classes, activation="softmax", name=name, dtype="float32")


def build_late_fusion(baseline: keras.Model, num_covariates: int) -> keras.Model:
    """Covariates concatenated to the baseline's pooled features; starts equal to the baseline."""
    covariates = keras.Input((num_covariates,), name=COVARIATES)
    head = baseline.get_layer("target")
    joined = keras.layers.Concatenate(name="fusion")([head.input, covariates])
    kernel, bias = head.get_weights()
    fused_head = keras.layers.Dense(kernel.shape[1], activation=head.activation, name="target_fused", dtype="float32")
    output = fused_head(joined)
    # Zero rows for the covariates: the same function as the baseline at step 0.
    fused_head.set_weights([np.concatenate([kernel, np.zeros((num_covariates, kernel.shape[1]), kernel.dtype)]), bias])
    return keras.Model([baseline.input, covariates], output, name=baseline.name.replace("baseline", "late_fusion"))


def build_model(config, num_covariates: int, num_classes: int = 2) -> keras.Model:
    """The `config.model` network (uncompiled) on 0..255 images and the coded covariate vector
    (input `covariates`); seed first for matched initialisations."""
    return with_preprocessing(_build_network(config, num_covariates, num_classes), config.backbone)


def build_coded_model(config, coding, num_classes: int = 2) -> keras.Model:
    """`build_model` taking the raw covariates: `{"image": images, <one input per covariate>}` (the baseline:
    the images alone), the covariates coded inside (`hybridvision.common.covariate_coding.with_coding`)."""
    if config.model == "baseline" or coding is None:
        return build_model(config, 0, num_classes)
    return with_coding(build_model(config, coding.width, num_classes), coding, COVARIATES,
                       scale=covariate_lr_multiplier(config))


def covariate_lr_multiplier(config) -> float:
    """`--covariate-lr-multiplier`, or its default for `config.model` (resolved here, where the model is
    known: tune and study change the model of a config after it was filled)."""
    if config.covariate_lr_multiplier is not None:
        return config.covariate_lr_multiplier
    return COVARIATE_LR_MULTIPLIERS.get(config.model, 1.0)


def _build_network(config, num_covariates: int, num_classes: int = 2) -> keras.Model:
    baseline = build_baseline(config.backbone, config.image_size, config.weights, config.bn_momentum,
                              config.head_dropout, config.head, num_classes)
    if config.model == "baseline":
        return baseline
    if num_covariates < 1:
        raise ValueError(f"--model {config.model} needs at least one covariate; pass --covariates, e.g. Male")
    if config.model == "late_fusion":
        return build_late_fusion(baseline, num_covariates)
    if config.model in CONDITIONED:
        from hybridvision.common.transfer import hybridize

        # hybrid: HybridConv2D; film: FiLMConv2D; condconv: CondConv2D routed by input and covariates.
        return hybridize(baseline, resolve_positions(config.hybrid_positions, baseline), num_covariates,
                         covariate_input_name=COVARIATES, kind=config.model)
    raise ValueError(f"--model {config.model!r} is not valid; choose baseline, hybrid, late_fusion, film or condconv")


def compile_model(model: keras.Model, config, learning_rate: float | None = None, num_classes: int = 2) -> keras.Model:
    """Adam (or `config.optimizer`); two classes: binary cross-entropy, accuracy, macro F1 and ROC AUC;
    more: categorical cross-entropy on one-hot targets, accuracy, macro F1 and (micro) ROC AUC."""
    if num_classes == 2:
        loss = "binary_crossentropy"
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy"), BinaryMacroF1(name="f1_macro")]
    else:
        loss = "categorical_crossentropy"
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.F1Score("macro", name="f1_macro")]
    model.compile(
        optimizer=get_optimizer(config.optimizer, learning_rate or config.learning_rate),
        loss=recipe.loss(loss, config), metrics=[*metrics, keras.metrics.AUC(name="auc")],
    )
    return model
