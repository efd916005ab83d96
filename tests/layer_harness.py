"""One shared test harness for custom Keras layers (in the spirit of keras-hub).

Usage, from any layer test::

    from tests.layer_harness import run_layer_test

    def test_my_layer_basics():
        output = run_layer_test(
            MyLayer,
            init_kwargs={"units": 4},
            input_data=np.random.rand(2, 8).astype("float32"),
            expected_output_shape=(2, 4),
            expected_num_trainable_weights=2,
        )
        # `output` is the eager output as NumPy: compare it with a reference.

`input_data` is whatever the layer is called on: one array, or a list /
tuple / dict of arrays (e.g. `[images, covariates]` for HybridConv2D). The
first axis of every array is the batch. What is checked, in order:

1. config round trip: `from_config(get_config())` has the same config,
   compared as sorted JSON, also through `keras.saving.serialize_keras_object`
   (which needs the class registered);
2. every `__init__` argument (from `inspect.signature`) is in `get_config()`;
3. a symbolic call on `keras.Input`s with an unknown batch and an eager call
   give the same shape (batch axis aside), equal to `expected_output_shape`,
   and the expected number of trainable / non-trainable weights;
4. (`run_training_check`) one `fit` step of a tiny functional model around
   the layer (MSE against a random target, Adam) changes EVERY trainable
   weight: a weight no gradient reaches fails here;
5. (`run_saving_check`) the model saved as `.keras` in a temporary directory
   and reloaded with `keras.models.load_model(path)` and NO `custom_objects`
   gives the same outputs, and its layer is again a `layer_cls`;
6. (`run_jit_check`, off unless asked) the layer says `supports_jit`, and a
   fresh model around it compiled with `jit_compile=True` (XLA, on CPU too)
   predicts what the same model does eagerly and trains one step that
   changes every trainable weight.
"""

import inspect
import json
import os
import tempfile

import keras
import numpy as np
from keras import tree

# Arguments a subclass may take without storing them under the same name.
_IGNORED_INIT_ARGS = {"self", "args", "kwargs"}


def _to_numpy(structure):
    return tree.map_structure(lambda x: np.asarray(keras.ops.convert_to_numpy(x)), structure)


def _symbolic_inputs(input_data):
    def make_input(array):
        array = np.asarray(array)
        return keras.Input(shape=array.shape[1:], dtype=str(array.dtype))

    return tree.map_structure(make_input, input_data)


def _assert_weight_counts(layer, trainable, non_trainable):
    if trainable is not None:
        assert len(layer.trainable_weights) == trainable, (
            f"{type(layer).__name__}: expected {trainable} trainable weights, found "
            f"{[w.path for w in layer.trainable_weights]}"
        )
    if non_trainable is not None:
        assert len(layer.non_trainable_weights) == non_trainable, (
            f"{type(layer).__name__}: expected {non_trainable} non-trainable weights, found "
            f"{[w.path for w in layer.non_trainable_weights]}"
        )


def check_config_round_trip(layer):
    """`from_config(get_config())` and serialize/deserialize keep the config."""
    layer_cls = type(layer)
    config_json = json.dumps(layer.get_config(), sort_keys=True)
    revived = layer_cls.from_config(layer.get_config())
    assert json.dumps(revived.get_config(), sort_keys=True) == config_json, (
        f"{layer_cls.__name__}: from_config(get_config()) changes the config"
    )
    serialized = json.dumps(keras.saving.serialize_keras_object(layer))
    revived = keras.saving.deserialize_keras_object(json.loads(serialized))
    assert type(revived) is layer_cls, (
        f"{layer_cls.__name__}: deserialized as {type(revived).__name__}; is it registered "
        "with @keras.saving.register_keras_serializable(package='hybridvision')?"
    )
    assert json.dumps(revived.get_config(), sort_keys=True) == config_json


def check_init_args_in_config(layer_cls, init_kwargs):
    """Every named `__init__` argument appears in `get_config()`."""
    config = layer_cls(**init_kwargs).get_config()
    parameters = inspect.signature(layer_cls.__init__).parameters
    missing = [
        name
        for name, parameter in parameters.items()
        if name not in _IGNORED_INIT_ARGS
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        and name not in config
    ]
    assert not missing, f"{layer_cls.__name__}.get_config() lacks __init__ arguments {missing}"


def _changed_weights_check(model, layer, input_data, example_outputs, jit_compile="auto"):
    # A random target, not the current output: MSE against the output itself
    # has zero gradient and would prove nothing. Not seed 0 either: tests draw
    # their inputs with seed 0, and a layer that is the identity at init (FiLM)
    # would then be handed its own input as the target.
    rng = np.random.default_rng(1234)
    targets = tree.map_structure(
        lambda y: rng.normal(size=y.shape).astype("float32"), example_outputs
    )
    before = [np.array(keras.ops.convert_to_numpy(w)) for w in layer.trainable_weights]
    # Adam moves every weight with a non-zero gradient by about the learning
    # rate however small that gradient is, so "unchanged" means "no gradient".
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2), loss="mse", jit_compile=jit_compile)
    batch_size = len(tree.flatten(input_data)[0])
    model.fit(input_data, targets, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    unchanged = [
        weight.path
        for weight, old in zip(layer.trainable_weights, before)
        if np.array_equal(old, keras.ops.convert_to_numpy(weight))
    ]
    assert not unchanged, (
        f"{type(layer).__name__}: one training step left {unchanged} unchanged (no gradient?)"
    )


def _saving_check(model, layer_cls, input_data, call_outputs, atol):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        reloaded = keras.models.load_model(path)
    assert any(type(sub) is layer_cls for sub in reloaded.layers), (
        f"{layer_cls.__name__}: the reloaded model has no {layer_cls.__name__} layer"
    )
    reloaded_outputs = _to_numpy(reloaded(input_data, training=False))
    tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, atol=atol, rtol=atol),
        call_outputs,
        reloaded_outputs,
    )


