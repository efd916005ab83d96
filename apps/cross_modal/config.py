"""Settings of the cross_modal app; defaults are the original report's, CPU-sized where it is silent."""

from __future__ import annotations

import argparse
import dataclasses

from hybridvision.common.backbones import BACKBONES, EFFICIENTNET_LITE, resolve_image_size, resolve_weights
from hybridvision.common.config import TUNERS, AugmentOptions, OneLineErrorParser, TrainConfig, build_parser, option

MODELS = ("frozen", "finetune", "scratch", "per_modality")
PROTOCOLS = ("all", "from_source", "leave_one_out", "domainbed")
DEFAULT_SPLIT = "70,20,10"
OPTIMIZERS = ("rmsprop", "adam", "sgd", "adabound")
# The report trained its head on a frozen VGG16 with RMSprop at 2e-5 (a
# Flatten -> Dense 256 head); the pooled Lite0 head learns in a few epochs at
# 1e-3 (2e-5 left it at 0.38 / 0.35 / 0.21 on PACS art / cartoon / sketch after
# 10 epochs, measured). The models trained from random weights need 1e-3 too.
DEFAULT_LEARNING_RATES = {"frozen": 1e-3, "finetune": 1e-3, "scratch": 1e-3, "per_modality": 1e-3}
# DomainBed's share of each training domain held out for model selection (its --holdout_fraction).
DOMAINBED_HOLDOUT = 0.2
# The report's input size, kept for networks from random weights (pretrained ones get their ImageNet size).
SCRATCH_IMAGE_SIZE = 150
# The tuner's named augmentation settings (train config fields); "report" is the report's ImageDataGenerator alone.
AUGMENTATIONS = {
    "none": {"augment": False},
    "report": {"augment": True, "grayscale": 0.0, "color_jitter": 0.0, "edge_views": 0.0},
    "report_color": {"augment": True, "grayscale": 0.5, "color_jitter": 0.3, "edge_views": 0.0},
    "report_color_edges": {"augment": True, "grayscale": 0.5, "color_jitter": 0.3, "edge_views": 0.3},
}
MIN_IMAGE_SIZE = {"vgg16": 32, "vgg16_bn": 32, "resnet50": 32, "inception_v3": 75, "small": 16, "from_scratch": 16,
                  **{name: 32 for name in EFFICIENTNET_LITE}}


