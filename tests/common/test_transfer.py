import keras
import numpy as np
import pytest

from hybridvision.common.backbones import build_backbone
from hybridvision.common.layers import CondConv2D, FiLMConv2D
from hybridvision.common.layers.hybrid_conv2d import HybridConv2D
from hybridvision.common.transfer import freeze, hybridize, unfreeze_top

# ---------------------------------------------------------------- freezing


def batchnorms(model):
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(batchnorms(layer))
        elif isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
    return found


def bn_statistics(model):
    return [
        (keras.ops.convert_to_numpy(bn.moving_mean), keras.ops.convert_to_numpy(bn.moving_variance))
        for bn in batchnorms(model)
    ]


def values(layer):
    return [np.array(w) for w in layer.get_weights()]


def classifier(base):
    inputs = keras.Input((16, 16, 3))
    x = base(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs)


def shifted_data():
    # Far from BN's initial statistics (mean 0, variance 1): any update shows.
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(16, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 2, size=(16,))
    return x, y


def fit_a_few_steps(model, lr=1e-2):
    x, y = shifted_data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)


def test_freeze_keeps_batchnorm_statistics_and_weights():
    base = build_backbone("small", (16, 16, 3))
    model = classifier(base)
    frozen = freeze(base)
    assert frozen is base
    assert all(not layer.trainable for layer in base.layers)
    assert base.trainable_weights == []
    stats, base_weights = bn_statistics(base), values(base)
    head_before = values(model.get_layer("head"))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    fit_a_few_steps(model)
    for (mean, var), (mean_after, var_after) in zip(stats, bn_statistics(base)):
        np.testing.assert_array_equal(mean, mean_after)
        np.testing.assert_array_equal(var, var_after)
    for before, after in zip(base_weights, values(base)):
        np.testing.assert_array_equal(before, after)
    assert not np.allclose(head_before[0], values(model.get_layer("head"))[0])


def test_control_unfrozen_batchnorm_statistics_change():
    base = build_backbone("small", (16, 16, 3))
    model = classifier(base)
    stats = bn_statistics(base)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    fit_a_few_steps(model)
    for (mean, var), (mean_after, var_after) in zip(stats, bn_statistics(base)):
        assert not np.allclose(mean, mean_after)
        assert not np.allclose(var, var_after)


def test_unfreeze_top_recompile_trains_top_but_keeps_batchnorm_statistics():
    base = build_backbone("small", (16, 16, 3))
    model = classifier(base)
    freeze(base)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    fit_a_few_steps(model)

    stats = bn_statistics(base)
    convs = [base.get_layer(f"block{i}_conv") for i in range(1, 5)]
    before = [values(conv)[0] for conv in convs]
    bn_before = [values(bn)[:2] for bn in batchnorms(base)]
    # Head dense + the last two convs (BatchNormalization is not counted).
    unfreeze_top(model, 3, recompile=True)
    assert [conv.trainable for conv in convs] == [False, False, True, True]
    assert all(not bn.trainable for bn in batchnorms(base))
    assert base.trainable
    assert len(model.trainable_weights) == 4  # head kernel + bias, two conv kernels
    fit_a_few_steps(model)

    for (mean, var), (mean_after, var_after) in zip(stats, bn_statistics(base)):
        np.testing.assert_array_equal(mean, mean_after)
        np.testing.assert_array_equal(var, var_after)
    for gamma_beta, bn in zip(bn_before, batchnorms(base)):
        for a, b in zip(gamma_beta, values(bn)[:2]):
            np.testing.assert_array_equal(a, b)
    after = [values(conv)[0] for conv in convs]
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert not np.allclose(before[2], after[2])
    assert not np.allclose(before[3], after[3])


def test_unfreeze_top_can_release_batchnorm_too():
    base = build_backbone("small", (16, 16, 3))
    model = classifier(base)
    freeze(base)
    # Counting BN now: head, block4_bn, block4_conv.
    unfreeze_top(model, 3, keep_batchnorm_frozen=False)
    assert base.get_layer("block4_bn").trainable
    assert base.get_layer("block4_conv").trainable
    assert not base.get_layer("block3_bn").trainable
    stats = bn_statistics(base)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    fit_a_few_steps(model)
    after = bn_statistics(base)
    np.testing.assert_array_equal(stats[2][0], after[2][0])
    assert not np.allclose(stats[3][0], after[3][0])


