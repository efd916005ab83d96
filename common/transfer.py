"""Transfer learning: freezing that keeps BatchNorm statistics, and hybridize().

Freezing is done on the layers themselves, BatchNormalization included:
a BN layer with `trainable=False` runs in inference mode and keeps its
moving statistics. Calling a frozen base with `training=False` is not
enough in Keras 3, because that does not survive unfreezing the base for
fine-tuning (keras-team/keras#20285).

Trainable flags are read when a model is compiled: after `freeze` or
`unfreeze_top` call `model.compile(...)` again, or pass `recompile=True`.

`hybridize` rebuilds a functional model with some of its Conv2D layers
replaced by `HybridConv2D` layers (or, with `kind=`, `FiLMConv2D` /
`CondConv2D` / any covariate-conditioned layer) fed by an extra covariate
input; the new layers start from the replaced kernels, so before training
the hybrid model computes exactly what the plain one did.
"""

import logging
import re
import warnings

import keras
from keras import tree

from hybridvision.common.compat import Functional
from hybridvision.common.layers.condconv2d import CondConv2D
from hybridvision.common.layers.film_conv2d import FiLMConv2D
from hybridvision.common.layers.hybrid_conv2d import HybridConv2D

logger = logging.getLogger(__name__)


def freeze(model_or_layer, recompile=False):
    """Make a model or layer, and every layer inside it, non-trainable.

    Every BatchNormalization inside gets `trainable=False` itself, so it runs
    in inference mode and its moving mean/variance stay as they are, also
    after a later `unfreeze_top`.

    Args:
        model_or_layer: a `keras.Model` (e.g. a backbone) or a layer.
        recompile: if the object is a compiled model, compile it again with
            its own optimizer (fresh state, same config), loss and metrics.

    Returns:
        `model_or_layer`.

    Example:
        A pretrained backbone frozen under a new head, then its top layers
        released for fine-tuning:

        ```python
        import keras
        import numpy as np
        from hybridvision.backbones import build_backbone
        from hybridvision.transfer import freeze, unfreeze_top

        base = build_backbone("efficientnet_lite0", (64, 64, 3), weights="imagenet", pooling="avg")
        images = keras.Input((64, 64, 3))
        model = keras.Model(images, keras.layers.Dense(2, activation="softmax")(base(images)))
        freeze(base)  # BatchNormalization included: its statistics stay as pretrained
        model.compile("adam", "sparse_categorical_crossentropy")
        x, y = np.random.default_rng(0).normal(size=(4, 64, 64, 3)), np.array([0, 1, 0, 1])
        model.fit(x, y, epochs=1, verbose=0)  # trains the head only
        print(len(model.trainable_weights))  # 2: the Dense kernel and bias

        unfreeze_top(model, 3, recompile=True)  # the head and the top 2 layers of the backbone
        model.fit(x, y, epochs=1, verbose=0)
        ```
    """
    _set_trainable(model_or_layer, False)
    _after_trainable_change(model_or_layer, recompile)
    return model_or_layer


def unfreeze_top(model, n_layers, keep_batchnorm_frozen=True, recompile=False):
    """Make the last `n_layers` layers with weights of `model` trainable.

    Layers are counted in order through nested models (a backbone nested in
    a classifier counts layer by layer). With `keep_batchnorm_frozen=True`
    BatchNormalization layers are not counted and all stay frozen, in
    inference mode; otherwise they count like any other layer. Layers below
    the top `n_layers` keep their current flags.

    Args:
        model: a functional or Sequential `keras.Model`.
        n_layers: how many layers (with weights) to unfreeze, from the end.
        keep_batchnorm_frozen: keep every BatchNormalization non-trainable.
        recompile: if `model` is compiled, compile it again with its own
            optimizer (fresh state, same config), loss and metrics.

    Returns:
        `model`.

    Example:
        ```python
        import keras
        from hybridvision.backbones import build_backbone
        from hybridvision.transfer import freeze, unfreeze_top

        base = build_backbone("small", (32, 32, 3), pooling="avg")
        images = keras.Input((32, 32, 3))
        model = keras.Model(images, keras.layers.Dense(1)(base(images)))
        freeze(model)
        unfreeze_top(model, 2)  # the Dense head and the last conv; every BatchNormalization stays frozen
        print([w.path for w in model.trainable_weights])
        ```
    """
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 0:
        raise ValueError(f"n_layers must be an int >= 0, got {n_layers!r}.")
    paths = list(_leaf_paths(model))
    candidates = [
        path for path in paths
        if path[-1].weights and not (keep_batchnorm_frozen and _is_batchnorm(path[-1]))
    ]
    if n_layers > len(candidates):
        raise ValueError(
            f"n_layers={n_layers} but '{model.name}' has only {len(candidates)} "
            "layers with weights to unfreeze"
            + (" (BatchNormalization not counted)." if keep_batchnorm_frozen else ".")
        )
    chosen = candidates[len(candidates) - n_layers:]
    on_path = {id(layer) for path in chosen for layer in path[:-1]}
    containers = {id(c): c for path in paths for c in path[:-1]}
    before = {id(layer): layer.trainable for path in paths for layer in path}

    # A frozen container hides its sublayers' weights, so the containers
    # above the chosen layers must be trainable; the setter recurses, hence
    # the restore of every other flag afterwards.
    _set_trainable(model, True)
    for path in paths:
        _set_trainable(path[-1], before[id(path[-1])])
    for key, container in containers.items():
        if key not in on_path and not before[key]:
            _set_trainable(container, False)
    for path in chosen:
        _set_trainable(path[-1], True)
    if keep_batchnorm_frozen:
        # Also the BatchNormalization inside custom layers that were unfrozen.
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if _is_batchnorm(layer):
                _set_trainable(layer, False)
    logger.info(
        "unfroze %d layers of '%s': %s", n_layers, model.name,
        ", ".join(path[-1].name for path in chosen),
    )
    _after_trainable_change(model, recompile)
    return model