@dataclasses.dataclass
class CrossModalConfig(AugmentOptions, TrainConfig):
    """Scene / object classes across modalities (photos, clip art, sketches)."""

    model: str = option(
        "finetune",
        "frozen: fixed backbone -> Flatten/GAP -> Dense 256 -> softmax (the report's feature extraction); "
        "finetune: the same, then the top block unfrozen (BatchNorm stays frozen); scratch: no pretrained "
        "weights, all trained; per_modality: one CNN per modality, a shared classifier",
        choices=MODELS, group="model",
    )
    backbone: str = option(
        "efficientnet_lite0", "convolutional base: efficientnet_lite0|1|2 have ImageNet weights offline (the "
        "report used vgg16, whose weights Keras downloads); small = CPU-sized, no pretrained weights",
        choices=BACKBONES, group="model",
    )
    weights: str | None = option(
        None, "backbone weights: imagenet, none, or a .weights.h5 path (e.g. converted Places365 VGG16); default "
        "imagenet where the backbone has it, none for small/from_scratch; --model scratch always uses none"
    )
    protocol: str = option(
        "all",
        "all: one network on all modalities (the report's 'sequential'); from_source: train on --source "
        "only, test on every modality; leave_one_out: per modality, train on the others, test on it; domainbed: "
        "leave one domain out as DomainBed reports PACS: per held-out domain and seed (--seeds) one run folder, "
        "trained on 80%% of each other domain, its checkpoint chosen on their other 20%% (training-domain "
        "validation; the held-out domain is used only for the test, on all its images), then mean ± standard "
        "error over the seeds per held-out domain and their average",
        choices=PROTOCOLS, group="data",
    )
    seeds: list[int] = option([], "domainbed: the seeds (e.g. 0,1,2), one cell per held-out domain and seed, each "
                                  "its own run folder, read back when finished; none given: --seed alone", min=0, group="training")
    test_domains: list[str] = option([], "domainbed: the held-out domains, one cell each (none given: every modality)", group="data")
    source: list[str] = option(["photo"], "from_source: the training modality (several, comma-separated: one "
                                          "model each, the rows of the modality x modality table)", group="data")
    modalities: list[str] = option([], "modalities to read (default: every folder under --data-dir)", group="data")
    split: str = option(DEFAULT_SPLIT, "train,val,test shares per modality and class (70/20/10 as in the original report)", group="data")
    folds: int = option(0, "K-fold cross-validation with K >= 2 (test = each fold in turn; val from the rest "
                           "by --split's shares): mean and std; 0 = one --split", min=0, group="data")
    epochs: int = option(10, "epochs")
    batch_size: int = option(20, "batch size (20 as in the original report)")
    image_size: int | None = option(
        None, "images are resized to image_size x image_size; default with pretrained weights the backbone's "
        f"ImageNet resolution (efficientnet_lite0 224), else {SCRATCH_IMAGE_SIZE} (the original report's)", min=1
    )
    learning_rate: float | None = option(
        None, "learning rate; default 1e-3 for every model (the original report's frozen VGG16 head used 2e-5 with RMSprop; "
        "the pooled Lite0 head barely learns at 2e-5)"
    )
    optimizer: str = option("rmsprop", "optimizer (RMSprop as in the original report)", choices=OPTIMIZERS, group="training")
    pooling: str = option("avg", "how the feature map meets Dense 256: avg (global average pooling) or flatten "
                                 "(the report's, with VGG16)", choices=("flatten", "avg"), group="model")
    dense_units: int = option(256, "units of the hidden dense layer (256 as in the original report)", min=1, group="model")
    dropout: float = option(0.5, "dropout before the softmax", min=0, below=1, group="model")
    bn_momentum: float = option(
        0.9, "BatchNorm momentum of backbones trained from random weights (scratch, per_modality with --weights "
             "none); Keras's 0.99 is too slow for a few hundred steps", min=0, below=1, group="model"
    )
    cache_features: bool = option(
        True, "frozen phase: compute the backbone's features once (cached under <run-dir>/../feature_cache) "
              "and train the head on them; fast, but without augmentation in that phase", group="training"
    )
    finetune_layers: int = option(0, "finetune: layers with weights to unfreeze at the top of the base "
                                     "(BatchNorm not counted, stays frozen); 0 = the backbone's default (vgg16: its "
                                     "top block of 3 convs, efficientnet_lite: 49, all of Lite0's, small: 1)", min=0, group="training")
    finetune_epochs: int = option(8, "finetune: epochs of the fine-tuning phase", min=1, group="training")
    finetune_learning_rate_factor: float = option(0.1, "finetune: its learning rate = learning rate x this", above=0, group="training")
    # The other --augment knobs keep AugmentOptions' defaults, the report's ImageDataGenerator settings
    # (the report: rotation 40, shifts 0.2, shear 0.2, zoom 0.2, fill nearest).
    augment: bool = option(True, "ImageDataGenerator-style augmentation of the training images (on, as in the original report)")
    horizontal_flip: bool = option(True, "--augment: random left-right flips (on, as in the original report)", group="data")
    grayscale: float = option(
        0.5, "--augment: probability of turning a training image grey (keras RandomGrayscale); helps a "
        "photo-trained model on sketches, which have no colour", min=0, max=1, group="data"
    )
    color_jitter: float = option(
        0.3, "--augment: strength s of random colour changes (keras RandomColorJitter): brightness +-s/2 of the "
        "range, contrast x[1 - s, 1 + s], saturation and hue shifts; 0 = off", min=0, below=1, group="data"
    )
    edge_views: float = option(
        0.0, "--augment: probability of replacing a training image by its edge drawing (dark outlines on white, "
        "like a sketch; hybridvision.common.data.EdgeView)", min=0, max=1, group="data"
    )
    cache: bool = option(True, "keep decoded images in memory", group="data")
    monitor: str = option("val_loss", "validation metric choosing the best checkpoint (val_loss: on a small "
                                      "val split the accuracy ties at 1.0, and the first tied epoch wins)", group="training")

    def fill_automatic(self) -> None:
        """The learning rate by model, weights by backbone (none for scratch); the combinations checked."""
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LEARNING_RATES[self.model]
        self.weights = "none" if self.model == "scratch" else resolve_weights(self.backbone, self.weights)
        self.image_size = resolve_image_size(self.backbone, self.weights, self.image_size, SCRATCH_IMAGE_SIZE)
        if self.image_size < MIN_IMAGE_SIZE[self.backbone]:
            raise ValueError(f"--image-size {self.image_size} is too small for --backbone {self.backbone}; "
                             f"use at least {MIN_IMAGE_SIZE[self.backbone]}")
        if self.model == "per_modality" and self.protocol != "all":
            raise ValueError(f"--model per_modality needs every modality in training (one CNN each); use --protocol "
                             f"all, not {self.protocol}")
        if self.protocol == "from_source" and not self.source:
            raise ValueError("--protocol from_source needs --source, e.g. --source photo")
        if self.folds == 1:
            raise ValueError(f"--folds {self.folds}: use 0 (one --split) or K >= 2")
        if self.protocol != "domainbed" and (self.seeds or self.test_domains):
            raise ValueError(f"--{'seeds' if self.seeds else 'test-domains'} applies to --protocol domainbed only, "
                             f"not {self.protocol}")
        if self.protocol == "domainbed" and (self.folds or self.split != DEFAULT_SPLIT):
            raise ValueError(f"--protocol domainbed holds out {DOMAINBED_HOLDOUT:.0%} of each training domain for "
                             "validation and tests on the whole held-out domain; drop --folds and --split")