def test_unfreeze_top_only_unfreezes_and_leaves_other_frozen_parts_alone():
    first = build_backbone("small", (16, 16, 3), name_prefix="a_")
    second = build_backbone("small", (16, 16, 3), name_prefix="b_")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Concatenate()([first(inputs), second(inputs)])
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(keras.layers.Flatten()(x)))
    freeze(first)
    freeze(second)
    unfreeze_top(model, 2)
    assert not first.trainable and first.trainable_weights == []
    assert second.trainable and second.get_layer("b_block4_conv").trainable
    assert not second.get_layer("b_block3_conv").trainable
    assert model.get_layer("head").trainable


def test_freeze_reaches_layers_whose_flag_differs_from_their_container():
    # On the TF backend `base.trainable = False` is a no-op when base is
    # already non-trainable, leaving a re-enabled BN inside trainable.
    base = build_backbone("small", (16, 16, 3))
    base.trainable = False
    base.get_layer("block2_bn").trainable = True
    freeze(base)
    assert not base.get_layer("block2_bn").trainable


def test_recompile_warning_and_errors():
    base = build_backbone("small", (16, 16, 3))
    model = classifier(base)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="compile"):
        freeze(model)
    with pytest.raises(ValueError, match="only 5 layers with weights"):
        unfreeze_top(model, 6)
    with pytest.raises(ValueError, match="n_layers"):
        unfreeze_top(model, -1)


# ------------------------------------------------------------- hybridize


def plain_cnn():
    inputs = keras.Input((16, 16, 3), name="images")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="valid", name="conv3")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 1, use_bias=False, name="conv4")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inputs, outputs, name="plain")
    # Non-trivial BN statistics, so copying them is checked too.
    bn = model.get_layer("bn1")
    bn.moving_mean.assign(np.linspace(-1, 1, 4).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2, 4).astype("float32"))
    return model


def nested_cnn():
    base = build_backbone("small", (16, 16, 3))
    return classifier(base), base


def hybrid_layers(model):
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(hybrid_layers(layer))
        elif isinstance(layer, HybridConv2D):
            found.append(layer)
    return found


def run(model, inputs):
    return keras.ops.convert_to_numpy(model(inputs, training=False))


def images_and_covariates(num_covariates=2):
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 1, size=(2, 16, 16, 3)).astype("float32")
    covariates = rng.integers(0, 2, size=(2, num_covariates)).astype("float32")
    return images, covariates


@pytest.mark.parametrize(
    "positions, names",
    [
        ("first", ["conv1"]),
        (3, ["conv3"]),
        ("middle", ["conv2"]),  # the (4 + 1) // 2 = 2nd of 4
        ("last", ["conv4"]),
        ([1, -1], ["conv1", "conv4"]),
    ],
)
def test_hybridize_starts_with_identical_outputs(positions, names):
    model = plain_cnn()
    hybrid = hybridize(model, positions, num_covariates=2)
    images, covariates = images_and_covariates()
    assert [x.name for x in hybrid.inputs] == ["images", "covariates"]
    assert sorted(layer.name for layer in hybrid_layers(hybrid)) == names
    expected = run(model, images)
    for covs in (covariates, 1 - covariates, np.zeros_like(covariates)):
        np.testing.assert_allclose(
            run(hybrid, [images, covs]), expected, rtol=1e-5, atol=1e-5
        )


def test_hybridize_nested_backbone():
    model, base = nested_cnn()
    hybrid = hybridize(model, [1, "last"], num_covariates=3, covariate_input_name="attrs")
    new_base = hybrid.get_layer(base.name)
    assert isinstance(new_base, keras.Model) and len(new_base.inputs) == 2
    assert [layer.name for layer in hybrid_layers(hybrid)] == ["block1_conv", "block4_conv"]
    assert not any(isinstance(layer, HybridConv2D) for layer in hybrid.layers)
    images, covariates = images_and_covariates(3)
    expected = run(model, images)
    np.testing.assert_allclose(
        run(hybrid, [images, covariates]), expected, rtol=1e-5, atol=1e-5
    )


