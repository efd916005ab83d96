"""Settings of the attractiveness app (the covariate app); defaults are the best known ones (the original report's, where it has them).

The app reads CelebA's official layout or any table of images and columns
(`labels.csv` in `--data-dir`, or `--labels FILE`): see
`hybridvision.common.data.image_table`.
"""

from __future__ import annotations

import dataclasses

from hybridvision.common.backbones import EFFICIENTNET_LITE, is_pretrained, resolve_image_size, resolve_weights
from hybridvision.common.config import TUNERS, AugmentOptions, TrainConfig, build_parser, option

MODELS = ("baseline", "hybrid", "late_fusion", "film", "condconv")
# Model kinds whose conv(s) at --hybrid-positions are swapped by hybridvision.common.transfer.hybridize(kind=...).
CONDITIONED = ("hybrid", "film", "condconv")
HEADS = ("pool", "fc4096")
# The study's models: <kind>_<position>, and its covariate assignments.
POSITIONS = ("first", "middle", "last")
STUDY_MODELS = ("baseline", "late_fusion", *(f"{kind}_{pos}" for kind in CONDITIONED for pos in POSITIONS))
DEFAULT_MODELS = ["baseline", "late_fusion", "hybrid_first", "hybrid_middle", "hybrid_last",
                  "film_first", "film_middle", "film_last", "condconv_last"]
CONTROLS = ("true", "shuffled", "mean", "zeros", "ones")
DEFAULT_CONTROLS = ["true", "shuffled", "mean"]
CLASS_WEIGHTS = ("none", "balanced")
CELEBA_TARGET = "Attractive"
CELEBA_COVARIATES = ["Male"]
CELEBA_COVARIATE_SETS = ["Male", "Smiling+Young+High_Cheekbones"]
TABLE_FILE = "labels.csv"
BACKBONES = (*EFFICIENTNET_LITE, "vgg16_bn", "small")
# Pretrained VGG16-BN trained best at 1e-5 (the report: the hybrid's 0.813 and the
# baseline's ~0.816 both at bs 32, lr 1e-5). A network from random weights
# (--weights none, or the small backbone) barely moves at 1e-5 in a few CPU
# epochs; 1e-3 is Adam's usual rate and trains it (checked on the CelebA sample).
# The pretrained EfficientNet-Lite fine-tunes at 1e-4 (on the CelebA sample,
# 1e-3 overfits within two epochs; 1e-5 is the thesis's VGG16-BN rate).
PRETRAINED_LEARNING_RATE = 1e-5
PRETRAINED_LEARNING_RATES = {name: 1e-4 for name in EFFICIENTNET_LITE}
SCRATCH_LEARNING_RATE = 1e-3
SCRATCH_IMAGE_SIZE = 128


