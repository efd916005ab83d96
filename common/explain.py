"""Visual explanations of a functional classifier: Grad-CAM, activations, first-layer filters.

Works on any functional (or Sequential) Keras model, also when the layer of
interest sits inside a nested backbone: the model's graph is re-run layer by
layer (`Functional._run_through_graph`, as `hybridvision.common.transfer.hybridize` does),
capturing the chosen layers' outputs on the way. Grad-CAM needs gradients,
so it runs on the TensorFlow backend; everything else is backend-agnostic.

    maps = grad_cam(model, images)                       # (N, H, W) in [0, 1]
    save_grad_cam_grid(model, images, "gradcam.png", class_names)
    pngs = grad_cam_samples(model, images, labels, class_names)   # per sample: true/predicted (TensorBoard's)
    save_activation_grid(model, images[0], "block2_conv", "acts.png")
    save_filter_grid(model, "filters.png")

Reference: Selvaraju et al., "Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization", ICCV 2017.
"""

from __future__ import annotations

from pathlib import Path

import keras
import matplotlib
import numpy as np
from keras import tree

from hybridvision.common.plots import plot_image_grid


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


def find_layer(model, name):
    """The layer called `name` anywhere in `model` (nested models included)."""
    for layer in _leaf_layers(model):
        if layer.name == name:
            return layer
    names = [layer.name for layer in _leaf_layers(model)]
    raise ValueError(f"layer {name!r} is not in model '{model.name}'; layers: {', '.join(names)}")


def _is_conv(layer) -> bool:
    # The covariate-conditioned convolutions (HybridConv2D, FiLMConv2D, CondConv2D) are not Conv2D subclasses.
    return isinstance(layer, keras.layers.Conv2D) or type(layer).__name__.endswith("Conv2D")


def conv_layers(model):
    """Names of the 2D convolution layers (4D outputs), nested models included, in graph order."""
    return [layer.name for layer in _leaf_layers(model) if _is_conv(layer)]


def last_conv_layer(model):
    """Name of the last Conv2D layer: Grad-CAM's default target."""
    names = conv_layers(model)
    if not names:
        raise ValueError(f"model '{model.name}' has no Conv2D layer for Grad-CAM; pass layer_name=")
    return names[-1]


def _contains(model, names):
    return any(layer.name in names for layer in _leaf_layers(model))


def run_capturing(model, inputs, layer_names, on_capture=None):
    """Runs `model` on `inputs` (inference mode) and returns `(outputs, {name: output})`.

    Args:
        model: a functional or Sequential `keras.Model`.
        inputs: what the model is called on.
        layer_names: layers whose outputs to capture, nested models included.
        on_capture: optional `f(name, tensor) -> tensor` called on each
            captured output before it flows on (Grad-CAM watches it there).
    """
    names, captured = set(layer_names), {}

    def run(container, container_inputs):
        def call(op, *args, **kwargs):
            if isinstance(op, keras.Model) and _contains(op, names):
                return run(op, args[0])
            if getattr(op, "_call_has_training_arg", False):
                kwargs["training"] = False
            out = op(*args, **kwargs)
            if op.name in names:
                if on_capture is not None:
                    out = on_capture(op.name, out)
                captured[op.name] = out
            return out

        if isinstance(container, keras.Sequential):
            x = container_inputs
            for layer in container.layers:
                x = call(layer, x)
            return x
        return container._run_through_graph(tree.flatten(container_inputs), operation_fn=lambda op: op, call_fn=call)

    outputs = run(model, inputs)
    missing = names - set(captured)
    if missing:
        for name in missing:
            find_layer(model, name)  # raises with the list of layer names
        raise ValueError(f"layer(s) {sorted(missing)} were not reached by the inputs of '{model.name}'")
    return outputs, captured


def layer_outputs(model, inputs, layer_names):
    """`{name: NumPy output}` of the given (possibly nested) layers on `inputs`."""
    _, captured = run_capturing(model, inputs, layer_names)
    return {name: np.asarray(value) for name, value in captured.items()}