def test_hybrid_layers_see_the_covariates():
    model = plain_cnn()
    hybrid = hybridize(model, "first", num_covariates=2)
    layer = hybrid_layers(hybrid)[0]
    rng = np.random.default_rng(5)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    images, _ = images_and_covariates()
    ones, zeros = np.ones((2, 2), "float32"), np.zeros((2, 2), "float32")
    assert not np.allclose(
        run(hybrid, [images, ones]), run(hybrid, [images, zeros])
    )


def test_hybridize_copies_and_keeps_the_original_untouched():
    model = plain_cnn()
    before = [np.array(w) for w in model.get_weights()]
    hybrid = hybridize(model, "last", num_covariates=1)
    assert hybrid.get_layer("conv2") is not model.get_layer("conv2")
    hybrid.get_layer("conv2").set_weights([w * 0 for w in hybrid.get_layer("conv2").get_weights()])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_hybridize_keeps_shared_backbone_shared():
    # Siamese use (digit pairs): one backbone applied to two inputs.
    base = build_backbone("small", (16, 16, 3), pooling="avg")
    left, right = keras.Input((16, 16, 3), name="left"), keras.Input((16, 16, 3), name="right")
    merged = keras.layers.Concatenate()([base(left), base(right)])
    model = keras.Model([left, right], keras.layers.Dense(1)(merged))
    hybrid = hybridize(model, "first", num_covariates=2)
    assert [x.name for x in hybrid.inputs] == ["left", "right", "covariates"]
    assert len(hybrid_layers(hybrid)) == 1
    images, covariates = images_and_covariates()
    np.testing.assert_allclose(
        run(hybrid, [images, images[::-1], covariates]),
        run(model, [images, images[::-1]]),
        rtol=1e-5, atol=1e-5,
    )


def test_hybridize_keeps_frozen_flags():
    model, base = nested_cnn()
    freeze(base)
    hybrid = hybridize(model, 2, num_covariates=1)
    new_base = hybrid.get_layer(base.name)
    assert not new_base.trainable
    assert not new_base.get_layer("block2_conv").trainable
    assert hybrid.get_layer("head").trainable


def test_hybridized_nested_model_saves_and_reloads(tmp_path):
    model, _ = nested_cnn()
    hybrid = hybridize(model, "last", num_covariates=2)
    path = tmp_path / "hybrid.keras"
    hybrid.save(path)
    restored = keras.models.load_model(path)
    images, covariates = images_and_covariates()
    np.testing.assert_allclose(
        run(restored, [images, covariates]),
        run(hybrid, [images, covariates]),
        rtol=1e-6, atol=1e-6,
    )
    assert len(hybrid_layers(restored)) == 1


@pytest.mark.parametrize("positions", [0, 5, -5, "centre", [], [1, 7], 2.0])
def test_hybridize_invalid_position(positions):
    with pytest.raises(ValueError, match="4 Conv2D layers|empty"):
        hybridize(plain_cnn(), positions, num_covariates=1)


def test_hybridize_middle_of_an_odd_count():
    base = build_backbone("small", (16, 16, 3))  # 4 convs; one more on top makes 5
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(2, 1, name="extra_conv")(base(inputs))
    five = keras.Model(inputs, x)
    hybrid = hybridize(five, "middle", num_covariates=1)
    assert [layer.name for layer in hybrid_layers(hybrid)] == ["block3_conv"]


def test_hybridize_bad_arguments():
    with pytest.raises(ValueError, match="num_covariates"):
        hybridize(plain_cnn(), "first", num_covariates=0)
    no_conv = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no Conv2D"):
        hybridize(no_conv, "first", num_covariates=1)


# ---------------------------------------------------------------- hybridize(kind=...)


def conditioned_layers(model, cls):
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(conditioned_layers(layer, cls))
        elif isinstance(layer, cls):
            found.append(layer)
    return found


def _condconv_8_experts(conv, num_covariates, **overrides):
    return CondConv2D.from_conv2d(conv, num_experts=8, num_covariates=num_covariates, **overrides)


