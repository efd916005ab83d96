"""The feature cache returns exactly the freshly computed features, keyed by what they depend on."""

import os

import keras
import numpy as np

from hybridvision.common.features import cached_features, compute_features, feature_cache_key


def _images(root, n=5):
    import cv2

    root.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = root / f"{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (12, 10, 3), dtype=np.uint8))
        paths.append(str(path))
    return paths


def _extractor():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def test_cached_features_equal_fresh_ones(tmp_path):
    paths = _images(tmp_path / "img")
    extractor = _extractor()
    fresh = compute_features(extractor, paths, (8, 8), batch_size=2)
    assert fresh.shape == (5, 4)
    first = cached_features(extractor, paths, (8, 8), tmp_path / "cache", "toy", "none", batch_size=2)
    files = list((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 1
    np.testing.assert_allclose(first, fresh, rtol=1e-6, atol=1e-6)
    # A reload must come from the file: a different extractor would give other numbers.
    reloaded = cached_features(_extractor(), paths, (8, 8), tmp_path / "cache", "toy", "none")
    np.testing.assert_array_equal(reloaded, first)
    # Reference: the same pixels pushed through the model by hand.
    from hybridvision.common.data.images import decode_image

    batch = np.stack([decode_image(p, (8, 8)).numpy() for p in paths])
    np.testing.assert_allclose(first, np.asarray(extractor(batch)), rtol=1e-5, atol=1e-5)


def test_key_changes_with_what_the_features_depend_on(tmp_path):
    paths = _images(tmp_path / "img")
    key = feature_cache_key("small", "none", (8, 8), paths)
    assert key == feature_cache_key("small", "none", (8, 8), list(paths))
    assert key != feature_cache_key("vgg16", "none", (8, 8), paths)
    assert key != feature_cache_key("small", "imagenet", (8, 8), paths)
    assert key != feature_cache_key("small", "none", (16, 16), paths)
    assert key != feature_cache_key("small", "none", (8, 8), paths[::-1])
    os.utime(paths[0], ns=(1, 1))
    assert key != feature_cache_key("small", "none", (8, 8), paths)
