import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from hybridvision.common.data.affine_augment import AffineAugmentation, from_image_data_generator
from tests.layer_harness import run_layer_test

H, W = 12, 16
FULL_KNOBS = {
    "rotation_range": 40,
    "width_shift_range": 0.2,
    "height_shift_range": 3,
    "shear_range": 20,
    "zoom_range": [0.8, 1.25],
    "horizontal_flip": True,
    "vertical_flip": True,
    "fill_mode": "reflect",
    "cval": 5.0,
    "rescale": 1 / 255,
    "brightness_range": [0.5, 1.5],
    "interpolation": "bilinear",
    "seed": 3,
}


def images(batch=2, height=H, width=W, channels=3):
    return (
        np.random.default_rng(0).uniform(0, 255, (batch, height, width, channels)).astype("float32")
    )


def numpy_value(x):
    return keras.ops.convert_to_numpy(x)


def idg_matrix(angle, tx, ty, shear, zx, zy, flip_x, flip_y, height, width):
    """ImageDataGenerator's matrices in its order, flips after, about the pixel-grid center."""
    theta, shear = np.deg2rad(angle), np.deg2rad(shear)
    rotation = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    shear_m = np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
    zoom = np.diag([zx, zy, 1.0])
    flips = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0, 1.0])
    cx, cy = (width - 1) / 2, (height - 1) / 2
    to_center = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]])
    from_center = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    return to_center @ rotation @ shift @ shear_m @ zoom @ flips @ from_center


RANDOM_PARAMS = {
    "angle": np.array([30.0, -50.0, 10.0]),
    "shift_x": np.array([1.5, -2.0, 0.0]),
    "shift_y": np.array([0.5, 1.0, -3.0]),
    "shear": np.array([10.0, 0.0, -20.0]),
    "zoom_x": np.array([0.9, 1.1, 1.2]),
    "zoom_y": np.array([1.1, 0.8, 1.0]),
    "flip_x": np.array([0.0, 1.0, 1.0]),
    "flip_y": np.array([1.0, 0.0, 1.0]),
}


