"""ImageDataGenerator-style augmentation as one fused affine warp per image."""

import math
import numbers

import keras
import numpy as np

from hybridvision.common.compat import DataLayer

FILL_MODES = ("nearest", "constant", "reflect", "wrap")
INTERPOLATIONS = ("bilinear", "nearest")

# One uniform draw per image feeds every random parameter, in this column order.
_PARAM_NAMES = (
    "angle",
    "shift_x",
    "shift_y",
    "shear",
    "zoom_x",
    "zoom_y",
    "flip_x",
    "flip_y",
    "brightness",
)

# Parameter values that leave an image unchanged.
_IDENTITY = {
    "angle": 0.0,
    "shift_x": 0.0,
    "shift_y": 0.0,
    "shear": 0.0,
    "zoom_x": 1.0,
    "zoom_y": 1.0,
    "flip_x": 0.0,
    "flip_y": 0.0,
}


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_range(name, value, allow_int=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        kind = "a number >= 0" + (
            " (a fraction of the size, or pixels if >= 1)" if allow_int else ""
        )
        raise ValueError(f"`{name}` must be {kind}; got {value!r}.")
    return value


def _pair(name, value, scalar_to_pair=None):
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and scalar_to_pair:
        return scalar_to_pair(float(value))
    is_pair = isinstance(value, (list, tuple)) and len(value) == 2
    if is_pair and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        lo, hi = float(value[0]), float(value[1])
        if lo <= hi:
            return lo, hi
    raise ValueError(
        f"`{name}` must be a number or a pair [low, high] with low <= high; got {value!r}."
    )


@keras.saving.register_keras_serializable(package="hybridvision")
class AffineAugmentation(DataLayer):
    """Random rotation, shift, shear, zoom, flips and brightness in one warp.

    The knobs and their meaning are those of Keras 2's `ImageDataGenerator`,
    so old augmentation settings carry over (see `from_image_data_generator`).
    All geometric knobs of one image are composed into a single 3x3 matrix
    (rotation, shift, shear, zoom, then flips, about the image center) and
    applied with one `keras.ops.image.affine_transform`: one interpolation,
    and about 3x faster than chaining RandomRotation, RandomTranslation,
    RandomZoom and RandomFlip (`python -m benchmarks.input_pipeline`).
    Every image of a batch gets its own random parameters, drawn in one
    vectorised call.

    The layer runs inside `tf.data` (on CPU, whatever the Keras backend) and
    inside a model. With `training=False` only `rescale` is applied, exactly
    as `ImageDataGenerator` rescaled validation data too.

    Differences from `ImageDataGenerator`, on purpose:
    - rotations and zooms are about the true pixel-grid center
      ((width - 1) / 2, (height - 1) / 2) also for non-square images;
    - `width_shift_range` shifts horizontally and `height_shift_range`
      vertically (tf_keras 2.21 swaps the two);
    - `brightness_range` multiplies the pixel values without clipping to
      0..255 (IDG went through PIL, which clips and rounds).

    Args:
        rotation_range: degrees; angle drawn uniformly in [-r, r].
        width_shift_range: horizontal shift; a float < 1 is a fraction of the
            width, an int (or a float >= 1) is pixels (ints give whole pixels).
        height_shift_range: vertical shift, same rules with the height.
        shear_range: shear angle in degrees, drawn in [-s, s].
        zoom_range: float `z` for scale factors in [1 - z, 1 + z], or a pair
            `[low, high]`; drawn independently for x and y. Factors above 1
            zoom out (as in IDG).
        horizontal_flip: flip left-right with probability 0.5.
        vertical_flip: flip up-down with probability 0.5.
        fill_mode: one of "nearest", "constant", "reflect", "wrap".
        cval: fill value for `fill_mode="constant"`, in input units.
        rescale: factor multiplied into every output (also at inference),
            e.g. `1 / 255`; `None` or 0 to skip.
        brightness_range: pair `[low, high]` of brightness factors, or None.
        interpolation: "bilinear" (IDG's `interpolation_order=1`) or "nearest".
        seed: int seed for reproducible random parameters.
        **kwargs: base `Layer` arguments (name, dtype, ...).

    Call arguments:
        inputs: images `(batch, height, width, channels)` or one image
            `(height, width, channels)`, channels last, any value range.
        training: apply the random augmentation (default True, so it
            augments inside `tf.data.Dataset.map`); a model passes False at
            inference, which leaves only `rescale`. Inside a model, call the
            model with an explicit `training=` (`fit` and `predict` do):
            Keras hands this layer's default True on to the layers after it,
            so a bare `model(x)` would also run BatchNormalization in
            training mode.
        use_opencv: run the warp in OpenCV (`cv2.warpAffine` through
            `tf.numpy_function`) instead of `keras.ops.image.affine_transform`:
            same parameters, about 3x faster on CPU, but TensorFlow only and
            not XLA- or SavedModel-friendly. `make_dataset` turns it on inside
            tf.data; leave it off inside models.

    Example:
        Inside a `tf.data` pipeline (any Keras backend):

        ```python
        import numpy as np
        import tensorflow as tf
        from hybridvision.layers import AffineAugmentation

        augment = AffineAugmentation(rotation_range=40, width_shift_range=0.2,
                                     height_shift_range=0.2, shear_range=0.2,
                                     zoom_range=0.2, horizontal_flip=True,
                                     rescale=1 / 255, seed=0)
        images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
        ds = tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 2)).batch(4)
        ds = ds.map(lambda x, y: (augment(x, training=True), y))
        for batch, labels in ds.take(1):
            print(batch.shape)  # (4, 32, 32, 3), rescaled to about 0..1
        ```

    Reference:
        Chollet et al., Keras 2 `ImageDataGenerator` (keras-preprocessing).
    """

    def __init__(
        self,
        rotation_range=0.0,
        width_shift_range=0.0,
        height_shift_range=0.0,
        shear_range=0.0,
        zoom_range=0.0,
        horizontal_flip=False,
        vertical_flip=False,
        fill_mode="nearest",
        cval=0.0,
        rescale=None,
        brightness_range=None,
        interpolation="bilinear",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rotation_range = _check_range("rotation_range", rotation_range)
        self.width_shift_range = _check_range(
            "width_shift_range", width_shift_range, allow_int=True
        )
        self.height_shift_range = _check_range(
            "height_shift_range", height_shift_range, allow_int=True
        )
        self.shear_range = _check_range("shear_range", shear_range)
        self.zoom_range = list(zoom_range) if isinstance(zoom_range, (list, tuple)) else zoom_range
        self._zoom_bounds = _pair("zoom_range", zoom_range, lambda z: (1.0 - z, 1.0 + z))
        if self._zoom_bounds[0] <= 0:
            raise ValueError(f"`zoom_range` must keep scale factors above 0; got {zoom_range!r}.")
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        if fill_mode not in FILL_MODES:
            raise ValueError(f"`fill_mode` must be one of {FILL_MODES}; got {fill_mode!r}.")
        self.fill_mode = fill_mode
        self.cval = float(cval)
        if rescale is not None and (
            isinstance(rescale, bool) or not isinstance(rescale, numbers.Real)
        ):
            raise ValueError(
                f"`rescale` must be a number such as 1 / 255, or None; got {rescale!r}."
            )
        self.rescale = rescale
        if brightness_range is not None:
            brightness_range = list(_pair("brightness_range", brightness_range))
        self.brightness_range = brightness_range
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {INTERPOLATIONS}; got {interpolation!r}."
            )
        self.interpolation = interpolation
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        # TF's projective-transform kernel has no XLA lowering.
        self.supports_jit = False
        self._has_geometry = bool(
            rotation_range
            or width_shift_range
            or height_shift_range
            or shear_range
            or self._zoom_bounds != (1.0, 1.0)
            or horizontal_flip
            or vertical_flip
        )

    def call(self, inputs, training=True, use_opencv=False):
        ops = self.backend
        images = ops.cast(inputs, self.compute_dtype)
        single = len(images.shape) == 3
        if single:
            images = ops.numpy.expand_dims(images, 0)
        if training and (self._has_geometry or self.brightness_range is not None):
            params = self.get_random_transformation(images)
            images = self.transform_images(images, params, use_opencv=use_opencv)
        if self.rescale:
            images = images * self.rescale
        if single:
            images = ops.numpy.squeeze(images, 0)
        return images

    def get_random_transformation(self, images):
        """Draws one set of parameters per image of a batch `(B, H, W, C)`.

        Returns a dict of `(B,)` tensors keyed like `transform_matrix` expects
        (left out when no geometric knob is set), plus "brightness" when
        `brightness_range` is set.
        """
        ops = self.backend
        batch, height, width = ops.core.shape(images)[:3]
        seed = self._get_seed_generator(ops._backend)
        draws = ops.random.uniform((batch, len(_PARAM_NAMES)), 0.0, 1.0, seed=seed)
        u = {name: draws[:, i] for i, name in enumerate(_PARAM_NAMES)}

        def symmetric(name, limit):
            return (2.0 * u[name] - 1.0) * limit

        def shift(name, limit, size):
            if _is_int(limit):
                # IDG draws whole pixels from [-limit, limit] for int ranges.
                return ops.numpy.floor(u[name] * (2 * limit + 1)) - limit
            pixels = symmetric(name, limit)
            return pixels * ops.cast(size, pixels.dtype) if limit < 1 else pixels

        def flip(name, enabled):
            return ops.cast(u[name] < 0.5, u[name].dtype) if enabled else u[name] * 0.0

        params = {}
        if self._has_geometry:
            zoom_lo, zoom_hi = self._zoom_bounds
            params = {
                "angle": symmetric("angle", self.rotation_range),
                "shift_x": shift("shift_x", self.width_shift_range, width),
                "shift_y": shift("shift_y", self.height_shift_range, height),
                "shear": symmetric("shear", self.shear_range),
                "zoom_x": zoom_lo + (zoom_hi - zoom_lo) * u["zoom_x"],
                "zoom_y": zoom_lo + (zoom_hi - zoom_lo) * u["zoom_y"],
                "flip_x": flip("flip_x", self.horizontal_flip),
                "flip_y": flip("flip_y", self.vertical_flip),
            }
        if self.brightness_range is not None:
            lo, hi = self.brightness_range
            params["brightness"] = lo + (hi - lo) * u["brightness"]
        return params

    def transform_matrix(self, params, height, width):
        """Composes the per-image pull matrices, shape `(B, 8)`.

        `params` holds `(B,)` arrays: "angle" and "shear" in degrees,
        "shift_x"/"shift_y" in pixels (positive samples from further right /
        down, i.e. moves the content left / up, as IDG's `tx`, `ty`),
        "zoom_x"/"zoom_y" scale factors, "flip_x"/"flip_y" 0 or 1; missing keys
        mean "no change" (at least one key must be given). The matrix
        is IDG's `rotation @ shift @ shear @ zoom` followed by the flips,
        conjugated by a translation to the pixel-grid center; it maps output
        (x, y) to input coordinates, the convention of
        `keras.ops.image.affine_transform`.
        """
        ops = self.backend
        dtype = "float32"
        given = {
            k: ops.cast(ops.convert_to_tensor(v), dtype)
            for k, v in params.items()
            if k in _IDENTITY
        }
        if not given:
            raise ValueError(
                f"`params` needs at least one of {tuple(_IDENTITY)}; got {sorted(params)}."
            )
        like = next(iter(given.values()))
        p = {k: given.get(k, ops.numpy.zeros_like(like) + v) for k, v in _IDENTITY.items()}
        theta = p["angle"] * (math.pi / 180.0)
        shear = p["shear"] * (math.pi / 180.0)
        cos_r, sin_r = ops.numpy.cos(theta), ops.numpy.sin(theta)
        sign_x = 1.0 - 2.0 * p["flip_x"]
        sign_y = 1.0 - 2.0 * p["flip_y"]
        # shear @ zoom @ flip is upper triangular: k00, k01, k11.
        k00 = p["zoom_x"] * sign_x
        k01 = -ops.numpy.sin(shear) * p["zoom_y"] * sign_y
        k11 = ops.numpy.cos(shear) * p["zoom_y"] * sign_y
        a00 = cos_r * k00
        a01 = cos_r * k01 - sin_r * k11
        a10 = sin_r * k00
        a11 = sin_r * k01 + cos_r * k11
        a02 = cos_r * p["shift_x"] - sin_r * p["shift_y"]
        a12 = sin_r * p["shift_x"] + cos_r * p["shift_y"]
        cx = (ops.cast(width, dtype) - 1.0) / 2.0
        cy = (ops.cast(height, dtype) - 1.0) / 2.0
        b0 = a02 + cx - (a00 * cx + a01 * cy)
        b1 = a12 + cy - (a10 * cx + a11 * cy)
        zeros = a00 * 0.0
        return ops.numpy.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)

    def transform_images(self, images, params, use_opencv=False):
        """Warps a batch `(B, H, W, C)` with explicit `params` (see
        `transform_matrix`) and applies "brightness" when present."""
        ops = self.backend
        if any(k in params for k in _IDENTITY):
            height, width = ops.core.shape(images)[1:3]
            matrix = self.transform_matrix(params, height, width)
            if use_opencv:
                images = self._opencv_warp(images, matrix)
            else:
                images = ops.image.affine_transform(
                    images,
                    matrix,
                    interpolation=self.interpolation,
                    fill_mode=self.fill_mode,
                    fill_value=self.cval,
                    data_format="channels_last",
                )
        if "brightness" in params:
            factor = ops.cast(params["brightness"], images.dtype)
            images = images * factor[:, None, None, None]
        return images

    def _opencv_warp(self, images, matrix):
        if self.backend.name != "tensorflow":
            raise ValueError(
                f"use_opencv=True needs TensorFlow tensors (e.g. inside tf.data); the layer "
                f"runs on {self.backend.name!r}. Call it with use_opencv=False."
            )
        import tensorflow as tf

        warped = tf.numpy_function(
            lambda x, m: _opencv_warp_batch(x, m, self.interpolation, self.fill_mode, self.cval),
            [images, matrix],
            images.dtype,
            stateful=False,
        )
        return tf.ensure_shape(warped, images.shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rotation_range": self.rotation_range,
                "width_shift_range": self.width_shift_range,
                "height_shift_range": self.height_shift_range,
                "shear_range": self.shear_range,
                "zoom_range": self.zoom_range,
                "horizontal_flip": self.horizontal_flip,
                "vertical_flip": self.vertical_flip,
                "fill_mode": self.fill_mode,
                "cval": self.cval,
                "rescale": self.rescale,
                "brightness_range": self.brightness_range,
                "interpolation": self.interpolation,
                "seed": self.seed,
            }
        )
        return config


