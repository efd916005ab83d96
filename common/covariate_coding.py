"""Covariates from a table, coded inside the model: numbers standardised, categories one-hot, missing flagged.

A `CovariateCoding` is fitted on the training split (`fit_coding`) and
becomes the first layers of the model (`with_coding`), so the saved model
takes each covariate's raw value (a number, NaN when missing; a string, ""
when missing) and a prediction on a new table needs no code outside it:

- a numeric column: `NumericCoding` (the training mean and standard
  deviation; a missing value imputed at the mean, plus a missing flag when the
  training split had missing values);
- a categorical column: Keras's `StringLookup(output_mode="one_hot")` over
  the training split's values (most frequent first) with one out-of-vocabulary
  slot, which also takes a value never seen in training; a missing value ("")
  is a category of its own when the training split had one (its flag),
  else out of vocabulary.

The coded columns are concatenated, in the order the covariates were named,
into the one vector that HybridConv2D, FiLM, CondConv2D or late fusion take.

    coding = fit_coding(train_table, ["age", "sex", "site"])
    model = with_coding(network, coding)   # network: [images, covariates vector] -> outputs
    model.predict({"image": images, **coding.raw_values(table)})
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from hybridvision.common.cli import UserError

KINDS = ("numeric", "categorical")
YES_NO = "yes_no"  # CelebA's attributes: a number 1 / 0, written 1/0, 1/-1, yes/no or true/false
IMAGE_INPUT = "image"
MISSING = ""  # a missing categorical value


def is_missing(text) -> bool:
    return text is None or (isinstance(text, float) and math.isnan(text)) or str(text).strip() == ""


def as_number(text) -> float:
    """The float a cell holds (NaN when empty); ValueError when it holds text."""
    if is_missing(text):
        return float("nan")
    return float(str(text).strip())


def input_name(column: str) -> str:
    """A Keras input name for a column (letters, digits and _ only)."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", str(column)).strip("_") or "covariate"
    return f"c_{name}" if name[0].isdigit() or name == IMAGE_INPUT else name


@dataclasses.dataclass
class CovariateCoding:
    """How each covariate is coded: a list of `{"name", "input", "kind", ...statistics}` in input order."""

    columns: list

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    @property
    def width(self) -> int:
        """Length of the coded vector."""
        return sum(
            1 + int(c["indicator"]) if c["kind"] == "numeric" else 1 + len(c["vocabulary"]) for c in self.columns
        )

    def describe(self) -> str:
        """One line per model card: what each covariate is and how it is coded."""
        parts = []
        for c in self.columns:
            if c.get(YES_NO):
                parts.append(f"{c['name']}: 1 if present, 0 if absent (1/-1, yes/no, true/false too), standardised "
                             f"with the training mean {c['mean']:.4g} and std {c['std']:.4g}")
            elif c["kind"] == "numeric":
                flag = ", missing imputed at the mean and flagged" if c["indicator"] else ", missing imputed at the mean"
                parts.append(f"{c['name']}: a number (NaN or empty when missing), standardised with the training "
                             f"mean {c['mean']:.4g} and std {c['std']:.4g}{flag}")
            else:
                shown = ", ".join(repr(v) for v in c["vocabulary"][:8]) + (" ..." if len(c["vocabulary"]) > 8 else "")
                parts.append(f"{c['name']}: a category (a string, empty when missing), one-hot over the training "
                             f"values {shown} plus one slot for any other value")
        return "; ".join(parts)

    def raw_values(self, table) -> dict:
        """`{input name: array (n, 1)}` of a table's raw covariate cells: float32 (NaN missing) or strings."""
        values = {}
        for c in self.columns:
            cells = table[c["name"]].to_numpy(dtype=object)
            if c.get(YES_NO):
                cells = [_yes_no(v) for v in cells]
            if c["kind"] == "numeric":
                values[c["input"]] = np.array([as_number(v) for v in cells], "float32").reshape(-1, 1)
            else:
                values[c["input"]] = np.array(
                    [MISSING if is_missing(v) else str(v).strip() for v in cells], dtype=object
                ).reshape(-1, 1).astype(str)
        return values

    def inputs(self) -> dict:
        """`{input name: keras.Input((1,))}`: float32 for numbers, string for categories."""
        import keras

        return {c["input"]: keras.Input((1,), name=c["input"], dtype="float32" if c["kind"] == "numeric" else "string")
                for c in self.columns}

    def encode(self, inputs: dict):
        """The coded vector `(batch, width)` from `inputs()`-like tensors."""
        import keras

        from hybridvision.common.layers.numeric_coding import NumericCoding

        parts = []
        for c in self.columns:
            x = inputs[c["input"]]
            if c["kind"] == "numeric":
                parts.append(NumericCoding(c["mean"], c["std"], c["indicator"], name=f"code_{c['input']}")(x))
            else:
                lookup = keras.layers.StringLookup(vocabulary=list(c["vocabulary"]), num_oov_indices=1,
                                                   output_mode="one_hot", name=f"code_{c['input']}")
                parts.append(keras.layers.Reshape((1 + len(c["vocabulary"]),))(lookup(x)))
        if len(parts) == 1:
            return parts[0]
        return keras.layers.Concatenate(name="covariates_coded")(parts)

    def encoder(self):
        """A small Keras model: the raw inputs -> the coded vector (the floor fits on its output)."""
        import keras

        inputs = self.inputs()
        return keras.Model(inputs, self.encode(inputs), name="covariate_coding")

    def coded(self, table) -> np.ndarray:
        """The coded matrix of a table, computed by the very layers the model holds."""
        return np.asarray(self.encoder()(self.raw_values(table)))