def test_composed_matrix_matches_idg_order():
    layer = AffineAugmentation()
    got = numpy_value(layer.transform_matrix(RANDOM_PARAMS, H, W))
    assert got.shape == (3, 8)
    for b in range(3):
        ref = idg_matrix(*(RANDOM_PARAMS[k][b] for k in RANDOM_PARAMS), H, W)
        np.testing.assert_allclose(got[b, :6], ref[:2].reshape(-1), rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(got[b, 6:], [0.0, 0.0])


def test_warp_matches_scipy_reference():
    x = images(3, channels=2)
    for fill_mode, scipy_mode in [
        ("nearest", "nearest"),
        ("reflect", "reflect"),
        ("constant", "grid-constant"),
    ]:
        layer = AffineAugmentation(fill_mode=fill_mode, cval=3.0)
        got = numpy_value(layer.transform_images(x, RANDOM_PARAMS))
        for b in range(3):
            m = idg_matrix(*(RANDOM_PARAMS[k][b] for k in RANDOM_PARAMS), H, W)
            m_rc = m[[1, 0]][:, [1, 0, 2]]  # scipy indexes (row, col), the matrix (x, y)
            ref = [
                ndimage.affine_transform(
                    x[b, ..., c], m_rc[:2, :2], m_rc[:2, 2], order=1, mode=scipy_mode, cval=3.0
                )
                for c in range(2)
            ]
            np.testing.assert_allclose(got[b], np.stack(ref, axis=-1), atol=1e-3, err_msg=fill_mode)


def test_opencv_warp_equals_keras_warp():
    x = images(3, channels=5)  # more than cv2's 4 channels per call
    for fill_mode in ("nearest", "constant", "reflect"):
        for interpolation in ("bilinear", "nearest"):
            layer = AffineAugmentation(fill_mode=fill_mode, cval=3.0, interpolation=interpolation)
            keras_path = numpy_value(layer.transform_images(x, RANDOM_PARAMS))
            opencv_path = numpy_value(layer.transform_images(x, RANDOM_PARAMS, use_opencv=True))
            np.testing.assert_allclose(
                opencv_path, keras_path, atol=1e-2, err_msg=f"{fill_mode}, {interpolation}"
            )


def test_opencv_wrap_shift_equals_roll_and_runs_in_tf_data():
    x = images()
    layer = AffineAugmentation(fill_mode="wrap")
    got = numpy_value(
        layer.transform_images(x, {"shift_x": np.array([5.0, -4.0])}, use_opencv=True)
    )
    np.testing.assert_array_equal(got[0], np.roll(x[0], -5, axis=1))
    np.testing.assert_array_equal(got[1], np.roll(x[1], 4, axis=1))
    full = AffineAugmentation(**FULL_KNOBS)
    dataset = (
        tf.data.Dataset.from_tensor_slices(x)
        .batch(2)
        .map(lambda b: full(b, training=True, use_opencv=True))
    )
    out = next(iter(dataset)).numpy()
    assert out.shape == x.shape and np.isfinite(out).all() and not np.allclose(out, x / 255)


def test_identity_when_all_knobs_zero_is_exact():
    x = images()
    np.testing.assert_array_equal(numpy_value(AffineAugmentation()(x, training=True)), x)
    # The warp itself is exact too at identity parameters.
    layer = AffineAugmentation(fill_mode="constant")
    warped = layer.transform_images(x, {"angle": np.zeros(2), "zoom_x": np.ones(2)})
    np.testing.assert_array_equal(numpy_value(warped), x)


def test_horizontal_and_vertical_flip_equal_np_flip():
    x = images()
    layer = AffineAugmentation()
    got = numpy_value(layer.transform_images(x, {"flip_x": np.array([1.0, 0.0])}))
    np.testing.assert_array_equal(got[0], np.flip(x[0], axis=1))
    np.testing.assert_array_equal(got[1], x[1])
    got = numpy_value(layer.transform_images(x, {"flip_y": np.array([1.0, 1.0])}))
    np.testing.assert_array_equal(got, np.flip(x, axis=1))


def test_random_horizontal_flip_is_per_image():
    x = np.repeat(images(1), 16, axis=0)
    got = numpy_value(AffineAugmentation(horizontal_flip=True, seed=1)(x))
    flipped = [np.array_equal(g, np.flip(x[0], axis=1)) for g in got]
    unchanged = [np.array_equal(g, x[0]) for g in got]
    assert all(f or u for f, u in zip(flipped, unchanged, strict=True))
    assert any(flipped) and any(unchanged)


def test_shift_by_pixels_equals_roll_with_fill():
    x = images()
    layer = AffineAugmentation(fill_mode="constant", cval=7.0)
    # Positive shift_x samples from the right: the content moves left, as IDG's tx.
    got = numpy_value(
        layer.transform_images(
            x, {"shift_x": np.array([2.0, 0.0]), "shift_y": np.array([0.0, -3.0])}
        )
    )
    expected = np.roll(x[0], -2, axis=1)
    expected[:, -2:] = 7.0
    np.testing.assert_array_equal(got[0], expected)
    expected = np.roll(x[1], 3, axis=0)
    expected[:3] = 7.0
    np.testing.assert_array_equal(got[1], expected)
    wrapped = AffineAugmentation(fill_mode="wrap").transform_images(
        x, {"shift_x": np.array([5.0, -4.0])}
    )
    np.testing.assert_allclose(numpy_value(wrapped)[0], np.roll(x[0], -5, axis=1), atol=1e-4)
    np.testing.assert_allclose(numpy_value(wrapped)[1], np.roll(x[1], 4, axis=1), atol=1e-4)


def test_rotation_by_fixed_angles_equals_rot90():
    layer = AffineAugmentation()
    square = images(1, 9, 9)
    got = numpy_value(layer.transform_images(square, {"angle": np.array([90.0])}))
    # IDG's positive angle turns the content counter-clockwise, as np.rot90.
    np.testing.assert_allclose(got[0], np.rot90(square[0], k=1), atol=1e-3)
    # 180 degrees about the true center also works for non-square images.
    x = images()
    got = numpy_value(layer.transform_images(x, {"angle": np.array([180.0, -180.0])}))
    np.testing.assert_allclose(got, np.rot90(x, k=2, axes=(1, 2)), atol=1e-3)


def test_random_parameters_stay_in_their_ranges():
    layer = AffineAugmentation(**FULL_KNOBS)
    params = {k: numpy_value(v) for k, v in layer.get_random_transformation(images(64)).items()}
    assert np.all(np.abs(params["angle"]) <= 40) and params["angle"].std() > 5
    assert np.all(np.abs(params["shift_x"]) <= 0.2 * W)
    # An int range means whole pixels, as ImageDataGenerator.
    np.testing.assert_array_equal(params["shift_y"], np.round(params["shift_y"]))
    assert set(np.unique(params["shift_y"])) <= set(range(-3, 4))
    assert np.all(np.abs(params["shear"]) <= 20)
    for key in ("zoom_x", "zoom_y"):
        assert np.all((params[key] >= 0.8) & (params[key] <= 1.25))
    assert set(np.unique(params["flip_x"])) == {0.0, 1.0}
    assert np.all((params["brightness"] >= 0.5) & (params["brightness"] <= 1.5))
    # Float zoom z gives [1 - z, 1 + z].
    zoom = AffineAugmentation(zoom_range=0.1, seed=0).get_random_transformation(images(64))
    assert np.all(np.abs(numpy_value(zoom["zoom_x"]) - 1.0) <= 0.1 + 1e-6)


def test_each_image_gets_its_own_transform_and_seed_reproduces():
    x = np.repeat(images(1), 4, axis=0)
    first = numpy_value(AffineAugmentation(rotation_range=30, seed=5)(x))
    assert not np.allclose(first[0], first[1])
    again = numpy_value(AffineAugmentation(rotation_range=30, seed=5)(x))
    np.testing.assert_array_equal(first, again)


def test_rescale_brightness_and_inference_mode():
    x = images()
    np.testing.assert_allclose(numpy_value(AffineAugmentation(rescale=0.5)(x)), x * 0.5, rtol=1e-6)
    layer = AffineAugmentation(brightness_range=[0.5, 1.5])
    got = numpy_value(layer.transform_images(x, {"brightness": np.array([0.5, 1.25])}))
    np.testing.assert_allclose(got, x * np.array([0.5, 1.25])[:, None, None, None], rtol=1e-6)
    full = AffineAugmentation(**FULL_KNOBS)
    np.testing.assert_allclose(numpy_value(full(x, training=False)), x / 255, rtol=1e-6)
    assert not np.allclose(numpy_value(full(x, training=True)), x / 255)


def test_single_image_uint8_and_symbolic_calls():
    x = images()
    layer = AffineAugmentation(rotation_range=10, rescale=1 / 255, seed=0)
    single = layer(x[0].astype("uint8"))
    assert tuple(single.shape) == (H, W, 3) and single.dtype == "float32"
    symbolic = layer(keras.Input((H, W, 3)))
    assert tuple(symbolic.shape) == (None, H, W, 3)


def test_inside_tf_data_map_batched_and_unbatched():
    x = images(4)
    layer = AffineAugmentation(**FULL_KNOBS)
    batched = tf.data.Dataset.from_tensor_slices(x).batch(2).map(lambda b: layer(b, training=True))
    out = np.concatenate([b.numpy() for b in batched])
    assert out.shape == x.shape and np.isfinite(out).all()
    assert not np.allclose(out, x / 255)
    unbatched = tf.data.Dataset.from_tensor_slices(x).map(layer)
    assert [tuple(e.shape) for e in unbatched] == [(H, W, 3)] * 4


def test_config_round_trip_holds_every_argument():
    layer = AffineAugmentation(**FULL_KNOBS)
    config = layer.get_config()
    for name in FULL_KNOBS:
        assert name in config, name
    clone = AffineAugmentation.from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == "hybridvision>AffineAugmentation"


def test_keras_save_and_reload(tmp_path):
    inputs = keras.Input((H, W, 3))
    features = AffineAugmentation(**FULL_KNOBS)(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(features))
    x = images()
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )
    np.testing.assert_allclose(model.predict(x, verbose=0), x.mean(axis=(1, 2)) / 255, rtol=1e-5)
    assert reloaded.layers[1].get_config() == model.layers[1].get_config()


