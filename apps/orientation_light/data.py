"""Class-folder splits for the app, the held-out test split, and mirroring with swapped labels."""

from __future__ import annotations

import logging

import tensorflow as tf

from hybridvision.common.data import demo
from hybridvision.common.data.class_folders import make_dataset, read_class_folders, split_table

log = logging.getLogger("hybridvision")


def data_root(cfg):
    """`cfg.data_dir`, or the SYNTHETIC demo faces of `cfg.task` when it is omitted."""
    return demo.data_root(cfg.data_dir, cfg.task)


def load_tables(cfg):
    """`({"train", "val", "test"} tables, class names, note or None)`; test may be None.

    When `<root>/test/` is missing, `cfg.holdout_fraction` of val (seeded by
    `cfg.split_seed`, stratified) becomes the test split; with 0 there is no
    test split and the note says the metrics are on val only.
    """
    root = data_root(cfg)
    tables = {"train": read_class_folders(root, "train"), "val": read_class_folders(root, "val")}
    names = tables["train"].attrs["class_names"]
    note = None
    try:
        tables["test"] = read_class_folders(root, "test")
    except FileNotFoundError:
        tables["test"] = None
    if tables["test"] is not None and cfg.holdout_fraction:
        raise ValueError(f"--holdout-fraction {cfg.holdout_fraction}: {root}/test/ exists, so nothing is held "
                         "out of val; drop the flag (or remove the test folder)")
    for split in ("val", "test"):
        if tables[split] is not None and tables[split].attrs["class_names"] != names:
            raise ValueError(f"class folders of {root}/{split} {tables[split].attrs['class_names']} differ "
                             f"from {root}/train {names}; every split needs the same class folders")
    if tables["test"] is None and cfg.holdout_fraction:
        tables["val"], tables["test"] = split_table(tables["val"], cfg.holdout_fraction, seed=cfg.split_seed)
        note = (f"no {root}/test/: {len(tables['test'])} of the val images ({cfg.holdout_fraction:g}, "
                f"stratified, split seed {cfg.split_seed}) held out as the test split")
    elif tables["test"] is None:
        note = f"no {root}/test/ and --holdout-fraction 0: no test split, metrics are on val only"
    return tables, list(names), note


def mirror_permutation(class_names) -> list[int]:
    """Label map of a left-right mirror: each `left...` class to its `right...` twin and back."""
    def twin(name):
        return name.replace("left", "\0").replace("right", "left").replace("\0", "right")

    index = {name: i for i, name in enumerate(class_names)}
    perm = [index.get(twin(name), i) for i, name in enumerate(class_names)]
    if perm == list(range(len(class_names))):
        raise ValueError(f"--mirror needs left/right class pairs (e.g. left, right); the classes are {class_names}")
    return perm


def mirror_with_swapped_labels(class_names, seed=0):
    """A `dataset.map` function mirroring half the images of a batch and swapping their labels.

    A mirrored face turned to the image's left is turned to its right (and a
    face lit from the left is lit from the right), so the label must follow.
    """
    perm = tf.constant(mirror_permutation(class_names), tf.int32)

    def mirror(images, labels):
        flip = tf.random.uniform(tf.shape(labels), seed=seed) < 0.5
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
        labels = tf.where(flip, tf.gather(perm, labels), labels)
        return images, labels

    return mirror


def augmentation(cfg):
    """The affine augmentation of the config, or None without `--augment`."""
    # No horizontal_flip here: a flip turns a left face into a right one but
    # would keep its "left" label; --mirror flips AND swaps the labels instead.
    return cfg.affine_augmentation(brightness_range=list(cfg.brightness_range) or None, horizontal_flip=False)


def make_datasets(cfg, tables, class_names, batch_size) -> dict:
    """tf.data per split (None for a missing test split); images float 0..255, integer labels."""
    size = (cfg.image_size, cfg.image_size)
    datasets = {}
    for split, table in tables.items():
        if table is None:
            datasets[split] = None
            continue
        train = split == "train"
        ds = make_dataset(table, size, batch_size, shuffle=train, seed=cfg.seed, cache=cfg.cache,
                          augment=augmentation(cfg) if train else None)
        if train and cfg.mirror:
            ds = ds.map(mirror_with_swapped_labels(class_names, cfg.seed), num_parallel_calls=tf.data.AUTOTUNE)
        datasets[split] = ds
    return datasets