@pytest.mark.parametrize(
    "kind, cls",
    [("hybrid", HybridConv2D), ("film", FiLMConv2D), ("condconv", CondConv2D), (_condconv_8_experts, CondConv2D)],
)
def test_hybridize_kinds_start_with_identical_outputs_and_save(kind, cls, tmp_path):
    model, _ = nested_cnn()
    new = hybridize(model, [1, "last"], num_covariates=2, kind=kind)
    found = conditioned_layers(new, cls)
    assert [layer.name for layer in found] == ["block1_conv", "block4_conv"]
    if kind is _condconv_8_experts:
        assert all(layer.num_experts == 8 for layer in found)
    images, covariates = images_and_covariates()
    expected = run(model, images)
    np.testing.assert_allclose(run(new, [images, covariates * 5.0]), expected, rtol=1e-5, atol=1e-5)
    path = tmp_path / "conditioned.keras"
    new.save(path)
    restored = keras.models.load_model(path)
    assert len(conditioned_layers(restored, cls)) == 2
    np.testing.assert_allclose(run(restored, [images, covariates]), run(new, [images, covariates]), atol=1e-6)


@pytest.mark.parametrize("kind", ["film", "condconv"])
def test_hybridize_kinds_see_the_covariates(kind):
    new = hybridize(plain_cnn(), "first", num_covariates=2, kind=kind)
    layer = conditioned_layers(new, (FiLMConv2D, CondConv2D))[0]
    rng = np.random.default_rng(5)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    images, _ = images_and_covariates()
    ones, zeros = np.ones((2, 2), "float32"), np.zeros((2, 2), "float32")
    assert not np.allclose(run(new, [images, ones]), run(new, [images, zeros]))


def test_hybridize_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        hybridize(plain_cnn(), "first", num_covariates=1, kind="lora")


# ---------------------------------------------------------------- hybridize: model shapes


def test_hybridize_sequential_model_and_nested_sequential():
    layers = [
        keras.Input((16, 16, 3), name="images"),
        keras.layers.Conv2D(4, 3, padding="same", name="conv_a"),
        keras.layers.BatchNormalization(name="bn_a"),
        keras.layers.Conv2D(5, 3, strides=2, name="conv_b"),
        keras.layers.GlobalAveragePooling2D(),
    ]
    sequential = keras.Sequential(layers, name="seq")
    images, covariates = images_and_covariates()
    hybrid = hybridize(sequential, "last", num_covariates=2)
    assert [x.name for x in hybrid.inputs] == ["images", "covariates"]
    assert [layer.name for layer in hybrid_layers(hybrid)] == ["conv_b"]
    np.testing.assert_allclose(run(hybrid, [images, covariates]), run(sequential, images), rtol=1e-5, atol=1e-5)

    inputs = keras.Input((16, 16, 3), name="images")
    outer = keras.Model(inputs, keras.layers.Dense(2, name="head")(sequential(inputs)))
    hybrid = hybridize(outer, "first", num_covariates=2)
    assert [layer.name for layer in hybrid_layers(hybrid)] == ["conv_a"]
    np.testing.assert_allclose(run(hybrid, [images, covariates]), run(outer, images), rtol=1e-5, atol=1e-5)


def test_hybridize_dict_inputs_and_several_outputs():
    images_in = keras.Input((16, 16, 3), name="images")
    extra_in = keras.Input((4,), name="extra")
    x = keras.layers.Conv2D(4, 3, name="conv1")(images_in)
    x = keras.layers.Conv2D(4, 3, name="conv2")(x)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    both = keras.layers.Concatenate()([pooled, extra_in])
    outputs = {"a": keras.layers.Dense(1, name="a")(both), "b": keras.layers.Dense(2, name="b")(pooled)}
    model = keras.Model({"images": images_in, "extra": extra_in}, outputs)
    hybrid = hybridize(model, [1, 2], num_covariates=2, covariate_input_name="attrs")
    assert sorted(hybrid.input) == ["attrs", "extra", "images"]
    images, covariates = images_and_covariates()
    extra = np.ones((2, 4), "float32")
    got = hybrid({"images": images, "extra": extra, "attrs": covariates})
    want = model({"images": images, "extra": extra})
    assert sorted(got) == ["a", "b"]
    for key in want:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), rtol=1e-5, atol=1e-5)


def test_hybridize_refuses_a_covariate_name_already_taken():
    with pytest.raises(ValueError, match="images"):
        hybridize(plain_cnn(), "first", num_covariates=1, covariate_input_name="images")


def test_hybridize_refuses_subclassed_models():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="functional or Sequential"):
        hybridize(Subclassed(), "first", num_covariates=1)
