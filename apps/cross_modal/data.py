"""Tables, partitions, experiments and tf.data pipelines of the cross_modal app."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pandas as pd

from hybridvision.apps.cross_modal.config import DOMAINBED_HOLDOUT
from hybridvision.common.data import demo
from hybridvision.common.data.class_folders import make_dataset
from hybridvision.common.data.domains import kfold_domains, parse_split, read_domains, split_domains
from hybridvision.common.data.edge_view import EdgeView

log = logging.getLogger("hybridvision")


def data_root(cfg):
    """`cfg.data_dir`, or the SYNTHETIC demo domains when it is omitted."""
    return demo.data_root(cfg.data_dir, "domains")


def load_table(cfg):
    """The `read_domains` table of the config's data, with `--source` checked."""
    table = read_domains(data_root(cfg), cfg.modalities or None)
    modalities = table.attrs["modalities"]
    if cfg.protocol == "from_source":
        unknown = [s for s in cfg.source if s not in modalities]
        if unknown:
            raise ValueError(f"--source {','.join(unknown)} is not a modality of the data; choose from {modalities}")
    if cfg.protocol in ("leave_one_out", "domainbed") and len(modalities) < 2:
        raise ValueError(f"--protocol {cfg.protocol} needs at least 2 modalities; the data has {modalities}")
    unknown = [m for m in cfg.test_domains if m not in modalities]
    if unknown:
        raise ValueError(f"--test-domains {','.join(unknown)} is not a modality of the data; choose from {modalities}")
    return table


def partitions(cfg, table) -> list[dict]:
    """One `{"train", "val", "test"}` dict per fold (a single one without `--folds`)."""
    if cfg.protocol == "domainbed":
        if not cfg.test_domains:  # `train` runs one cell per domain; tools that train one model need it named
            raise ValueError("--protocol domainbed here needs --test-domains, the held-out domain(s), e.g. "
                             "--test-domains sketch")
        return [domainbed_partition(table, cfg.test_domains, cfg.seed)]
    fractions = parse_split(cfg.split)
    if not cfg.folds:
        return [split_domains(table, fractions, seed=cfg.seed)]
    # Within each fold's remaining rows, train and val keep --split's ratio.
    val_share = fractions[1] / (fractions[0] + fractions[1])
    parts = []
    for rest, test in kfold_domains(table, cfg.folds, seed=cfg.seed):
        split = split_domains(rest, (1 - val_share, val_share, 0.0), seed=cfg.seed)
        parts.append({"train": split["train"], "val": split["val"], "test": test})
    return parts


def domainbed_partition(table, held_out, seed) -> dict:
    """DomainBed's training-domain validation split: the held-out domains' images are the test set, nothing else.

    Each other domain is cut, per class (seeded), into 80% train and 20% val; the val rows of all
    training domains together choose the checkpoint.
    """
    training = table[~table["modality"].isin(held_out)]
    split = split_domains(training, (1 - DOMAINBED_HOLDOUT, DOMAINBED_HOLDOUT, 0.0), seed=seed)
    test = table[table["modality"].isin(held_out)].reset_index(drop=True)
    return {"train": split["train"], "val": split["val"], "test": test}


def check_unseen(train, val, tested, train_modalities) -> None:
    """Refuse (ValueError) to train when a test image, or any image of a domain held out of training, is in the
    train or val set: the test rows must reach neither training nor the choice of the checkpoint."""
    held_out = set(tested["modality"]) - set(train_modalities)
    for name, rows in (("train", train), ("val", val)):
        leaked = rows["path"].isin(set(tested["path"])) | rows["modality"].isin(held_out)
        if leaked.any():
            raise ValueError(f"{int(leaked.sum())} test or held-out image(s) are in the {name} set (e.g. "
                             f"{rows['path'][leaked].iloc[0]}); refusing to train on them or choose a checkpoint by them")


def experiments(cfg, modalities) -> list[tuple[str, list[str]]]:
    """`(row name, training modalities)` of each model the protocol trains."""
    if cfg.protocol == "all":
        return [("all", list(modalities))]
    if cfg.protocol == "from_source":
        return [(source, [source]) for source in cfg.source]
    if cfg.protocol == "domainbed":  # one held-out domain per run (a cell): trained on all the others
        return [(f"without_{'_'.join(cfg.test_domains)}", [m for m in modalities if m not in cfg.test_domains])]
    return [(f"without_{m}", [o for o in modalities if o != m]) for m in modalities]


def test_rows(table, part_test, train_modalities):
    """The rows a model trained on `train_modalities` is tested on.

    Its own modalities: their test split. Every other modality: all of its
    images, since none of them was seen in training or validation (the
    standard leave-one-domain-out protocol; ten times the test images of a
    split on a small sample).
    """
    seen = part_test[part_test["modality"].isin(train_modalities)]
    unseen = table[~table["modality"].isin(train_modalities)]
    return pd.concat([seen, unseen], ignore_index=True)


def augmentation(cfg):
    """The report's ImageDataGenerator knobs (docs/reports.md: cross_modal) as one `AffineAugmentation`, or None without `--augment`."""
    if not cfg.augment:
        return None
    steps = [cfg.affine_augmentation(horizontal_flip=cfg.horizontal_flip)]
    if cfg.color_jitter:
        s = cfg.color_jitter
        steps.append(keras.layers.RandomColorJitter(
            value_range=(0, 255), brightness_factor=s / 2, contrast_factor=s, saturation_factor=(max(0.0, 0.5 - s / 2),
                                                                                               min(1.0, 0.5 + s / 2)),
            hue_factor=s / 4, seed=cfg.seed,
        ))
    if cfg.edge_views:
        steps.append(EdgeView(rate=cfg.edge_views, seed=cfg.seed))
    if cfg.grayscale:
        steps.append(keras.layers.RandomGrayscale(factor=cfg.grayscale, seed=cfg.seed))
    return steps


def modality_columns(modalities) -> list[str]:
    return [f"is_{m}" for m in modalities]


def with_modality_onehot(table, modalities):
    """The table plus one 0/1 column per modality (the per_modality model's second input)."""
    table = table.copy()
    for m, column in zip(modalities, modality_columns(modalities)):
        table[column] = (table["modality"] == m).astype("float32")
    return table


def make_images(cfg, table, batch_size, train: bool, modalities):
    """tf.data of `(images, labels)` (or `((images, one-hot), labels)` for per_modality)."""
    extra = None
    if cfg.model == "per_modality":
        table = with_modality_onehot(table, modalities)
        extra = modality_columns(modalities)
    return make_dataset(
        table, (cfg.image_size, cfg.image_size), batch_size, shuffle=train, seed=cfg.seed,
        augment=augmentation(cfg) if train else None, cache=cfg.cache, extra_columns=extra,
    )


def labels_of(table) -> np.ndarray:
    return table["label"].to_numpy().astype("int32")