def test_layer_harness():
    """The shared harness: config round trip, every argument in the config, symbolic and eager
    shapes, no weights, and the .keras save / reload without custom_objects (inference mode: rescale)."""
    x = images()
    out = run_layer_test(
        AffineAugmentation,
        FULL_KNOBS,
        x,
        expected_output_shape=x.shape,
        expected_num_trainable_weights=0,
        run_training_check=False,
    )
    assert not np.allclose(out, x / 255)  # the eager call trains: augmented


def test_bad_arguments_raise_clear_errors():
    cases = [
        ({"fill_mode": "mirror"}, "fill_mode"),
        ({"rotation_range": -5}, "rotation_range"),
        ({"zoom_range": [1.2, 0.8]}, "zoom_range"),
        ({"zoom_range": 1.0}, "zoom_range"),
        ({"brightness_range": 0.5}, "brightness_range"),
        ({"interpolation": "bicubic"}, "interpolation"),
        ({"rescale": "1/255"}, "rescale"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            AffineAugmentation(**kwargs)


def test_from_image_data_generator_maps_knobs():
    layer, split = from_image_data_generator(
        rotation_range=40,
        width_shift_range=0.2,
        zoom_range=0.2,
        horizontal_flip=True,
        fill_mode="nearest",
        rescale=1 / 255,
        validation_split=0.25,
        interpolation_order=0,
        featurewise_center=False,
        preprocessing_function=None,
    )
    assert isinstance(layer, AffineAugmentation)
    assert split == 0.25
    assert layer.rotation_range == 40 and layer.zoom_range == 0.2 and layer.horizontal_flip
    assert layer.interpolation == "nearest" and math.isclose(layer.rescale, 1 / 255)
    assert from_image_data_generator()[1] == 0.0


def test_from_image_data_generator_rejects_unsupported():
    cases = [
        ({"featurewise_center": True}, "featurewise_center.*supported: rotation_range"),
        ({"preprocessing_function": abs}, "preprocessing_function"),
        ({"rotaton_range": 10}, "Unknown ImageDataGenerator argument `rotaton_range`; supported"),
        ({"validation_split": 1.5}, "validation_split"),
        ({"width_shift_range": [1, 2]}, "width_shift_range"),
        ({"interpolation_order": 3}, "interpolation_order"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            from_image_data_generator(**kwargs)
