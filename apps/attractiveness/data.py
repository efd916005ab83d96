"""The app's data: CelebA's layout or a table of images and columns, as one `TableData` and its splits."""

from __future__ import annotations

import keras

from hybridvision.common.data import demo
from hybridvision.common.data.image_table import from_celeba, make_dataset, read_image_table, split_table

SPLITS = ("val", "test")


def load_data(cfg):
    """`(tables {"train", "val", "test"}, note or None, TableData)` from the config's table or CelebA folder."""
    path = cfg.table_file()
    if path is None:
        root = demo.data_root(cfg.data_dir, "celeba")
        return from_celeba(root, cfg.target, list(cfg.covariates), cfg.split_seed, cfg.val_fraction, cfg.test_fraction)
    data = read_image_table(path, cfg.target, cfg.covariates, cfg.image_column, cfg.categorical, cfg.numeric,
                            max_unreadable=cfg.max_unreadable)
    tables, note = split_table(data, cfg.split_seed, cfg.val_fraction, cfg.test_fraction)
    return tables, note, data


def make_datasets(cfg, tables, coding, num_classes: int, batch_size: int) -> dict:
    """tf.data per split of raw 0..255 images (the model preprocesses them) and, with `coding`, raw covariates."""
    augment = cfg.affine_augmentation(horizontal_flip=cfg.flip)
    if augment is None and cfg.flip:
        augment = keras.layers.RandomFlip("horizontal", seed=cfg.seed)
    return {
        split: make_dataset(
            tables[split], coding, num_classes, (cfg.image_size, cfg.image_size), batch_size,
            shuffle=split == "train", seed=cfg.seed, cache=cfg.cache, augment=augment if split == "train" else None,
        )
        for split in ("train", *SPLITS)
    }
