"""Each model trains a step; weight sharing and the probability comparison are exact."""

import keras
import numpy as np
import pytest

from hybridvision.apps.digit_pairs.config import MODELS
from hybridvision.apps.digit_pairs.models import accuracy_key, build_model, compile_model, has_aux


def _batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 14, 14, 2)).astype("float32")
    classes = rng.integers(0, 10, (n, 2))
    y = {"compare": (classes[:, 0] <= classes[:, 1]).astype("int32")}
    return x, y, classes


@pytest.mark.parametrize("name", MODELS)
def test_each_model_trains_one_step(name):
    x, y, classes = _batch()
    if has_aux(name):
        y.update(digit_a=classes[:, 0], digit_b=classes[:, 1])
    model = compile_model(build_model(name), name, learning_rate=0.005)
    assert set(model.output_names) == set(y)
    out = model(x)
    assert out["compare"].shape == (4, 2)
    np.testing.assert_allclose(np.asarray(out["compare"]).sum(-1), 1.0, rtol=1e-5)
    before = [np.array(w) for w in model.trainable_weights]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and accuracy_key(name) in logs
    for w, old in zip(model.trainable_weights, before):
        assert not np.allclose(np.array(w), old), f"{w.path} did not change in one step"


def _sizes(model, names):
    """Each named layer's output size without the batch axis."""
    return {name: tuple(model.get_layer(name).output.shape[1:]) for name in names}


def _dropouts(model):
    return sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


def test_report_tables_layer_sizes_and_parameters():
    # The report's tables (PyTorch, channels first; here channels last): 5x5 convs with padding 1.
    fc = build_model("fc")
    assert _sizes(fc, ["flatten", "hidden", "compare"]) == {"flatten": (392,), "hidden": (32,), "compare": (2,)}
    assert fc.count_params() == 12_642 and _dropouts(fc) == 0 and _dropouts(build_model("fc_dropout")) == 1

    cnn = build_model("cnn")  # conv -> 32x12x12, pool -> 32x6x6 = 1152 -> 64 -> 2, two dropouts
    assert _sizes(cnn, ["conv", "pool", "flatten", "dense", "compare"]) == {
        "conv": (12, 12, 32), "pool": (6, 6, 32), "flatten": (1152,), "dense": (64,), "compare": (2,)}
    assert cnn.count_params() == 75_554 and _dropouts(cnn) == 2

    deep = build_model("deep_cnn")  # 32x12x12 -> 32x6x6 -> 64x4x4 -> 64x2x2 = 256 -> 64 -> 2, three dropouts
    assert _sizes(deep, ["block1_conv", "block1_pool", "block2_conv", "block2_pool", "flatten", "dense", "compare"]) == {
        "block1_conv": (12, 12, 32), "block1_pool": (6, 6, 32), "block2_conv": (4, 4, 64), "block2_pool": (2, 2, 64),
        "flatten": (256,), "dense": (64,), "compare": (2,)}
    # "about 69,858": Keras counts BatchNorm's moving mean and variance too (192 of them).
    assert deep.count_params() == 69_858 and _dropouts(deep) == 3
    assert sum(int(np.prod(w.shape)) for w in deep.trainable_weights) == 69_858 - 2 * (32 + 64)

    aux = build_model("aux")  # per digit: the deep CNN ending in Linear 10; 10 + 10 = 20 -> ONE Linear to 2
    branch = aux.get_layer("digit_classifier")
    assert _sizes(branch, ["block2_pool", "flatten", "dense", "digit_class"]) == {
        "block2_pool": (2, 2, 64), "flatten": (256,), "dense": (64,), "digit_class": (10,)}
    assert _sizes(aux, ["classes", "compare"]) == {"classes": (20,), "compare": (2,)}
    assert [layer.name for layer in aux.layers if isinstance(layer, keras.layers.Dense)] == ["compare"]
    assert aux.count_params() == branch.count_params() + 20 * 2 + 2 == 69_620


def test_earlier_aux_layout_keeps_its_sizes():
    # Before issue 34: the branch with 'same' padding (flatten 576), one dropout, and a dense 64 after the 20.
    model = build_model("aux_same_dense")
    branch = model.get_layer("digit_classifier")
    assert branch.get_layer("flatten").output.shape[1:] == (576,) and _dropouts(branch) == 1
    assert model.get_layer("joint").output.shape[1:] == (64,)
    assert model.count_params() == 91_436


@pytest.mark.parametrize("name", ["siamese", "aux"])
def test_shared_branch_is_one_model_called_twice(name):
    model = build_model(name)
    branches = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert len(branches) == 1 and len(branches[0]._inbound_nodes) == 2
    if name == "aux":
        x, _, _ = _batch(seed=1)
        out = model(x, training=False)
        swapped = model(x[..., ::-1], training=False)
        np.testing.assert_allclose(swapped["digit_a"], out["digit_b"], atol=1e-6)
        np.testing.assert_allclose(swapped["digit_b"], out["digit_a"], atol=1e-6)


def test_aux_prob_compare_is_exact_probability_and_survives_save(tmp_path):
    model = compile_model(build_model("aux_prob"), "aux_prob", learning_rate=0.005)
    x, _, _ = _batch(seed=2)
    out = {k: np.asarray(v, dtype="float64") for k, v in model(x, training=False).items()}
    p_le = np.array([sum(pa[i] * pb[j] for i in range(10) for j in range(i, 10)) for pa, pb in zip(out["digit_a"], out["digit_b"])])
    np.testing.assert_allclose(out["compare"][:, 1], p_le, rtol=1e-5)
    np.testing.assert_allclose(out["compare"][:, 0], 1 - p_le, rtol=1e-4, atol=1e-6)
    path = tmp_path / "aux_prob.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x, training=False)["compare"], out["compare"], rtol=1e-5, atol=1e-6)


def test_bad_names_and_weights():
    with pytest.raises(ValueError, match="--model 'lenet' is not valid"):
        build_model("lenet")
    with pytest.raises(ValueError, match="--aux-weight"):
        compile_model(build_model("aux"), "aux", 0.005, aux_weight=0.5)


def test_warmup_ramps_the_learning_rate_then_holds_it():
    x, y, _ = _batch()
    model = compile_model(build_model("fc"), "fc", learning_rate=0.004, warmup_steps=4)
    optimizer = model.optimizer
    rates = []
    for _ in range(6):
        rates.append(float(optimizer.learning_rate))
        model.train_on_batch(x, y)
    np.testing.assert_allclose(rates, [0.0, 0.001, 0.002, 0.003, 0.004, 0.004], atol=1e-7)