def _jit_check(layer_cls, init_kwargs, input_data, atol):
    layer = layer_cls(**init_kwargs)
    assert layer.supports_jit, f"{layer_cls.__name__}: supports_jit is False"
    symbolic_inputs = _symbolic_inputs(input_data)
    model = keras.Model(symbolic_inputs, layer(symbolic_inputs))
    eager = _to_numpy(model(input_data, training=False))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2), loss="mse", jit_compile=True)
    assert model.jit_compile, f"{layer_cls.__name__}: Keras turned jit_compile off for the model"
    batch_size = len(tree.flatten(input_data)[0])
    compiled = _to_numpy(model.predict(input_data, batch_size=batch_size, verbose=0))
    tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, atol=atol, rtol=atol), eager, compiled
    )
    # compile() again so fit() builds its own (jit-compiled) train function.
    _changed_weights_check(model, layer, input_data, eager, jit_compile=True)


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    run_training_check=True,
    run_saving_check=True,
    run_jit_check=False,
    atol=1e-6,
    jit_atol=1e-4,
):
    """Run the standard checks (see the module docstring) on one layer class.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_data: NumPy array, or list / tuple / dict of arrays, that the
            layer is called on; batch first.
        expected_output_shape: the eager output shape (batch included), or
            a matching structure of shapes for several outputs; None skips.
        expected_num_trainable_weights: int, or None to skip.
        expected_num_non_trainable_weights: int, or None to skip.
        run_training_check: fit one step and require every trainable weight
            to change (turn off for layers without weights).
        run_saving_check: `.keras` save / reload with equal outputs.
        run_jit_check: a `jit_compile=True` model predicts the eager outputs
            (within `jit_atol`: XLA may reorder sums) and trains every weight.
        atol: tolerance for the reload comparison.
        jit_atol: tolerance for the jit comparison.

    Returns:
        The eager output of a fresh layer on `input_data`, as NumPy.
    """
    layer = layer_cls(**init_kwargs)
    check_config_round_trip(layer)
    check_init_args_in_config(layer_cls, init_kwargs)

    # Symbolic call, batch unknown.
    symbolic_inputs = _symbolic_inputs(input_data)
    symbolic_layer = layer_cls(**init_kwargs)
    symbolic_outputs = symbolic_layer(symbolic_inputs)
    _assert_weight_counts(
        symbolic_layer, expected_num_trainable_weights, expected_num_non_trainable_weights
    )

    # Eager call.
    eager_layer = layer_cls(**init_kwargs)
    eager_outputs = _to_numpy(eager_layer(input_data))
    _assert_weight_counts(
        eager_layer, expected_num_trainable_weights, expected_num_non_trainable_weights
    )
    symbolic_shapes = [tuple(x.shape) for x in tree.flatten(symbolic_outputs)]
    eager_shapes = [tuple(x.shape) for x in tree.flatten(eager_outputs)]
    for symbolic_shape, eager_shape in zip(symbolic_shapes, eager_shapes):
        assert symbolic_shape[0] is None and symbolic_shape[1:] == eager_shape[1:], (
            f"{layer_cls.__name__}: symbolic output shapes {symbolic_shapes} (batch unknown) "
            f"do not match eager {eager_shapes}"
        )
    if expected_output_shape is not None:
        if isinstance(expected_output_shape, dict):
            expected = [tuple(expected_output_shape[k]) for k in sorted(expected_output_shape)]
        elif len(eager_shapes) == 1:
            expected = [tuple(expected_output_shape)]
        else:
            expected = [tuple(shape) for shape in expected_output_shape]
        assert eager_shapes == expected, (
            f"{layer_cls.__name__}: output shapes {eager_shapes} != expected {expected}"
        )
    for output in tree.flatten(eager_outputs):
        assert np.all(np.isfinite(output)), f"{layer_cls.__name__}: non-finite outputs"

    if run_training_check or run_saving_check:
        model = keras.Model(symbolic_inputs, symbolic_outputs)
        if run_training_check:
            _changed_weights_check(model, symbolic_layer, input_data, eager_outputs)
        if run_saving_check:
            outputs = _to_numpy(model(input_data, training=False))
            _saving_check(model, layer_cls, input_data, outputs, atol)
    if run_jit_check:
        _jit_check(layer_cls, init_kwargs, input_data, jit_atol)
    return eager_outputs
