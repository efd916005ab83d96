"""`ModelCard`: what an exported model is, carried inside the model itself.

An exported `.keras` file is enough on its own: `attach_card` wraps the
trained model as

    any-size image input(s) -> ModelCard -> Resizing (training size) -> trained model

with the other inputs (covariates, ...) passed through under their own
names, so `predict` takes the same inputs and returns the same outputs as
before, but images of any size. The card (app, task, class names,
covariates and their coding, training input size, how it was trained) is
the `ModelCard` layer's config: it is saved in the file's config.json and
read back with `read_card`, from a loaded model or from the file without
loading it (`hybridvision inspect model.keras` prints it).

    card = read_card(hybridvision.load_model("saved_models/cross_modal/latest.keras"))
    card["class_names"]
"""

from __future__ import annotations

import json
from pathlib import Path

import keras

from hybridvision.common.inspect_model import card_in_file, sidecar_card

CARD_LAYER = "model_card"


@keras.saving.register_keras_serializable(package="hybridvision")
class ModelCard(keras.layers.Layer):
    """Identity on its input; its config holds `card`, a JSON-serialisable dict describing the model.

    Args:
        card: the description (see `attach_card`); numbers, strings, lists and dicts only.
    """

    def __init__(self, card: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.card = plain(card or {})

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "card": self.card}


def plain(value):
    """`value` as plain JSON types (numpy numbers become floats/ints); a ValueError names what cannot be."""

    def convert(item):
        if hasattr(item, "tolist"):  # numpy scalars and arrays
            return item.tolist()
        if isinstance(item, (set, tuple)):
            return list(item)
        if isinstance(item, Path):
            return str(item)
        raise ValueError(f"model card: {type(item).__name__} {item!r} is not JSON-serialisable; "
                         "pass numbers, strings, lists or dicts")

    return json.loads(json.dumps(value, default=convert))


def _is_image(tensor) -> bool:
    return len(tensor.shape) == 4


def attach_card(model: keras.Model, card: dict) -> keras.Model:
    """The exported form of `model`: any-size image inputs, resized to the training size, and the card.

    Every rank-4 input (batch, height, width, channels) becomes an input of
    any height and width with the same name, resized (bilinear, as the data
    pipelines resize) to the size `model` was trained at; an input already
    of any size is not resized. Other inputs pass through. The card layer
    sits on the first image input (the first input when there is none).
    `card["image_size"]` is set to the training size of the first image
    input when `model` fixes one, `card["inputs"]` to the inputs' names and
    shapes (`image`: whether the input is an image of any size).

    Returns a new, uncompiled `keras.Model` (users predict with it) that
    shares `model`'s weights, named like it.
    """
    card = dict(card)
    sized = [t for t in model.inputs if _is_image(t) and None not in t.shape[1:3]]
    if sized:
        card["image_size"] = [int(v) for v in sized[0].shape[1:3]]
    card["inputs"] = [
        {"name": t.name, "image": _is_image(t),
         "shape": [None, None, None, int(t.shape[-1])] if _is_image(t) else list(t.shape)}
        for t in model.inputs
    ]
    card_layer = ModelCard(card, name=CARD_LAYER, dtype="float32")
    carrier = next((t for t in model.inputs if _is_image(t)), model.inputs[0])
    new_inputs, fed = [], []
    for tensor in model.inputs:
        name = tensor.name
        if _is_image(tensor):
            new = keras.Input((None, None, tensor.shape[-1]), dtype=tensor.dtype, name=name)
        else:
            new = keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=name)
        x = card_layer(new) if tensor is carrier else new
        if _is_image(tensor) and None not in tensor.shape[1:3]:
            height, width = (int(v) for v in tensor.shape[1:3])
            # training=False: Resizing's call defaults to training=True, and Keras hands that
            # flag on to the layers after it, so a plain `model(x)` would run every
            # BatchNormalization in training mode (as in build_raw_image_backbone).
            x = keras.layers.Resizing(height, width, name=f"resize_{name}", dtype="float32")(x, training=False)
        new_inputs.append(new)
        fed.append(x)
    # The same structure as the trained model's inputs: one tensor, a list, or a dict by name.
    structure = model.input
    if isinstance(structure, dict):
        by_name = {t.name: (n, f) for t, n, f in zip(model.inputs, new_inputs, fed)}
        inputs = {key: by_name[t.name][0] for key, t in structure.items()}
        feed = {key: by_name[t.name][1] for key, t in structure.items()}
    elif isinstance(structure, (list, tuple)):
        inputs, feed = list(new_inputs), list(fed)
    else:
        inputs, feed = new_inputs[0], fed[0]
    return keras.Model(inputs, model(feed), name=model.name)


def read_card(model) -> dict:
    """The card of an exported model (a loaded `keras.Model` or the path of a `.keras` file).

    A file is read without loading the model (no TensorFlow). Models exported
    before cards existed give what their sidecar files say
    (`<model>.classes.json`), else `{}`.

    Args:
        model: a `keras.Model` exported by a hybridvision app, or the path of its `.keras` file.

    Returns:
        The card: a dict with keys such as `app`, `task`, `class_names`,
        `covariates`, `coding`, `image_size`, `training`.

    Example:
        ```python
        import keras
        import hybridvision
        from hybridvision.common.model_card import attach_card

        images = keras.Input((32, 32, 3), name="images")
        outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(images))
        exported = attach_card(keras.Model(images, outputs), {"app": "mine", "class_names": ["a", "b", "c"]})
        print(hybridvision.read_card(exported)["class_names"])  # ['a', 'b', 'c']
        print(exported.predict(keras.random.uniform((1, 50, 70, 3)), verbose=0).shape)  # any size: (1, 3)
        ```
    """
    if isinstance(model, (str, Path)):
        return card_in_file(model) or sidecar_card(model)
    for layer in _all_layers(model):
        if isinstance(layer, ModelCard):
            return dict(layer.card)
    return {}


def _all_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all_layers(layer)