def grad_cam(model, inputs, layer_name=None, class_index=None, output=None):
    """Grad-CAM maps of a classifier, resized to the input images.

    Args:
        model: classifier with a `(batch, classes)` output (the first one
            when there are several); the first input holds the images.
        inputs: images `(N, H, W, C)` as the model takes them, or the list
            of all inputs of a multi-input model, in its input order.
        layer_name: the convolution layer to explain; default the last.
        class_index: None (each image's predicted class), an int, or one int
            per image. A one-unit sigmoid output counts as two classes,
            0 (score 1 - p) and 1 (score p).
        output: the output to explain, for a model with a dict of outputs
            (default: the first).

    Returns:
        `(maps, class_indices)`: float32 `(N, H, W)` in [0, 1] and the class
        explained for each image.
    """
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise ValueError("grad_cam needs KERAS_BACKEND=tensorflow (it uses tf.GradientTape)")
    layer_name = layer_name or last_conv_layer(model)
    # Numbers as float32; strings (a category coded inside the model) stay strings.
    inputs = tree.map_structure(
        lambda x: x if getattr(x, "dtype", None) == tf.string else tf.convert_to_tensor(x, tf.float32), inputs)
    # The images are the 4D input (covariates may come first in the model's input order).
    images = next(x for x in tree.flatten(inputs) if len(x.shape) == 4)
    with tf.GradientTape() as tape:
        def watch(_, tensor):
            # Frozen backbones have no trainable variables to record from.
            tape.watch(tensor)
            return tensor

        outputs, captured = run_capturing(model, inputs, [layer_name], on_capture=watch)
        probs = outputs[output] if output is not None else tree.flatten(outputs)[0]
        if probs.shape[-1] == 1:  # binary sigmoid: the "no" class scores 1 - p
            probs = tf.concat([1.0 - probs, probs], axis=-1)
        if class_index is None:
            chosen = tf.argmax(probs, axis=-1, output_type=tf.int32)
        else:
            chosen = tf.broadcast_to(tf.constant(class_index, tf.int32), tf.shape(probs)[:1])
        score = tf.gather(probs, chosen, axis=1, batch_dims=1)
    feature_map = captured[layer_name]
    if len(feature_map.shape) != 4:
        raise ValueError(f"layer {layer_name!r} has output shape {feature_map.shape}; Grad-CAM needs a 4D feature map")
    grads = tape.gradient(score, feature_map)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))
    cam = cam / (tf.reduce_max(cam, axis=(1, 2), keepdims=True) + 1e-8)
    cam = tf.image.resize(cam[..., None], tf.shape(images)[1:3], method="bilinear")[..., 0]
    return np.clip(cam.numpy(), 0.0, 1.0).astype("float32"), chosen.numpy()


def overlay(image, heatmap, alpha=0.4):
    """An RGB uint8 image with a jet-coloured `heatmap` (H, W in [0, 1]) blended on it."""
    colours = matplotlib.colormaps["jet"](np.asarray(heatmap))[..., :3] * 255.0
    image = np.asarray(image, dtype="float32")
    if image.ndim == 2 or image.shape[-1] == 1:
        image = np.repeat(image.reshape(image.shape[:2] + (1,)), 3, axis=-1)
    return np.clip((1 - alpha) * image + alpha * colours, 0, 255).astype("uint8")


def save_grad_cam_grid(model, images, out_png, class_names=None, layer_name=None, extra_inputs=None, ncols=4):
    """A PNG grid: each image beside its Grad-CAM overlay, titled with the explained class."""
    images = np.asarray(images, dtype="float32")
    inputs = [images, *extra_inputs] if extra_inputs is not None else images
    maps, chosen = grad_cam(model, inputs, layer_name)
    tiles, titles = [], []
    for image, heat, k in zip(images, maps, chosen):
        label = class_names[k] if class_names is not None else str(k)
        tiles += [image, overlay(image, heat)]
        titles += ["input", f"Grad-CAM: {label}"]
    return plot_image_grid(tiles, titles, out_png, ncols=ncols - ncols % 2 or 2)


def _true_class(labels, count):
    """Class index per sample of a batch's labels: sparse, one-hot, a one-unit sigmoid's 0/1, or a dict of
    outputs' labels (the first, as `grad_cam` explains the first output)."""
    labels = np.asarray(tree.flatten(labels)[0])[:count]
    if labels.ndim == 1 or labels.shape[-1] == 1:
        return np.rint(labels.reshape(len(labels), -1)[:, 0]).astype(int)
    return labels.argmax(-1)