@dataclasses.dataclass
class TuneConfig(CrossModalConfig):
    """The train config (the fixed settings of every trial) plus the search space, the tuner and early stopping."""

    run_dir: str | None = option("runs/cross_modal_tune", "folder of the searches (one subfolder per --project)")
    project: str = option("search", "name of this search inside --run-dir (a new name starts a new search)")
    tuner: str = option("grid", "KerasTuner search: grid (every combination), random or hyperband", choices=TUNERS)
    max_trials: int = option(12, "trials at most (grid and random)", min=1)
    learning_rates: list[float] = option([1e-3, 3e-4], "learning rates to try (the fine-tuning phase runs at "
                                                        "this x --finetune-learning-rate-factor)", above=0, space=True)
    augmentations: list[str] = option(["report_color", "report"], "augmentation presets to try: "
                                      + ", ".join(AUGMENTATIONS), choices=tuple(AUGMENTATIONS))
    models: list[str] = option(["finetune", "frozen"], "backbone frozen or its top layers fine-tuned",
                               choices=("frozen", "finetune"))
    patience: int = option(3, "early stopping: a phase stops after this many epochs without a better val "
                              "accuracy, keeping its best epoch", min=1)
    best_config: str | None = option(None, "where the best config goes; default <run-dir>/<project>/best_config.yaml")


# The parsers of the app's tools are built here, not in the tools' modules: those import Keras
# at the top, and `hybridvision cross_modal <tool> --help` should answer without it.
def train_parser():
    return build_parser(
        CrossModalConfig,
        "Train and compare classifiers across modalities (photos, clip art, sketches).",
        prog="hybridvision cross_modal train",
    )


def tune_parser():
    return build_parser(
        TuneConfig,
        "Search cross_modal's learning rate, augmentation and frozen vs fine-tuned backbone, with early stopping.",
        prog="hybridvision cross_modal tune",
    )


def linear_probe_parser():
    return build_parser(
        CrossModalConfig,
        "Linear probe: a logistic regression on the frozen backbone's pooled features.",
        prog="hybridvision cross_modal linear_probe",
    )


def explain_parser() -> argparse.ArgumentParser:
    from hybridvision.common.predict_flags import add_explain_flags

    parser = OneLineErrorParser(
        prog="hybridvision cross_modal explain",
        description="Visual explanations of a cross_modal model: Grad-CAM of any image, or of a run's test images "
                    "with activations and first-layer filters.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", default=None, help="a .keras model: with --image, explain that image "
                        "(Grad-CAM PNG at --out, default <image>.gradcam.png)")
    add_explain_flags(parser, covariates=True, required=False)  # covariates: per_modality's one-hot modality
    parser.add_argument("--run-dir", default=None, help="without --model: a finished run (model.keras, config.json, "
                        "metrics.json); default: the newest under runs/cross_modal/")
    parser.add_argument("--data-dir", default=None, help="data to draw images from; default: the run's --data-dir")
    parser.add_argument("--images", type=int, default=3, help="test images per modality")
    parser.add_argument("--layer", default=None, help="Grad-CAM layer (default: the last convolution)")
    parser.add_argument("--activation-layers", default=None,
                        help="comma-separated layers whose activations to draw (default: first and last convolution)")
    parser.add_argument("--out", default=None, help="output folder (default: <run-dir>/explain); with --model: the PNG")
    parser.add_argument("--seed", type=int, default=0, help="which test images are drawn")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the final line")
    return parser


PREDICT_DESCRIPTION = "Label images with a saved cross_modal model: a CSV of labels and probabilities, resumable."


def predict_parser():
    from hybridvision.common.predict_flags import predict_parser as build

    return build("cross_modal", PREDICT_DESCRIPTION, covariates=True)  # per_modality models: the modality columns
