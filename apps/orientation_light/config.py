"""Settings of the orientation_light app; defaults are the original report's best known ones."""

from __future__ import annotations

import argparse
import dataclasses

from hybridvision.common.backbones import EFFICIENTNET_LITE, resolve_weights
from hybridvision.common.config import TUNERS, AugmentOptions, TrainConfig, build_parser, option

TASKS = ("orientation", "light")
TRANSFER_MODELS = (*EFFICIENTNET_LITE, "inception_v3", "resnet50")
MODELS = ("from_scratch", *TRANSFER_MODELS)
OPTIMIZERS = ("adam", "sgd", "adabound")
# Learning rates when --learning-rate is not given. The report: AdaBound at
# 0.003-0.005; Adam's and momentum SGD's usual rates otherwise.
DEFAULT_LEARNING_RATES = {"adam": 1e-3, "sgd": 1e-2, "adabound": 4e-3}
# AdaBound's final (SGD) learning rate when neither the preset nor the flag gives one: the
# reference implementation's 0.1.
DEFAULT_FINAL_LR = 0.1
# The original report's per-model settings (docs/reports.md: orientation_light), applied to the
# settings left automatic (None); a preset learning rate / final_lr only goes with the preset's
# optimizer. Every other model: Adam, batch 32, head dropout 0.7.
PRESETS = {
    "from_scratch": {"optimizer": "sgd", "learning_rate": 0.005, "batch_size": 16},
    "inception_v3": {"optimizer": "adabound", "learning_rate": 0.003, "final_lr": 0.005, "head_dropout": 0.55},
    "resnet50": {"head_dropout": 0.6},
}
GENERAL = {"optimizer": "adam", "batch_size": 32, "head_dropout": 0.7}
BATCHNORM_FIX = ("on", "off")
# keras.applications.InceptionV3 refuses inputs below 75x75.
MIN_IMAGE_SIZE = {"inception_v3": 75, "resnet50": 32, "from_scratch": 8, **{name: 32 for name in EFFICIENTNET_LITE}}


@dataclasses.dataclass
class OrientationLightConfig(AugmentOptions, TrainConfig):
    """Face orientation or light-source direction, 3 classes from class folders."""

    task: str = option(
        "orientation",
        "orientation (left/center/right head turn) or light (light from the image's left/center/right); "
        "names the demo data and the exported model",
        choices=TASKS, group="data",
    )
    model: str = option(
        "from_scratch",
        "from_scratch: VGG-style CNN, < 700k parameters (the original report's best: 0.881 / 0.902 test accuracy); "
        "efficientnet_lite0|1|2 (ImageNet weights offline) / inception_v3 / resnet50 (weights downloaded by Keras): "
        "frozen pretrained base + GAP -> Dense 512 -> Dense 128 -> Dropout head",
        choices=MODELS, group="model",
    )
    weights: str | None = option(
        None, "backbone weights: imagenet, none, or a .weights.h5 path; default imagenet for the "
        "transfer models (as in the original report), none for from_scratch"
    )
    optimizer: str | None = option(
        None, "optimizer (the original report compared Adam, SGD with momentum and AdaBound); default the report's "
        "per model: sgd for from_scratch, adabound for inception_v3, adam for the others",
        choices=OPTIMIZERS, group="training",
    )
    learning_rate: float | None = option(
        None, "learning rate; default the report's with its optimizer: from_scratch sgd 0.005, inception_v3 adabound "
        "0.003; else by optimizer: adam 1e-3, sgd 1e-2, adabound 4e-3", above=0,
    )
    final_lr: float | None = option(
        None, "adabound: the final (SGD) learning rate its bounds converge to; default 0.005 for inception_v3 with "
        "adabound (the report's lr 0.003 / final 0.005), else 0.1", above=0, group="training",
    )
    epochs: int = option(15, "epochs (the original report searched 10 / 15 / 20)")
    batch_size: int | None = option(None, "batch size; default 16 for from_scratch (the report's), else 32", min=1)
    batchnorm_fix: str = option(
        "on", "transfer models: on = the frozen base's BatchNorm layers frozen too, in inference mode (the report's "
        "patch); off = the report's setting without the patch: those BatchNorm layers trainable, in training mode "
        "(batch statistics, moving statistics updated) while the rest of the base is frozen",
        choices=BATCHNORM_FIX, group="model",
    )
    image_size: int = option(64, "faces are resized to image_size x image_size (inception_v3 needs >= 75)")
    conv_dropout: float = option(
        0.2, "from_scratch: dropout after the first pooling, +0.05 per later block (the original report: 0.2-0.3)", min=0, below=1, group="model"
    )
    dense_units: int = option(
        48, "from_scratch: units of the dense layer before the classifier (48 keeps the model under the report's "
        "700k parameters up to 64 px)", min=1, group="model"
    )
    bn_momentum: float = option(
        0.9, "from_scratch: BatchNorm moving-average momentum; Keras's 0.99 needs thousands of steps before "
        "the inference statistics fit, more than a short CPU run makes", min=0, below=1, group="model"
    )
    head_dropout: float | None = option(
        None, "dropout before the softmax; default the report's: 0.55 for inception_v3, 0.6 for resnet50, 0.7 for "
        "the others (0.7 after the from-scratch dense layer)", min=0, below=1, group="model"
    )
    finetune_layers: int = option(
        0, "transfer models: after the frozen phase, unfreeze the top N layers with weights of the base "
        "(BatchNorm stays frozen) and train again; 0 = no fine-tuning", min=0, group="training"
    )
    finetune_epochs: int = option(5, "epochs of the fine-tuning phase", min=1, group="training")
    finetune_learning_rate_factor: float = option(0.1, "fine-tuning learning rate = learning rate x this", above=0, group="training")
    augment: bool = option(
        False, "random affine augmentation of the training images (the original report tried it on and off); it never "
        "flips (see --mirror)"
    )
    rotation_range: float = option(10.0)
    width_shift_range: float = option(0.1)
    height_shift_range: float = option(0.1)
    shear_range: float = option(0.0)
    zoom_range: float = option(0.1)
    brightness_range: list[float] = option([], "--augment: brightness factors low,high (e.g. 0.8,1.2); empty = off", above=0, group="data")
    mirror: bool = option(
        False, "mirror half of the training images left-right AND swap their left/right labels (a plain "
        "horizontal flip would teach wrong labels for these tasks, so --augment never flips)", group="data"
    )
    holdout_fraction: float = option(
        0.0, "when <data-dir>/test/ is missing: share of val held out (seeded, stratified) as the test "
        "split, e.g. 0.5; 0 = no test split, metrics on val only", min=0, below=1, group="data"
    )
    split_seed: int = option(0, "seed of the --holdout-fraction split (fixed across --seed: one test set)", min=0, group="data")
    cache: bool = option(True, "keep the decoded images in memory (about 12 kB per image at 64 px)", group="data")
    monitor: str = option("val_accuracy", "validation metric choosing the best checkpoint", group="training")

    def fill_automatic(self) -> None:
        """Weights by model, the report's presets per model (`PRESETS`), the learning rate by optimizer;
        the combinations checked."""
        self.weights = resolve_weights(self.model, self.weights, flag="--model")
        preset = {**GENERAL, **PRESETS.get(self.model, {})}
        if self.optimizer is None:
            self.optimizer = preset["optimizer"]
        with_optimizer = self.optimizer == preset["optimizer"]
        if self.learning_rate is None:
            self.learning_rate = preset.get("learning_rate") if with_optimizer and "learning_rate" in preset \
                else DEFAULT_LEARNING_RATES[self.optimizer]
        if self.final_lr is None:
            self.final_lr = preset["final_lr"] if with_optimizer and "final_lr" in preset else DEFAULT_FINAL_LR
        if self.batch_size is None:
            self.batch_size = preset["batch_size"]
        if self.head_dropout is None:
            self.head_dropout = preset["head_dropout"]
        if self.image_size < MIN_IMAGE_SIZE[self.model]:
            raise ValueError(f"--image-size {self.image_size} is too small for --model {self.model}; "
                             f"use at least {MIN_IMAGE_SIZE[self.model]}")
        if self.finetune_layers and self.model not in TRANSFER_MODELS:
            raise ValueError(f"--finetune-layers applies to the transfer models ({', '.join(TRANSFER_MODELS)}), "
                             f"not --model {self.model}; leave it at 0")
        if self.brightness_range and len(self.brightness_range) != 2:
            raise ValueError(f"--brightness-range {self.brightness_range} needs two numbers low,high such as 0.8,1.2")