@dataclasses.dataclass
class AttractivenessConfig(AugmentOptions, TrainConfig):
    """CelebA attribute prediction with covariates fused by HybridConv2D (ShortFuse)."""

    labels: str | None = option(
        None, f"a table (CSV) of images and columns: an image column, the target, the covariates, optionally "
        f"a split column; default {TABLE_FILE} in --data-dir when it is there, else --data-dir is read as CelebA's "
        "layout", group="data",
    )
    target: str | None = option(
        None, f"the column (CelebA: the attribute) to predict, two or more classes; default {CELEBA_TARGET} on "
        "CelebA (the original report's); a table needs it", group="data",
    )
    covariates: list[str] | None = option(
        None,
        "columns (CelebA: attributes) given to the model, numbers or categories; default Male on CelebA (the "
        "original report's; its three-covariate run used Smiling,Young,High_Cheekbones), every other column of a table",
        group="data",
    )
    image_column: str = option("image", "the table's column of image paths (relative to the table's folder)", group="data")
    categorical: list[str] = option([], "covariates read as categories (one-hot) whatever they hold", group="data")
    numeric: list[str] = option([], "covariates read as numbers (standardised); text in them is an error", group="data")
    max_unreadable: float = option(0.05, "share of a table's images that may be missing or unreadable (left out, "
                                   "logged) before the table is refused", min=0, max=1, group="data")
    class_weight: str = option("none", "none, or balanced: each class weighted by n / (classes x its count) in the "
                               "loss", choices=CLASS_WEIGHTS, group="training")
    model: str = option(
        "hybrid",
        "baseline: the plain network; hybrid: its conv(s) at --hybrid-positions replaced by "
        "HybridConv2D; late_fusion: covariates concatenated after the feature extractor; film / condconv: "
        "the conv(s) at --hybrid-positions replaced by FiLMConv2D / CondConv2D",
        choices=MODELS, group="model",
    )
    backbone: str = option(
        "efficientnet_lite0",
        "efficientnet_lite0|1|2 (ImageNet weights offline, BatchNorm throughout), vgg16_bn (the thesis's net; "
        "Keras downloads its VGG16 weights) or small (a CPU-sized VGG-style net with BN, no pretrained weights)",
        choices=BACKBONES, group="model",
    )
    hybrid_positions: list[str] = option(
        ["last"],
        "conv(s) to hybridise (hybrid, film, condconv): first, middle, last or a 1-based index, several comma-separated "
        "(in the original report last was best: accuracy 0.821, first 0.813, 3rd 0.811)", group="model",
    )
    image_size: int | None = option(
        None,
        "images are resized to image_size x image_size; default with pretrained weights the backbone's ImageNet "
        "resolution (efficientnet_lite0 224, lite1 240, lite2 260, vgg16_bn 224; on 89x109 CelebA "
        f"faces 224 px beat 128 and 160 px), else {SCRATCH_IMAGE_SIZE}",
        min=1,
    )
    bn_momentum: float = option(
        0.9, "BatchNorm moving-average momentum (torchvision's 0.9; Keras's 0.99 lags in short runs)", min=0, below=1, group="model"
    )
    optimizer: str = option("adam", "optimizer: adam (the original report's), sgd, rmsprop, adabound or amsbound", group="training")
    learning_rate: float | None = option(
        None,
        f"learning rate; default with pretrained weights 1e-4 for efficientnet_lite, "
        f"{PRETRAINED_LEARNING_RATE:g} for vgg16_bn (the original report's); {SCRATCH_LEARNING_RATE:g} from random weights",
    )
    covariate_lr_multiplier: float | None = option(
        None, "the covariates' weights (late fusion's rows of the head, the covariate kernels of hybrid / film / "
        "condconv) learn this many times faster than the rest: the coded covariates are multiplied by it inside "
        "the model, which with Adam multiplies those weights' effective learning rate (they start at 0, and Adam "
        "moves a weight about one learning rate a step); default 100 for late_fusion, 1 for hybrid / film / "
        "condconv (chosen on a validation split: see the settings notes)", above=0, group="training",
    )
    epochs: int = option(
        5, "epochs; the best checkpoint by --monitor is kept (the original report: 1 epoch over the 162,770 training "
        "images of full CelebA; a few thousand faces need several)"
    )
    batch_size: int = option(32, "batch size (32 was the best of 8-64 in the original report)")
    weights: str | None = option(
        None, "backbone weights: imagenet, none, or a .weights.h5 path; default imagenet where the backbone "
        "has it, none for small"
    )
    seeds: list[int] = option([], "run the configuration once per seed (e.g. 0,1,2) and write mean and std", min=0, group="training")
    split_seed: int = option(0, "seed of the fallback split (kept fixed across --seeds: one shared test set)", min=0, group="data")
    val_fraction: float = option(0.15, "fallback split: share of the train rows used for validation", above=0, below=1, group="data")
    test_fraction: float = option(0.15, "fallback split: share of the train rows used for test", min=0, below=1, group="data")
    flip: bool = option(True, "random left-right flips of the training faces (the label does not change)", group="data")
    # Aligned faces: the affine knobs are milder than ImageDataGenerator's classic ones.
    rotation_range: float = option(10.0)
    width_shift_range: float = option(0.05)
    height_shift_range: float = option(0.05)
    shear_range: float = option(0.0)
    zoom_range: float = option(0.1)
    head_dropout: float = option(0.3, "dropout between the pooled features and the sigmoid unit (--head pool)", min=0, below=1, group="model")
    head: str = option(
        "pool", "classifier head: pool (global average pooling, dropout, the sigmoid unit) or fc4096 (the thesis's "
        "VGG16-BN classifier: 7x7 adaptive average pooling, FC 4096 x 2 with dropout 0.5, then the sigmoid unit; "
        "about 100M parameters on a 512-channel 7x7 map)", choices=HEADS, group="model",
    )
    cache: bool = option(False, "keep decoded images in memory (fine for samples; full CelebA needs GBs)", group="data")
    monitor: str | None = option(
        None, "validation metric choosing the best checkpoint; default val_accuracy on CelebA, val_auc on a table "
        "(it means something on imbalanced classes)", group="training",
    )

    def table_file(self):
        """The table to read (`--labels`, or labels.csv in --data-dir), or None for CelebA's layout."""
        from pathlib import Path

        if self.labels:
            return Path(self.labels)
        if self.data_dir and (Path(self.data_dir) / TABLE_FILE).is_file():
            return Path(self.data_dir) / TABLE_FILE
        return None

    def fill_automatic(self) -> None:
        """Weights by backbone, then the image size and the learning rate by weights."""
        table = self.table_file() is not None
        if not table:
            self.target = self.target or CELEBA_TARGET
            self.covariates = list(CELEBA_COVARIATES) if self.covariates is None else self.covariates
        if self.monitor is None:
            self.monitor = "val_auc" if table else "val_accuracy"
        self.weights = resolve_weights(self.backbone, self.weights)
        self.image_size = resolve_image_size(self.backbone, self.weights, self.image_size, SCRATCH_IMAGE_SIZE)
        if self.learning_rate is None:
            if is_pretrained(self.weights):
                self.learning_rate = PRETRAINED_LEARNING_RATES.get(self.backbone, PRETRAINED_LEARNING_RATE)
            else:
                self.learning_rate = SCRATCH_LEARNING_RATE


