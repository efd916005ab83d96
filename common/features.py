"""Feature cache for frozen backbones: compute once, keep as `.npy`, reload.

A frozen backbone maps every image to the same features in every epoch, so
"feature extraction" training only needs one pass over the images
(Chollet's fast feature extraction). The cache file name is a hash of
everything the features depend on: the backbone's name, its weights (name,
or a file's path, size and modification time), the image size and the list
of image files (paths, sizes, modification times) in order.

    features = cached_features(extractor, table["path"], (64, 64), "cache/",
                               backbone="small", weights="none")
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from hybridvision.common.data.images import decode_image

log = logging.getLogger("hybridvision")


def _file_stamp(path):
    try:
        stat = os.stat(path)
    except OSError:
        raise FileNotFoundError(f"image file not found: {path}; rebuild the table of paths.") from None
    return [os.fspath(path), stat.st_size, stat.st_mtime_ns]


def feature_cache_key(backbone, weights, image_size, paths, extra=None):
    """The hex digest naming the cache file of these features."""
    weights = "none" if weights is None else str(weights)
    if os.path.isfile(weights):
        weights = _file_stamp(weights)
    description = {
        "backbone": str(backbone),
        "weights": weights,
        "image_size": list(image_size),
        "files": [_file_stamp(p) for p in paths],
        "extra": extra,
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]


def compute_features(extractor, paths, image_size, batch_size=32):
    """Runs `extractor` (a model on 0..255 RGB images) over image files, in order.

    Returns:
        float32 array `(len(paths), *extractor output shape)`.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("compute_features got no image paths.")
    dataset = tf.data.Dataset.from_tensor_slices(paths)
    dataset = dataset.map(lambda p: decode_image(p, tuple(image_size)), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    # predict runs a compiled step; calling the model batch by batch runs it eagerly (several times slower).
    return np.asarray(extractor.predict(dataset, verbose=0), dtype="float32")


def cached_features(extractor, paths, image_size, cache_dir, backbone, weights, batch_size=32, extra=None):
    """Features of `paths` from the cache, or computed and stored there.

    Args:
        extractor: model mapping 0..255 RGB images to features (frozen).
        paths: image files, in the order the rows of the result follow.
        image_size: `(height, width)` the images are resized to.
        cache_dir: folder of the `.npy` files (created when missing).
        backbone: backbone name (part of the key).
        weights: "imagenet", "none" or a weights file (part of the key).
        batch_size: images per forward pass.
        extra: anything else the features depend on (JSON-able), e.g. the
            pooling; part of the key.

    Returns:
        float32 array `(len(paths), ...)`.
    """
    paths = [os.fspath(p) for p in paths]
    key = feature_cache_key(backbone, weights, image_size, paths, extra)
    cache_dir = Path(cache_dir)
    file = cache_dir / f"{backbone}_{image_size[0]}x{image_size[1]}_{key}.npy"
    if file.exists():
        features = np.load(file)
        if len(features) == len(paths):
            log.info("features of %d images loaded from %s", len(paths), file)
            return features
        log.warning("feature cache %s has %d rows for %d images; recomputing", file, len(features), len(paths))
    features = compute_features(extractor, paths, image_size, batch_size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.stem + ".tmp.npy")
    np.save(tmp, features)
    # Atomic, so an interrupted write is never read back as a valid cache.
    os.replace(tmp, file)
    log.info("features of %d images computed and cached in %s", len(paths), file)
    return features