def _yes_no(text):
    """1.0 / 0.0 for a yes/no word (1/0, 1/-1, yes/no, true/false), the cell itself otherwise (a number, or empty)."""
    from hybridvision.common.predict_io import covariate_value

    if is_missing(text):
        return ""
    value = covariate_value(str(text))
    return str(text) if value is None else value


def infer_kind(cells) -> str:
    """"numeric" when every non-empty cell is a number, else "categorical"."""
    for v in cells:
        if not is_missing(v):
            try:
                as_number(v)
            except ValueError:
                return "categorical"
    return "numeric"


def fit_coding(train, covariates, kinds: dict | None = None) -> CovariateCoding:
    """The coding of `covariates` (column names of `train`), with the training split's statistics.

    `kinds`: `{column: "numeric" | "categorical" | "yes_no"}` for the columns whose kind is forced (yes_no:
    a number 1/0 written as a yes/no word too, CelebA's attributes); the others are inferred
    (`infer_kind`). A constant or all-missing column is refused (it cannot inform).
    """
    kinds = dict(kinds or {})
    columns, taken = [], set()
    for name in covariates:
        cells = train[name].to_numpy(dtype=object)
        kind = kinds.get(name) or infer_kind(cells)
        yes_no = kind == YES_NO
        if yes_no:
            kind, cells = "numeric", np.array([_yes_no(v) for v in cells], dtype=object)
        present = [v for v in cells if not is_missing(v)]
        if not present:
            raise UserError(f"covariate '{name}' is empty in every training row; leave it out of --covariates")
        key = input_name(name)
        if key in taken:
            raise UserError(f"covariates '{name}' and another one have the same input name '{key}'; rename one column")
        taken.add(key)
        missing = len(present) < len(cells)
        if kind == "numeric":
            numbers = []
            for row, v in enumerate(cells):
                try:
                    numbers.append(as_number(v))
                except ValueError:
                    raise UserError(f"covariate '{name}' is numeric but holds {str(v)!r} in a training row ({row + 1}"
                                    f" of the split); fix the cell, or pass --categorical {name}") from None
            numbers = np.array(numbers, "float64")
            mean, std = float(np.nanmean(numbers)), float(np.nanstd(numbers))
            if std == 0:
                raise UserError(f"covariate '{name}' has one value ({mean:g}) in every training row; leave it out")
            columns.append({"name": name, "input": key, "kind": "numeric", "mean": mean, "std": std,
                            "indicator": missing, **({YES_NO: True} if yes_no else {})})
        else:
            values, counts = np.unique([str(v).strip() for v in present], return_counts=True)
            if len(values) < 2 and not missing:
                raise UserError(f"covariate '{name}' has one value ({str(values[0])!r}) in every training row; leave it out")
            order = sorted(zip(-counts, values))
            vocabulary = [str(v) for _, v in order] + ([MISSING] if missing else [])
            columns.append({"name": name, "input": key, "kind": "categorical", "vocabulary": vocabulary})
    return CovariateCoding(columns)


def with_coding(model, coding: CovariateCoding, covariate_input: str = "covariates", scale: float = 1.0):
    """`model` ([images, coded covariates] -> outputs) taking `{"image": images, <raw covariate inputs>}`.

    The coding layers come first; the model's own layers are called again on
    the coded vector (shared, not copied, and not nested: every layer stays
    at the top level, so Grad-CAM and lookups by name still find them).
    `scale` != 1 multiplies the coded vector (a `Rescaling` layer named
    `covariate_scale`): the weights that read it then move `scale` times as
    far per Adam step in their effect on the output, a per-layer learning-rate
    multiplier that Keras optimizers do not offer directly.
    """
    import keras

    images_old = next(t for t in model.inputs if len(t.shape) == 4)
    vector_old = next(t for t in model.inputs if t.name == covariate_input)
    images = keras.Input(batch_shape=images_old.shape, dtype=images_old.dtype, name=IMAGE_INPUT)
    raw = coding.inputs()
    coded = coding.encode(raw)
    if scale != 1:
        coded = keras.layers.Rescaling(scale, name="covariate_scale")(coded)
    placeholder = keras.Input(batch_shape=vector_old.shape, dtype=vector_old.dtype, name=covariate_input)

    def call(layer, *args, **kwargs):
        args, kwargs = keras.tree.map_structure(lambda x: coded if x is placeholder else x, (args, kwargs))
        return layer(*args, **kwargs)

    # clone_model builds its copy on input tensors of the model's structure and checks that the outputs
    # come from them; so clone a widened graph (the raw inputs added, unused) on [images, placeholder, raw],
    # with every call that read the placeholder reading the coded vector, then cut the final model from
    # that graph with the image and the raw inputs only.
    old_raw = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=f"unused_{key}") for key, t in raw.items()]
    widened = keras.Model([*model.inputs, *old_raw], model.outputs, name=model.name)
    order = [images if t is images_old else placeholder for t in model.inputs]
    clone = keras.models.clone_model(widened, input_tensors=[*order, *raw.values()],
                                     clone_function=lambda layer: layer, call_function=call)
    outputs = clone.outputs[0] if len(clone.outputs) == 1 else clone.outputs
    return keras.Model({IMAGE_INPUT: images, **raw}, outputs, name=model.name)