@dataclasses.dataclass
class TuneConfig(OrientationLightConfig):
    """The train config (the fixed settings of every trial) plus the search space and the tuner."""

    run_dir: str | None = option("runs/orientation_light_tune", "folder of the searches (one per task and model)")
    tuner: str = option("random", "KerasTuner search: grid, random or hyperband", choices=TUNERS)
    max_trials: int = option(10, "trials at most (grid and random; Hyperband sizes itself from --epochs)", min=1)
    batch_sizes: list[int] = option([16, 32, 64], "batch sizes to try", min=1)
    learning_rates: list[float] = option([1e-3, 3e-4, 4e-3], "learning rates to try (the original report ran AdaBound at 0.003-0.005)", above=0, space=True)
    optimizers: list[str] = option(list(OPTIMIZERS), "optimizers to try", choices=OPTIMIZERS)
    conv_dropouts: list[float] = option([0.2, 0.3], "from_scratch conv dropout rates to try (the original report's 0.2-0.3)", min=0, below=1, space=True)
    head_dropouts: list[float] = option([0.5, 0.7], "dropout rates before the softmax to try (the original report used 0.7)", min=0, below=1, space=True)
    best_config: str | None = option(None, "where the best config goes; default <run-dir>/<task>_<model>/best_config.yaml")


# The parsers of the app's tools are built here, not in the tools' modules: those import Keras
# at the top, and `hybridvision orientation_light <tool> --help` should answer without it.
def train_parser():
    return build_parser(
        OrientationLightConfig,
        "Train a face orientation or light-source classifier (from scratch, or transfer with a frozen base).",
        prog="hybridvision orientation_light train",
    )


def tune_parser():
    return build_parser(
        TuneConfig,
        "Search batch size, drop rates, learning rate and optimiser with KerasTuner (as the report did by hand).",
        prog="hybridvision orientation_light tune",
    )


def predict_parser() -> argparse.ArgumentParser:
    from hybridvision.common.predict_flags import predict_parser as build

    parser = build("orientation_light", "Label a whole image folder with a saved orientation or light model: "
                   "a CSV, and optionally a 3x3 grid.")
    parser.add_argument("--grid", help="also save a 3x3 grid of labelled sample images to this PNG")
    parser.add_argument("--seed", type=int, default=0, help="which images the grid shows (default: 0)")
    return parser


EXPLAIN_DESCRIPTION = "Grad-CAM of a saved orientation_light model on an image you name: the image beside its heat map, in a PNG."


def explain_parser():
    from hybridvision.common.predict_flags import explain_parser as build

    return build("orientation_light", EXPLAIN_DESCRIPTION)