def _condconv_from_conv2d(conv, num_covariates, **overrides):
    return CondConv2D.from_conv2d(conv, num_covariates=num_covariates, **overrides)


# kind -> (conv, num_covariates, **overrides) -> a built layer called on [x, covariates].
_KINDS = {
    "hybrid": HybridConv2D.from_conv2d,
    "film": FiLMConv2D.from_conv2d,
    "condconv": _condconv_from_conv2d,  # routed by the input and the covariates, 4 experts
}
# The layers hybridize puts in; not counted as (or replaced again as) Conv2D layers.
_CONDITIONED = (HybridConv2D, FiLMConv2D, CondConv2D)


def hybridize(model, positions, num_covariates, covariate_input_name="covariates", kind="hybrid"):
    """Return a new model with chosen Conv2D layers replaced by HybridConv2D (or another `kind`).

    The new functional model takes the original inputs plus a covariate
    input of shape `(num_covariates,)` (appended to the input list, or added
    as key `covariate_input_name` for dict inputs) that feeds every hybrid
    layer. Each replaced Conv2D becomes `HybridConv2D.from_conv2d(conv,
    num_covariates)` (its kernel and bias as `W0`, covariate kernels at
    zero; or the `kind` chosen) and keeps its trainable flag; all other layers are copies with
    the same weights and trainable flags, so the original model is left
    untouched and the new one starts with identical outputs. Conv2D layers
    inside nested models (a backbone inside a classifier) are found and
    replaced in place: the nested model is rebuilt with its own covariate
    input. The result is not compiled.

    Args:
        model: a functional or Sequential `keras.Model`.
        positions: which Conv2D layers, counted in order through nested
            models: `"first"`, `"middle"` (the `(count + 1) // 2`-th of
            `count`), `"last"`, a 1-based int (`3` = the 3rd conv; negative
            counts from the end, `-1` = last), or a list of these.
        num_covariates: length of each sample's covariate vector.
        covariate_input_name: name of the new covariate input.
        kind: what replaces each chosen Conv2D: `"hybrid"` (default,
            `HybridConv2D.from_conv2d`), `"film"` (`FiLMConv2D.from_conv2d`:
            per-filter scale and shift from the covariates), `"condconv"`
            (`CondConv2D.from_conv2d(conv, num_covariates=num_covariates)`:
            4 experts routed by the input and the covariates), or a callable
            `(conv, num_covariates, **overrides) -> layer` returning a built
            layer that is called on `[x, covariates]` and starts equal to
            `conv`; the overrides passed are `name` and `trainable`. E.g.
            `lambda conv, d, **kw: CondConv2D.from_conv2d(conv, num_experts=8,
            num_covariates=d, **kw)`.

    Returns:
        The new `keras.Model`.

    Example:
        EfficientNet-Lite0 with its ImageNet weights, its last convolution
        made conditional on two covariates:

        ```python
        import numpy as np
        from hybridvision.backbones import build_backbone
        from hybridvision.transfer import hybridize

        lite0 = build_backbone("efficientnet_lite0", (64, 64, 3), weights="imagenet", pooling="avg")
        hybrid = hybridize(lite0, "last", num_covariates=2)  # or kind="film" / "condconv"
        print([x.name for x in hybrid.inputs])  # the images, then 'covariates'

        rng = np.random.default_rng(0)
        x = rng.normal(size=(2, 64, 64, 3)).astype("float32")
        covariates = np.array([[0, 1], [1, 1]], "float32")
        # Before training, the hybrid network computes what the pretrained one did.
        np.testing.assert_allclose(
            hybrid.predict([x, covariates], verbose=0), lite0.predict(x, verbose=0), atol=1e-4
        )
        ```
    """
    if not isinstance(model, (Functional, keras.Sequential)):
        raise ValueError(
            f"hybridize needs a functional or Sequential keras.Model, got {type(model).__name__}."
        )
    if isinstance(num_covariates, bool) or not isinstance(num_covariates, int) or num_covariates < 1:
        raise ValueError(f"num_covariates must be an int >= 1, got {num_covariates!r}.")
    if callable(kind):
        factory = kind
    elif isinstance(kind, str) and kind in _KINDS:
        factory = _KINDS[kind]
    else:
        raise ValueError(
            f"kind must be one of {sorted(_KINDS)} or a callable (conv, num_covariates, **overrides) "
            f"-> layer; got {kind!r}."
        )
    convs = _conv2d_layers(model)
    if not convs:
        raise ValueError(f"model '{model.name}' has no Conv2D layer to hybridize.")
    targets = {id(convs[i]) for i in _resolve_positions(positions, len(convs))}
    rebuilder = _Rebuilder(targets, num_covariates, covariate_input_name, factory)
    new_model = rebuilder.rebuild(model)
    for original, copy in rebuilder.copies:
        copy.set_weights(original.get_weights())
    return new_model


