"""Settings of the patch-training curriculum; defaults are the original report's, CPU-sized where needed."""

from __future__ import annotations

import dataclasses

from hybridvision.common.backbones import BACKBONES, is_pretrained, resolve_weights
from hybridvision.common.config import TUNERS, TrainConfig, build_parser, option
from hybridvision.common.data.names import PATCH_SHAPES

# The optimizers of hybridvision.common.optimizers (listed here: that module imports Keras).
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adabound", "amsbound")

PATCH_POOLING = ("adaptive", "spp")
# The report: SGD lr 1e-3 momentum 0.9 for the pretrained VGG16, on the whole
# of VOC (~360 steps an epoch). On a small sample (the shared 78 train images:
# 5 steps an epoch) the new, randomly initialised heads do not learn at 1e-3:
# Lite0 fine-tuned 6 epochs at 160 px scored val mAP 0.243 at 1e-3 against
# 0.408 at 1e-2 (chance 0.258), and the head alone on frozen Lite0 features
# 0.290 at 1e-3 against 0.450 at 1e-2 (5-fold, 30 steps), measured. The small
# backbone starts from random weights; it barely moves at 1e-3 either.
PRETRAINED_LEARNING_RATE = 1e-2
SCRATCH_LEARNING_RATE = 1e-2
# The patch phase's learning rate, as a factor of --learning-rate. The patch
# head (4x4 cells x 1280 channels -> 512 -> 512 -> 20, random) sends 7x the
# multi-label head's gradient into a pretrained Lite0 (global norm 49.8
# against 6.6 on one batch at 128 px, 22.1 against 3.3 at 224 px, measured
# at initialisation), so at the same learning rate it wrecks the ImageNet
# features: a logistic-regression probe of the frozen features (25-fold CV
# over the 97 shared images) scored mAP 0.536 before, 0.334 after two patch
# epochs at 1e-2, 0.550 after two at 1e-3, and 0.547 after two whole-image
# epochs at 1e-2 (measured in the patch_training settings study). A tenth evens the
# two phases' steps on the backbone. A backbone from random weights has no
# features to keep: its patch phase runs at the full learning rate.
PRETRAINED_PATCH_LR_FACTOR = 0.1
SCRATCH_PATCH_LR_FACTOR = 1.0


@dataclasses.dataclass
class PatchTrainingConfig(TrainConfig):
    """Pascal VOC multi-label classification with a patch pre-training curriculum."""

    backbone: str = option(
        "efficientnet_lite0", "backbone: efficientnet_lite0|1|2 have ImageNet weights offline (the report used "
        "vgg16, whose weights Keras downloads); small is a CPU-sized VGG-style net", choices=BACKBONES, group="model"
    )
    weights: str | None = option(
        None, "backbone weights: imagenet, none or a .weights.h5 path; default imagenet "
        "for the pretrained backbones, none for small/from_scratch"
    )
    switch_epoch: int = option(
        5, "epochs before this one train the patch head on patches, the rest the multi-label head "
        "on full images; 0 = baseline (the original report's best trade-off: 5 of 10)", min=0, group="training"
    )
    epochs: int = option(10, "total epochs, patch and full together (10 as in the original report)")
    batch_size: int = option(16, "batch size (16 as in the original report; 8 gave more recall but took 2x the time)")
    learning_rate: float | None = option(
        None, f"learning rate; default {PRETRAINED_LEARNING_RATE:g} with pretrained weights "
        f"(the original report used 1e-3 on the whole of VOC; too slow for a small sample's few steps), "
        f"{SCRATCH_LEARNING_RATE:g} for a backbone from random weights"
    )
    patch_lr_factor: float | None = option(
        None, f"the patch phase learns at --learning-rate times this; default {PRETRAINED_PATCH_LR_FACTOR:g} with "
        f"pretrained weights (the random patch head's gradients would otherwise wreck them; the original report used "
        f"one learning rate for both phases), {SCRATCH_PATCH_LR_FACTOR:g} for a backbone from random weights", above=0, group="training"
    )
    optimizer: str = option("sgd", "optimizer (SGD with momentum 0.9 as in the original report)", choices=OPTIMIZERS, group="training")
    momentum: float = option(0.9, "SGD momentum (0.9 as in the original report)", min=0, below=1, group="training")
    image_size: int = option(224, "full images (and square patches) are resized to this square (VGG16's 224); the longest side of a kept-shape patch")
    min_patch: int = option(64, "patches are the boxes of at least this many pixels a side (64 as in the original report)", min=1, group="data")
    patch_pooling: str = option(
        "adaptive", "patch head pooling: adaptive (average to 4x4, as in the original report) or spp "
        "(max-pooling pyramid of 1x1, 2x2 and 4x4)", choices=PATCH_POOLING, group="model"
    )
    patch_shape: str = option(
        "square", "patches: square (resized to --image-size squared, as the report) or keep (own aspect "
        "ratio and size, longest side at most --image-size, sides rounded to --patch-bucket; "
        "batches of one size bucket; the backbone takes any size)", choices=PATCH_SHAPES, group="data"
    )
    patch_bucket: int = option(
        32, "with --patch-shape keep: patch sides are multiples of this (32 = the backbone's stride), "
        "at least one step and at most --image-size", min=1, group="data"
    )
    patch_hidden: int = option(512, "units of the patch head's two hidden dense layers", min=1, group="model")
    dropout: float = option(0.5, "dropout before the dense layers of both heads", min=0, below=1, group="model")
    max_pos_weight: float = option(50.0, "clip of the per-class positive weights (negatives / positives)", above=0, group="training")
    threshold: float = option(0.5, "a class is predicted when its probability reaches this", min=0, max=1, group="model")
    on_bad_annotation: str = option(
        "skip", "bad XML, unknown class or box outside the image: skip it (logged) or fail", choices=("skip", "fail"), group="data"
    )
    exclude_difficult: bool = option(False, "leave objects marked difficult out of labels and patches", group="data")
    val_fraction: float = option(0.2, "without ImageSets/Main/val.txt: share of the train ids held out (seeded)", above=0, below=1, group="data")
    augment: bool = option(True, "random horizontal flips of training images and patches", group="data")
    cache: bool = option(False, "keep decoded, resized images and patches in memory", group="data")
    patch_cache: str | None = option(None, "folder of the cached patch crops (default .cache/voc_patches)", group="data")

    def fill_automatic(self) -> None:
        """Weights by backbone, the learning rates by weights; the switch epoch within the epochs."""
        self.weights = resolve_weights(self.backbone, self.weights)
        pretrained = is_pretrained(self.weights)
        if self.learning_rate is None:
            self.learning_rate = PRETRAINED_LEARNING_RATE if pretrained else SCRATCH_LEARNING_RATE
        if self.patch_lr_factor is None:
            self.patch_lr_factor = PRETRAINED_PATCH_LR_FACTOR if pretrained else SCRATCH_PATCH_LR_FACTOR
        self.check_switch_epoch()

    def check_switch_epoch(self) -> None:
        """--switch-epoch within 0..--epochs."""
        if not 0 <= self.switch_epoch <= self.epochs:
            raise ValueError(
                f"--switch-epoch {self.switch_epoch} is outside 0..--epochs {self.epochs}; "
                "use 0 for the baseline and at most the number of epochs"
            )