def _opencv_warp_batch(images, matrix, interpolation, fill_mode, cval):
    """NumPy side of `use_opencv`: one `cv2.warpAffine` per image (pull matrices)."""
    import cv2

    flags = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}[
        interpolation
    ] | cv2.WARP_INVERSE_MAP
    border = {
        "nearest": cv2.BORDER_REPLICATE,
        "constant": cv2.BORDER_CONSTANT,
        "reflect": cv2.BORDER_REFLECT,
        "wrap": cv2.BORDER_WRAP,
    }[fill_mode]
    out = np.empty_like(images)
    height, width, channels = images.shape[1:]
    for i in range(len(images)):
        affine = matrix[i, :6].reshape(2, 3).astype(np.float64)
        # cv2 handles at most 4 channels per call.
        for c in range(0, channels, 4):
            warped = cv2.warpAffine(
                np.ascontiguousarray(images[i, :, :, c : c + 4]),
                affine,
                (width, height),
                flags=flags,
                borderMode=border,
                borderValue=(cval,) * 4,
            )
            out[i, :, :, c : c + 4] = warped.reshape(height, width, -1)
    return out


# ImageDataGenerator arguments we take over, and those we accept only at their
# no-op default (users often spell the defaults out when copying old code).
_IDG_SUPPORTED = (
    "rotation_range",
    "width_shift_range",
    "height_shift_range",
    "shear_range",
    "zoom_range",
    "horizontal_flip",
    "vertical_flip",
    "fill_mode",
    "cval",
    "rescale",
    "brightness_range",
    "interpolation_order",
    "validation_split",
    "seed",
)
_IDG_NOOP_DEFAULTS = {
    "featurewise_center": False,
    "samplewise_center": False,
    "featurewise_std_normalization": False,
    "samplewise_std_normalization": False,
    "zca_whitening": False,
    "zca_epsilon": 1e-6,
    "channel_shift_range": 0.0,
    "preprocessing_function": None,
    "data_format": "channels_last",
    "dtype": "float32",
}


