"""A backbone for raw images: resizing and the backbone's preprocessing inside the model."""

import keras

from hybridvision.common.backbones.registry import build_backbone, native_resolution, preprocessing_layer


def build_raw_image_backbone(
    name,
    weights="imagenet",
    image_size=None,
    include_top=False,
    pooling="avg",
    crop_to_aspect_ratio=False,
):
    """A backbone that takes raw RGB images (0..255) of any size: resizing and preprocessing inside.

    The model resizes its input to `image_size` (`keras.layers.Resizing`,
    bilinear), applies the backbone's own preprocessing
    (`preprocessing_layer(name)`) and runs the backbone from
    `build_backbone`, nested as one layer named like the backbone (e.g.
    `model.get_layer("efficientnet_lite0")`). Only built-in Keras layers are
    added, so a saved model reloads with no custom objects, and `freeze`,
    `unfreeze_top` and `hybridize` reach inside the nested backbone.

    Args:
        name: one of `available()`.
        weights: `"imagenet"` (offline for the EfficientNet-Lite variants;
            a download for the `keras.applications` ones unless cached),
            `"none"`/`None` (random init) or a local `.weights.h5` file.
            The scratch-only backbones have no ImageNet weights: pass
            `"none"` or a file.
        image_size: the size the images are resized to, an int or
            `(height, width)`; `None` (default) is the resolution the
            backbone's ImageNet weights were trained at (224 for
            EfficientNet-Lite0, 240 for Lite1, 260 for Lite2). Required for
            the scratch-only backbones.
        include_top: keep the 1000-class ImageNet classifier (pretrained
            backbones only).
        pooling: `"avg"` (default) or `"max"` for one feature vector per
            image, `None` for the feature map; ignored when
            `include_top=True`.
        crop_to_aspect_ratio: crop the largest centred window of the target
            aspect ratio before resizing, instead of stretching the image.

    Returns:
        A functional `keras.Model` taking `(batch, height, width, 3)` RGB
        images in 0..255 (any height and width, one size per batch), named
        `"raw_" + name`.

    Example:

    ```python
    import numpy as np
    from hybridvision.backbones import build_raw_image_backbone

    # ImageNet weights read offline from the installed efficientnet-lite0 package.
    lite0 = build_raw_image_backbone("efficientnet_lite0", image_size=64)
    photos = np.random.default_rng(0).uniform(0, 255, (2, 90, 120, 3))  # any size
    features = lite0.predict(photos, verbose=0)
    print(features.shape)  # (2, 1280)
    ```
    """
    key = str(name).lower()
    if image_size is None:
        image_size = native_resolution(key)
        if image_size is None:
            raise ValueError(
                f"backbone '{key}' has no native resolution (no ImageNet weights); pass image_size=."
            )
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    backbone = build_backbone(key, (height, width, 3), weights=weights, include_top=include_top, pooling=pooling)
    images = keras.Input((None, None, 3), name="images")
    # training=False: Resizing's call defaults to training=True, and Keras
    # hands a layer's resolved training flag on to the layers after it, so a
    # plain `model(x)` would run every BatchNormalization in training mode.
    # An explicit training=True / False from the caller (fit, predict)
    # replaces this one.
    resize = keras.layers.Resizing(height, width, crop_to_aspect_ratio=crop_to_aspect_ratio, name="resize")
    x = resize(images, training=False)
    x = preprocessing_layer(key)(x)
    return keras.Model(images, backbone(x), name=f"raw_{backbone.name}")