def grad_cam_samples(model, inputs, labels=None, class_names=None, count=4) -> list[bytes]:
    """PNGs (bytes, one shape) of the first `count` samples of a batch, each image beside its Grad-CAM overlay,
    titled with the true class (when `labels` is given) and the predicted one. One gradient pass.

    `inputs`: the batch as the model takes it (an array, or a list/dict with one 4D image input); an image
    of other than 1 or 3 channels (digit_pairs' pair) is shown channel by channel. Raises `ValueError` when
    the model has no convolution for Grad-CAM.
    """
    import tempfile

    inputs = tree.map_structure(lambda x: x[:count], inputs)
    maps, chosen = grad_cam(model, inputs)
    images = np.asarray(next(x for x in tree.flatten(inputs) if len(x.shape) == 4))
    truth = _true_class(labels, len(images)) if labels is not None else None

    def name(k):
        return str(class_names[k]) if class_names is not None and 0 <= k < len(class_names) else str(k)

    pngs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (image, heat) in enumerate(zip(images, maps)):
            parts = [image] if image.shape[-1] in (1, 3) else [image[..., c:c + 1] for c in range(image.shape[-1])]
            tiles, titles = [], []
            for j, part in enumerate(parts):
                part = _to_uint8(part)
                tiles += [part, overlay(part, heat)]
                titles += [f"true: {name(truth[i])}" if truth is not None and j == 0 else "",
                           f"Grad-CAM: predicted {name(chosen[i])}" if j == 0 else ""]
            pngs.append(plot_image_grid(tiles, titles, Path(tmp) / f"{i}.png", ncols=len(tiles)).read_bytes())
    return pngs


def _to_uint8(array):
    array = np.asarray(array, dtype="float32")
    low, high = float(array.min()), float(array.max())
    return ((array - low) / (high - low + 1e-8) * 255.0).astype("uint8")


def save_activation_grid(model, inputs, layer_name, out_png, max_channels=16, ncols=4):
    """A PNG grid of the first `max_channels` channels of a layer's output for one image."""
    if not isinstance(inputs, (list, tuple)):
        inputs = np.asarray(inputs, dtype="float32")
        inputs = inputs[None] if inputs.ndim == 3 else inputs[:1]
    else:
        inputs = [np.asarray(x, dtype="float32")[:1] for x in inputs]
    output = layer_outputs(model, inputs, [layer_name])[layer_name]
    if output.ndim != 4:
        raise ValueError(f"layer {layer_name!r} has output shape {output.shape}; pick a convolution/pooling layer")
    channels = min(max_channels, output.shape[-1])
    tiles = [_to_uint8(output[0, :, :, c]) for c in range(channels)]
    return plot_image_grid(tiles, [f"{layer_name} #{c}" for c in range(channels)], out_png, ncols=ncols)


def first_layer_filters(model):
    """Kernel `(kh, kw, in, out)` of the first Conv2D that sees the image (not a 1x1 preprocessing conv)."""
    for layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.Conv2D) and max(layer.kernel_size) > 1:
            return np.asarray(layer.kernel)
    raise ValueError(f"model '{model.name}' has no Conv2D layer with a kernel larger than 1x1")


def save_filter_grid(model, out_png, max_filters=32, ncols=8):
    """A PNG grid of the first-layer filters, each scaled to 0..255 (RGB when it has 3 inputs)."""
    kernel = first_layer_filters(model)
    count = min(max_filters, kernel.shape[-1])
    tiles = []
    for k in range(count):
        tile = _to_uint8(kernel[..., k])
        if tile.shape[-1] not in (1, 3):
            tile = tile.mean(-1).astype("uint8")
        # Nearest-neighbour upsampling keeps 3x3 kernels readable.
        tiles.append(np.kron(tile, np.ones((8, 8, 1) if tile.ndim == 3 else (8, 8), dtype="uint8")))
    return plot_image_grid(tiles, [f"filter {k}" for k in range(count)], out_png, ncols=ncols)


def parse_covariate_values(text: str | None, names=None, raw: bool = False) -> tuple[list[str], list]:
    """`Male=1,Smiling=0` -> (names, 1/0 values), in `names`' order when the model's card gives it.

    `raw`: the values as written (`age=65,site=arm`, `age=` for a missing value), for a model that
    codes its covariates inside.
    """
    from hybridvision.common.cli import UserError
    from hybridvision.common.predict_io import covariate_value

    given = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        coded = (value.strip() if sep else None) if raw else (covariate_value(value) if sep else None)
        if coded is None:
            example = "e.g. age=65,site=arm" if raw else "with a yes/no value, e.g. Male=1"
            raise UserError(f"--covariates {part.strip()!r}: expected NAME=VALUE, {example}")
        given[name.strip()] = coded
    order = list(names) if names else list(given)
    missing = [n for n in order if n not in given]
    if missing:
        raise UserError(f"--covariates lacks {','.join(missing)}; give every covariate of the model, e.g. "
                        + ",".join(f"{n}=1" for n in order))
    return order, [given[n] for n in order]


