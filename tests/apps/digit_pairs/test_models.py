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


def test_report_sizes_of_the_plain_models():
    # FC: 392 -> 32 -> 2; CNN: 5x5 conv (valid) 14 -> 10, pool -> 5x5x32 = 800 -> 64 -> 2.
    assert build_model("fc").count_params() == 392 * 32 + 32 + 32 * 2 + 2
    conv = 5 * 5 * 2 * 32 + 32
    assert build_model("cnn").count_params() == conv + 800 * 64 + 64 + 64 * 2 + 2


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