def _is_batchnorm(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


def _set_trainable(layer, value):
    # On the TensorFlow backend `layer.trainable = value` returns early when
    # the flag already equals `value`, so it would not reach sublayers whose
    # own flags differ: set every layer explicitly.
    for sublayer in layer._flatten_layers(include_self=True, recursive=True):
        keras.layers.Layer.trainable.fset(sublayer, value)


def _after_trainable_change(obj, recompile):
    compiled = isinstance(obj, keras.Model) and getattr(obj, "compiled", False)
    if compiled and recompile:
        _recompile(obj)
    elif compiled:
        warnings.warn(
            f"Trainable flags of '{obj.name}' changed after compile(): call "
            "model.compile(...) again (or pass recompile=True) before fit(), "
            "otherwise the change is ignored.",
            stacklevel=3,
        )
    else:
        logger.info(
            "Trainable flags of '%s' changed: compile the model that uses it "
            "(again) before fit().", obj.name,
        )


def _recompile(model):
    config = dict(model._compile_config.config)
    optimizer = keras.optimizers.get(config["optimizer"])
    # A built optimizer only knows the variables it was built for.
    config["optimizer"] = optimizer.__class__.from_config(optimizer.get_config())
    model.compile(**config)


def _sublayers(container):
    return [layer for layer in container.layers if not isinstance(layer, keras.layers.InputLayer)]


def _leaf_paths(container, parents=()):
    """Yield (container, ..., leaf) tuples for every non-model layer, in order."""
    for layer in _sublayers(container):
        if isinstance(layer, keras.Model):
            yield from _leaf_paths(layer, parents + (layer,))
        else:
            yield parents + (layer,)


def _conv2d_layers(model):
    seen, convs = set(), []
    for path in _leaf_paths(model):
        layer = path[-1]
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, _CONDITIONED):
            if id(layer) not in seen:
                seen.add(id(layer))
                convs.append(layer)
    return convs


