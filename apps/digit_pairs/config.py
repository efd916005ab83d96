"""Settings of the digit-pair comparison; defaults are the original report's (report 2)."""

from __future__ import annotations

import dataclasses

from hybridvision.common.config import TrainConfig, build_parser, option

# The report's five models plus our two additions (siamese was "tried too"
# in the report; aux_prob is the improvement, see models.py).
REPORT_MODELS = ("fc", "fc_dropout", "cnn", "deep_cnn", "siamese", "aux")
# The earlier aux layout, kept because it did better than the report's (docs/results/digit_pairs_compare:
# test 0.974 +- 0.008 against 0.966 +- 0.008 over 10 rounds): the deep-CNN branch with 'same' padding and
# one dropout, and an extra dense 64 between the two 10-vectors and the comparison. The earlier cnn and
# deep CNN were not better than the report's and were dropped.
MODELS = REPORT_MODELS + ("aux_prob", "aux_same_dense")


@dataclasses.dataclass
class DigitPairsConfig(TrainConfig):
    """Is the first of two MNIST digits <= the second? Defaults are the original report's settings."""

    model: str = option("aux", "which model to train", choices=MODELS, group="model")
    pairs: int = option(1000, "pairs drawn for training (split into train/val) and again for test (1000 as in the original report)", min=10, group="data")
    val_fraction: float = option(0.2, "share of the training pairs held out for validation (800/200 as in the original report)", above=0, below=1, group="data")
    aux_weight: float = option(
        0.2, "loss weight of each digit-class loss in aux models; the comparison gets 1 - 2 * this (the original report: 0.2/0.2/0.6)", min=0, max=0.5, group="training"
    )
    dropout: float = option(0.4, "dropout rate of the dropout layers (0.4 as in the original report)", min=0, below=1, group="model")
    shift: int = option(0, "augmentation: shift each training digit by up to this many pixels (0 = off, as the report)", min=0, max=13, group="data")
    # The report: Adam lr 0.005, batch 100 (8 steps per epoch), 100-200 epochs. On
    # real MNIST pairs the deep CNN's validation accuracy still creeps up until
    # about epoch 90, the others level off earlier; the best-by-val checkpoint is kept.
    # Measured here with the earlier layouts (aux = today's aux_same_dense; real MNIST t10k,
    # test-file fallback, 10 seeds, no warm-up; no stored output):
    # aux 0.975 +- 0.009 test, above the report's 0.956; but deep_cnn's first
    # Adam steps at lr 0.005 killed every ReLU of its dense layer in 2 of 10
    # seeds (a constant output from epoch 1 on). A 2-epoch linear warm-up
    # (16 steps) kept those seeds learning, so it is the default.
    epochs: int = option(100, "number of training epochs (the original report: 100-200); the best-by-val checkpoint is kept")
    batch_size: int = option(100, "batch size (100 as in the original report)")
    learning_rate: float = option(0.005, "Adam learning rate (0.005 as in the original report)")
    warmup_epochs: float = option(
        2, "ramp the learning rate up linearly over this many epochs (0 = off, as the report)", min=0, group="training"
    )
    image_size: int = option(14, "digits are average-pooled from 28x28 to this size: 14 (the original report's) or 28", choices=(14, 28))


@dataclasses.dataclass
class CompareConfig(DigitPairsConfig):
    """The training settings plus how many rounds of which models."""

    rounds: int = option(10, "training runs per model (10 as in the original report); round k uses seed --seed + k", min=1)
    models: list[str] = option(list(MODELS), "models to compare", choices=MODELS)
    out: str = option("runs/digit_pairs/comparison", "folder for comparison.csv/.md/.png and runs/<model>/seed<k>/")


# The parsers of the app's tools are built here, not in the tools' modules: those import Keras
# at the top, and `hybridvision digit_pairs <tool> --help` should answer without it.
def train_parser():
    return build_parser(
        DigitPairsConfig,
        "Train one digit-pair model.",
        prog="hybridvision digit_pairs train",
    )


def compare_parser():
    return build_parser(
        CompareConfig,
        "Repeated-run comparison of the digit-pair models: the report's table.",
        prog="hybridvision digit_pairs compare",
    )


PREDICT_DESCRIPTION = "Label images with a saved digit_pairs model: a CSV of pair labels (is the first digit <= the second?) and probabilities, resumable."


def predict_parser():
    from hybridvision.common.predict_flags import predict_parser as build

    return build("digit_pairs", PREDICT_DESCRIPTION, columns="first,second")


EXPLAIN_DESCRIPTION = "Grad-CAM of a saved digit_pairs model on an image you name: the image beside its heat map, in a PNG."


def explain_parser():
    from hybridvision.common.predict_flags import explain_parser as build

    return build("digit_pairs", EXPLAIN_DESCRIPTION, images=2)