@dataclasses.dataclass
class TuneConfig(PatchTrainingConfig):
    """The train config (the fixed settings of every trial) plus the search space and the tuner."""

    run_dir: str | None = option("runs/patch_training_tune", "folder of the searches (one subfolder per --project)")
    project: str = option("ablation", "name of this search inside --run-dir (a new name starts a new search)")
    tuner: str = option("grid", "KerasTuner search: grid (every combination), random or hyperband", choices=TUNERS)
    max_trials: int = option(9, "trials at most (grid and random)", min=1)
    learning_rates: list[float] = option([1e-4, 1e-3, 1e-2], "learning rates to try (the report's 1e-4, 1e-3, 1e-2)", above=0, space=True)
    batch_sizes: list[int] = option([8, 16, 32], "batch sizes to try (the report's 8, 16, 32)", min=1)
    best_config: str | None = option(None, "where the best config goes; default <run-dir>/<project>/best_config.yaml")


@dataclasses.dataclass
class SweepConfig(PatchTrainingConfig):
    """The curriculum's settings plus the switch epochs to sweep and the output folder."""

    switch_epochs: list[int] = option([0, 2, 5, 7, 10], "switch epochs to compare (the original report swept 0..10; 0 = baseline)", min=0)
    full_epochs: int | None = option(
        None, "whole-image epochs after the switch, the same for every K (K then trains K + this many epochs in "
        "all, so the K differ only by their patch epochs); default: --epochs in all for every K, the report's fixed "
        "budget, where a larger K leaves fewer whole-image epochs", min=1
    )
    out: str = option("runs/patch_training_sweep", "folder of sweep.csv, sweep.md, the plots and one run per K")

    def check_switch_epoch(self) -> None:
        """--switch-epoch is not used: each run takes one of --switch-epochs (checked by `sweep`)."""


# The parsers of the app's tools are built here, not in the tools' modules: those import Keras
# at the top, and `hybridvision patch_training <tool> --help` should answer without it.
def train_parser():
    return build_parser(
        PatchTrainingConfig,
        "Train the VOC multi-label classifier with a patch pre-training curriculum.",
        prog="hybridvision patch_training train",
    )


def tune_parser():
    return build_parser(
        TuneConfig,
        "The report's ablations (learning rate, batch size) of the patch curriculum, through the shared KerasTuner helpers.",
        prog="hybridvision patch_training tune",
    )


def sweep_parser():
    return build_parser(
        SweepConfig,
        "Sweep the switch epoch of the patch curriculum and write the report's figures.",
        prog="hybridvision patch_training sweep",
    )


PREDICT_DESCRIPTION = "Label images with a saved patch_training model: a CSV of multi-labels and per-class probabilities, resumable."


def predict_parser():
    from hybridvision.common.predict_flags import predict_parser as build

    return build("patch_training", PREDICT_DESCRIPTION, thresholds=True)


EXPLAIN_DESCRIPTION = "Grad-CAM of a saved patch_training model on an image you name: the image beside its heat map, in a PNG."


def explain_parser():
    from hybridvision.common.predict_flags import explain_parser as build

    return build("patch_training", EXPLAIN_DESCRIPTION)