def _resolve_positions(positions, count):
    items = list(positions) if isinstance(positions, (list, tuple)) else [positions]
    if not items:
        raise ValueError("positions is empty; give 'first', 'middle', 'last', an int or a list of these.")
    valid = (
        f"the model has {count} Conv2D layers; use 'first', 'middle', 'last', 1..{count}, "
        f"-1..-{count} or a list of these"
    )
    indices = set()
    for position in items:
        if isinstance(position, str) and re.fullmatch(r"-?\d+", position.strip()):
            position = int(position)
        if position == "first":
            indices.add(0)
        elif position == "middle":
            indices.add((count + 1) // 2 - 1)
        elif position == "last":
            indices.add(count - 1)
        elif isinstance(position, int) and not isinstance(position, bool):
            if position == 0 or abs(position) > count:
                raise ValueError(f"Conv2D position {position} is out of range: {valid}.")
            indices.add(position - 1 if position > 0 else count + position)
        else:
            raise ValueError(f"Conv2D position {position!r} is not valid: {valid}.")
    return sorted(indices)


class _Rebuilder:
    """Copies a (possibly nested) model graph, swapping target convs for conditioned layers.

    Each functional graph is copied with the public `keras.models.clone_model`:
    its `clone_function` picks every layer's replacement and its
    `call_function` hands the covariates to the layers that take them. Two
    things clone_model does not do are done here: a new input (the
    covariates) that the copy needs but the original graph lacks, and a
    nested model that must be rebuilt with its own covariate input (with
    `recursive=True` clone_model would give a nested model the outer model's
    call_function, i.e. the outer covariate tensor, which is not one of the
    nested model's inputs). So clone_model runs with `recursive=False` and
    nested models go through `_replacement`, which rebuilds them with this
    class, recursively. Sequential models (clone_model takes no
    call_function for them) are first seen as the functional model of the
    same layers.
    """

    def __init__(self, targets, num_covariates, covariate_input_name, factory=HybridConv2D.from_conv2d):
        self.targets = targets
        self.factory = factory
        self.num_covariates = num_covariates
        self.covariate_input_name = covariate_input_name
        self.copies = []  # (original, copy) pairs whose weights are copied at the end
        self.new_layers = {}  # id(original) -> replacement, so shared layers stay shared
        self.takes_covariates = set()  # ids of replacements called with covariates
        self.conditioned = set()  # ids of the new conditioned layers (the rest are nested models)

    def rebuild(self, model, with_covariates=True):
        graph = model
        if isinstance(model, keras.Sequential):
            # The same layers and graph as a functional model (not a copy).
            graph = keras.Model(model.inputs, model.outputs, name=model.name)
        if not with_covariates:
            new_model = keras.models.clone_model(graph, clone_function=self._replacement)
        else:
            taken = [x.name for x in graph.inputs]
            if self.covariate_input_name in taken:
                raise ValueError(
                    f"covariate_input_name={self.covariate_input_name!r} is already an input of "
                    f"'{model.name}' (inputs: {taken}); pass another name."
                )
            covariates = keras.Input(shape=(self.num_covariates,), name=self.covariate_input_name)
            # clone_model builds the copy on input tensors with the structure
            # of the model's input, so clone the same graph with the (unused)
            # covariate input added; the copy's layers then use it.
            unused = keras.Input(shape=(self.num_covariates,), name=self.covariate_input_name)
            widened = keras.Model(self._with_covariates(graph.input, unused), graph.output, name=model.name)
            inputs = tree.map_structure(
                lambda x: keras.Input(batch_shape=x.shape, dtype=x.dtype, name=x.name), graph.input
            )
            new_model = keras.models.clone_model(
                widened,
                input_tensors=self._with_covariates(inputs, covariates),
                clone_function=self._replacement,
                call_function=lambda op, *args, **kwargs: self._call(op, covariates, *args, **kwargs),
            )
        if not model.trainable:
            _set_trainable(new_model, False)
        return new_model

    def _with_covariates(self, inputs, covariates):
        """`inputs` (a model's input structure) with `covariates` added: as a key of a dict, else appended."""
        if isinstance(inputs, dict):
            return {**inputs, self.covariate_input_name: covariates}
        return [*tree.flatten(inputs), covariates]

    def _call(self, op, covariates, *args, **kwargs):
        if id(op) not in self.takes_covariates:
            return op(*args, **kwargs)
        if id(op) in self.conditioned:
            return op([args[0], covariates], *args[1:], **kwargs)
        # A rebuilt nested model: its original inputs, then the covariates.
        return op(self._with_covariates(args[0], covariates), *args[1:], **kwargs)

    def _replacement(self, layer):
        key = id(layer)
        if key in self.new_layers:
            return self.new_layers[key]
        if key in self.targets:
            # Same name, so code that looks the conv up by name still finds it.
            new = self.factory(layer, self.num_covariates, name=layer.name, trainable=layer.trainable)
            self.takes_covariates.add(id(new))
            self.conditioned.add(id(new))
        elif isinstance(layer, (Functional, keras.Sequential)):
            needs = any(id(conv) in self.targets for conv in _conv2d_layers(layer))
            new = self.rebuild(layer, with_covariates=needs)
            if needs:
                self.takes_covariates.add(id(new))
        elif isinstance(layer, keras.Model):
            raise ValueError(
                f"hybridize cannot rebuild the subclassed model '{layer.name}' inside "
                "the model; build it as a functional or Sequential model."
            )
        else:
            new = layer.__class__.from_config(layer.get_config())
            self.copies.append((layer, new))
        self.new_layers[key] = new
        return new