@dataclasses.dataclass
class TuneConfig(AttractivenessConfig):
    """The app's config plus the shared search grid."""

    run_dir: str | None = option("runs/attractiveness_tune", "folder of the searches, final runs and tables")
    models: list[str] = option(["baseline", "hybrid", "late_fusion"], "model kinds to search and compare",
                               choices=MODELS)
    learning_rates: list[float] = option([1e-4, 1e-5], "learning rates, shared by every model kind", above=0, space=True)
    batch_sizes: list[int] = option([16, 32, 64], "batch sizes, shared by every model kind (the original report searched 8-64)", min=1)
    position_sets: list[str] = option(["first", "3", "last"], "hybrid conv position sets; + joins several (first+last)")
    covariate_sets: list[str] | None = option(
        None, "covariate sets, + joins columns; default Male and Smiling+Young+High_Cheekbones on CelebA, the "
        "table's covariates (--covariates) as one set on a table")
    tuner: str = option("grid", "KerasTuner search", choices=TUNERS)
    max_trials: int = option(12, "trials per model kind", min=1)
    seeds: list[int] = option([0, 1, 2], "seeds of the final retraining of each kind's best setting", min=0)


@dataclasses.dataclass
class StudyConfig(AttractivenessConfig):
    """The app's config plus the study's grid."""

    run_dir: str | None = option("runs/attractiveness_study", "folder of the cells' runs and the tables")
    models: list[str] = option(list(DEFAULT_MODELS), "models: baseline, late_fusion, hybrid|film|condconv_"
                               "first|middle|last", choices=STUDY_MODELS)
    covariate_sets: list[str] | None = option(
        None, "covariate sets, + joins columns; default Male and Smiling+Young+High_Cheekbones on CelebA, the "
        "table's covariates (--covariates) as one set on a table")
    controls: list[str] = option(
        list(DEFAULT_CONTROLS), "covariate assignments of the fusion models: true, shuffled (rows permuted), mean "
        "(numbers at their training mean, categories at their most frequent value), zeros / ones (numeric covariates "
        "only)", choices=CONTROLS)
    seeds: list[int] = option([0, 1, 2, 3, 4], "seeds of every cell (one fixed split: --split-seed)", min=0)


# The parsers of the app's tools are built here, not in the tools' modules: those import Keras
# at the top, and `hybridvision attractiveness <tool> --help` should answer without it.
def train_parser():
    return build_parser(
        AttractivenessConfig,
        "Train one classifier of images with covariates: baseline, late fusion, hybrid (ShortFuse), FiLM or CondConv.",
        prog="hybridvision attractiveness train",
    )


def tune_parser():
    return build_parser(
        TuneConfig,
        "Matched sweeps: baseline, late fusion and hybrid searched over the same grid, then compared.",
        prog="hybridvision attractiveness tune",
    )


def study_parser():
    return build_parser(
        StudyConfig,
        "The covariate-conditioning study: baseline vs late fusion, hybrid, FiLM and CondConv, with controls.",
        prog="hybridvision attractiveness study",
    )


PREDICT_DESCRIPTION = "Label images with a saved attractiveness model: a CSV of labels and probabilities from images and their covariates, resumable."


def predict_parser():
    from hybridvision.common.predict_flags import predict_parser as build

    return build("attractiveness", PREDICT_DESCRIPTION, columns="file", covariates=True, target=True)


EXPLAIN_DESCRIPTION = "Grad-CAM of a saved attractiveness model on an image you name: the image beside its heat map, in a PNG."


def explain_parser():
    from hybridvision.common.predict_flags import explain_parser as build

    return build("attractiveness", EXPLAIN_DESCRIPTION, covariates=True, target=True)