def from_image_data_generator(**kwargs):
    """Builds an `AffineAugmentation` from old `ImageDataGenerator(...)` arguments.

    Returns `(augmentation, validation_split)`: the split (0.0 when not
    given) belongs to the data split, not to the layer; pass it to
    `image_dataset_from_folders(..., validation_split=...)` or `split_table`.
    `interpolation_order` 0 / 1 maps to "nearest" / "bilinear". Arguments
    without an equivalent (featurewise/samplewise normalisation, ZCA,
    channel shifts, `preprocessing_function`) are accepted only at their
    no-op defaults; anything else raises ValueError listing what is supported.

    Example:

    ```python
    augment, val_split = from_image_data_generator(
        rotation_range=40, zoom_range=0.2, horizontal_flip=True,
        rescale=1 / 255, validation_split=0.2)
    ```
    """
    supported = ", ".join(_IDG_SUPPORTED)
    layer_kwargs = {}
    for name, value in kwargs.items():
        if name in _IDG_SUPPORTED:
            layer_kwargs[name] = value
        elif name in _IDG_NOOP_DEFAULTS:
            if value != _IDG_NOOP_DEFAULTS[name]:
                raise ValueError(
                    f"ImageDataGenerator argument `{name}={value!r}` is not supported by "
                    f"AffineAugmentation (do it in the model or the data pipeline instead); "
                    f"supported: {supported}."
                )
        else:
            raise ValueError(
                f"Unknown ImageDataGenerator argument `{name}`; supported: {supported}."
            )
    validation_split = float(layer_kwargs.pop("validation_split", 0.0))
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"`validation_split` must be in [0, 1); got {validation_split!r}.")
    order = layer_kwargs.pop("interpolation_order", 1)
    if order not in (0, 1):
        raise ValueError(
            f"`interpolation_order` must be 0 (nearest) or 1 (bilinear); got {order!r}."
        )
    layer_kwargs["interpolation"] = "nearest" if order == 0 else "bilinear"
    return AffineAugmentation(**layer_kwargs), validation_split
