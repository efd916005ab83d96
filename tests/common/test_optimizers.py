import json
import math

import keras
import numpy as np
import pytest

from hybridvision.common.optimizers import OPTIMIZERS, AdaBound, get_optimizer


def reference_adabound(
    params,
    grads_per_step,
    lrs,
    base_lr,
    beta_1=0.9,
    beta_2=0.999,
    final_lr=0.1,
    gamma=1e-3,
    eps=1e-8,
    amsbound=False,
    weight_decay=None,
):
    """NumPy transcription of Luolc/AdaBound's `step()` (float64), plus
    Keras's decoupled weight decay applied before each step."""
    params = [p.astype("float64") for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    v_max = [np.zeros_like(p) for p in params]
    for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        for i, (p, g) in enumerate(zip(params, grads)):
            if weight_decay:
                p -= p * weight_decay * lr
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g * g
            if amsbound:
                v_max[i] = np.maximum(v_max[i], v[i])
                denom = np.sqrt(v_max[i]) + eps
            else:
                denom = np.sqrt(v[i]) + eps
            step_size = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
            final = final_lr * lr / base_lr
            lower = final * (1 - 1 / (gamma * t + 1))
            upper = final * (1 + 1 / (gamma * t))
            params[i] = p - np.clip(step_size / denom, lower, upper) * m[i]
    return params


def run_keras(optimizer, params, grads_per_step, lrs=None):
    variables = [keras.Variable(p) for p in params]
    for step, grads in enumerate(grads_per_step):
        if lrs is not None:
            optimizer.learning_rate = lrs[step]
        optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
    return [keras.ops.convert_to_numpy(v) for v in variables]


def random_problem(steps=8):
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=(5,)).astype("float32")]
    # Entry scales spread over decades so that some steps hit the lower bound,
    # some the upper one and some neither; shrinking over time so that v
    # decreases and AMSBound's running maximum matters.
    entry_scale = [10.0 ** rng.uniform(-4, 2, size=p.shape) for p in params]
    grads = [
        [(rng.normal(size=p.shape) * s * 0.1**t).astype("float32")
         for p, s in zip(params, entry_scale)]
        for t in range(steps)
    ]
    return params, grads


@pytest.mark.parametrize("amsbound", [False, True])
def test_matches_reference_implementation(amsbound):
    params, grads = random_problem()
    # A large gamma makes the bounds bite within a few steps; a short beta_2
    # lets v shrink, so AMSBound's maximum changes the result.
    kwargs = dict(final_lr=0.05, gamma=0.1, beta_2=0.9, amsbound=amsbound)
    got = run_keras(AdaBound(learning_rate=0.01, **kwargs), params, grads)
    expected = reference_adabound(params, grads, [0.01] * len(grads), base_lr=0.01, **kwargs)
    other = reference_adabound(
        params, grads, [0.01] * len(grads), base_lr=0.01, **{**kwargs, "amsbound": not amsbound}
    )
    for g, e, o, p in zip(got, expected, other, params):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
        assert not np.allclose(g, p)
    assert max(np.abs(e - o).max() for e, o in zip(expected, other)) > 1e-3


@pytest.mark.parametrize("amsbound", [False, True])
def test_bounds_follow_learning_rate_changes(amsbound):
    params, grads = random_problem()
    lrs = [0.01, 0.01, 0.01, 0.005, 0.005, 0.002, 0.002, 0.002]
    kwargs = dict(final_lr=0.05, gamma=0.1, beta_2=0.9, amsbound=amsbound)
    got = run_keras(AdaBound(learning_rate=0.01, **kwargs), params, grads, lrs)
    expected = reference_adabound(params, grads, lrs, base_lr=0.01, **kwargs)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_default_hyperparameters_and_weight_decay_match_reference():
    params, grads = random_problem(steps=6)
    got = run_keras(AdaBound(learning_rate=3e-3, weight_decay=0.01), params, grads)
    expected = reference_adabound(params, grads, [3e-3] * 6, base_lr=3e-3, weight_decay=0.01)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_schedule_base_learning_rate_is_its_initial_value():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.02, decay_steps=1, decay_rate=0.5)
    optimizer = AdaBound(learning_rate=schedule)
    assert optimizer.base_learning_rate == pytest.approx(0.02)
    params, grads = random_problem(steps=5)
    got = run_keras(AdaBound(learning_rate=schedule, final_lr=0.05, gamma=0.1), params, grads)
    lrs = [0.02 * 0.5**t for t in range(5)]
    expected = reference_adabound(params, grads, lrs, base_lr=0.02, final_lr=0.05, gamma=0.1)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_config_round_trip():
    optimizer = AdaBound(learning_rate=0.004, final_lr=0.2, gamma=2e-3, amsbound=True)
    config = optimizer.get_config()
    for arg in ("beta_1", "beta_2", "final_lr", "gamma", "epsilon", "amsbound",
                "base_learning_rate", "weight_decay"):
        assert arg in config
    restored = AdaBound.from_config(config)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    serialized = keras.saving.serialize_keras_object(optimizer)
    assert serialized["registered_name"] == "hybridvision>AdaBound"
    assert isinstance(keras.saving.deserialize_keras_object(serialized), AdaBound)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="final_lr"):
        AdaBound(final_lr=0)
    with pytest.raises(ValueError, match="beta_1"):
        AdaBound(beta_1=1.0)


def tiny_problem():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32") + 0.3)[:, None]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    return model, x, y


@pytest.mark.parametrize("name", ["adabound", "amsbound"])
def test_fit_decreases_loss(name):
    model, x, y = tiny_problem()
    model.compile(optimizer=get_optimizer(name, learning_rate=0.01), loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]


def test_save_and_reload_model_compiled_with_adabound(tmp_path):
    model, x, y = tiny_problem()
    model.compile(optimizer=AdaBound(learning_rate=0.01, amsbound=True), loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)  # no custom_objects needed
    assert isinstance(restored.optimizer, AdaBound)
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 4
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    np.testing.assert_allclose(model.predict(x, verbose=0), restored.predict(x, verbose=0))
    # Training continues identically from the restored state.
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    restored.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), restored.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_get_optimizer_names_and_defaults():
    assert OPTIMIZERS == ("adam", "sgd", "rmsprop", "adabound", "amsbound")
    assert isinstance(get_optimizer("adam", 0.002), keras.optimizers.Adam)
    sgd = get_optimizer("SGD", 0.01)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9
    assert get_optimizer("sgd", 0.01, momentum=0.0).momentum == 0.0
    assert isinstance(get_optimizer("rmsprop", 2e-5), keras.optimizers.RMSprop)
    assert get_optimizer("adabound", 0.003).amsbound is False
    amsbound = get_optimizer("amsbound", 0.003, final_lr=0.05)
    assert amsbound.amsbound is True and amsbound.final_lr == 0.05
    assert float(amsbound.learning_rate) == pytest.approx(0.003)
    with pytest.raises(ValueError, match="valid names: adam, sgd"):
        get_optimizer("adagrad")