def explain_image(model, spec, files, out_png, class_name=None, covariate_values=(), layer_name=None) -> dict:
    """Grad-CAM of one input (one image, or a pair) into a PNG: each image beside its heat map.

    Args:
        model, spec: as `hybridvision.common.predict.resolve_spec` returns them.
        files: the image file(s) of the input (`len(spec.image_columns)`).
        out_png: where the PNG goes.
        class_name: the class to explain (e.g. the true one); default the predicted class.
        covariate_values: the input's covariates, 1/0, in `spec.covariates` order.
        layer_name: the convolution to explain; default the last on the image's path.

    Returns:
        dict with `png`, `class` (explained), `score`, `predicted`.
    """
    from hybridvision.common.cli import UserError
    from hybridvision.common.predict import _dataset, _image_inputs, _image_size, _model_inputs, _reasons

    files = [str(f) for f in files]
    for column, f in zip(spec.image_columns, files):
        if not Path(f).is_file():
            raise FileNotFoundError(f"--image {f}: no such file; pass the image to explain ({column})")
    n_images = len(spec.image_columns)
    channels_per_image = int(_image_inputs(model)[0].shape[-1]) // n_images
    batches = list(_dataset([files], [list(covariate_values)], spec, _image_size(model, spec), channels_per_image, 1))
    if not batches:
        raise UserError(f"--image {' '.join(files)} cannot be read ({_reasons(Path('.'), spec, [files])[0]}); "
                        "pass a JPEG/PNG/BMP/GIF/WebP image")
    _, images, values = batches[0]
    names = list(spec.class_names)
    if class_name is not None and class_name not in names:
        raise UserError(f"--class {class_name}: not a class of this model; its classes: {', '.join(names)}")
    inputs = _model_inputs(model, images, values)
    outputs = model.predict_on_batch(inputs)
    probs = np.asarray(outputs[spec.output] if spec.output else outputs, dtype="float64")[0]
    if probs.shape[-1] == 1:
        probs = np.array([1.0 - probs[0], probs[0]])
    if spec.kind == "binary":
        predicted = int(probs[1] >= spec.thresholds[0])
    else:
        predicted = int(probs.argmax())
    chosen = names.index(class_name) if class_name is not None else predicted
    maps, _ = grad_cam(model, inputs, layer_name, class_index=chosen, output=spec.output)
    if spec.kind == "multilabel":
        verdict = "predicted" if probs[chosen] >= spec.thresholds[chosen] else "not predicted"
    else:
        verdict = "predicted" if chosen == predicted else f"the class you named; predicted: {names[predicted]}"
    title = f"{names[chosen]} {probs[chosen]:.2f} ({verdict})"
    pixels = np.asarray(images)[0] / (spec.scale or 1.0)
    tiles, titles = [], []
    for j, f in enumerate(files):
        image = pixels[..., j * channels_per_image:(j + 1) * channels_per_image]
        tiles += [image, overlay(image, maps[0])]
        titles += [Path(f).name, f"Grad-CAM: {title}"]
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    png = plot_image_grid(tiles, titles, out_png, ncols=2)
    return {"png": png, "class": names[chosen], "score": float(probs[chosen]), "predicted": names[predicted]}


def run_explain(spec, args) -> dict:
    """The `hybridvision <app> explain --model M --image FILE` tool, shared by the apps."""
    from hybridvision.common.predict import read_model_card, refuse_other_apps, resolve_spec
    from hybridvision.common.predict_io import load_model_file

    model = load_model_file(args.model)
    # Another app's model is named as such before its covariates are asked for.
    refuse_other_apps(spec, read_model_card(model), f"--model {args.model}", "explain")
    classes = [n.strip() for n in args.classes.split(",") if n.strip()] if getattr(args, "classes", None) else None
    names, values = None, []
    if getattr(args, "covariates", None) or len(model.inputs) > 1:  # a model that takes covariates needs their values
        card = read_model_card(model)
        names, values = parse_covariate_values(getattr(args, "covariates", None), card.get("covariates"),
                                               raw=bool(card.get("covariate_columns")))
    model, spec = resolve_spec(spec, model, classes=classes, covariates=names, target=getattr(args, "target", None),
                               tool="explain")
    if not spec.covariates:
        values = []
    files = list(args.image)
    out = args.out or Path(files[0]).with_suffix(".gradcam.png")
    result = explain_image(model, spec, files, out, class_name=args.class_name, covariate_values=values,
                           layer_name=args.layer)
    print(f"{spec.app} explain: Grad-CAM of {result['class']} ({result['score']:.2f}; predicted "
          f"{result['predicted']}) -> {result['png']}")
    return result
