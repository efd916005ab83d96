"""Configuration: one dataclass per app, exposed on the command line.

Every app declares a dataclass that extends `TrainConfig`; its defaults are
the best known settings for the task. `parse_config` turns that dataclass into
an argparse parser (`--key value` for every field, `--config file.yaml` to
start from a file), so all apps share one CLI convention:

    hybridvision digit_pairs train --config my.yaml --epochs 5

Flags override the file; the file overrides the defaults. A field left at
`None` is an automatic setting (e.g. the weights, by backbone): the app's
`fill_automatic` works it out when the config is made, so every config in
hand, parsed or constructed, holds its final values (and the run's saved
config.yaml reads back to the same config).

Settings several apps share are mixins here: `AugmentOptions` (the affine
augmentation knobs and their one builder).

`--help` shows the flags in groups (`GROUPS`: data, model, training, output,
distribution), by each field's `group=`; a tool's own fields (a tuner's
search space, ...) come first, under "options".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import types
import typing
from pathlib import Path

import yaml

_RANGE_KEYS = ("min", "max", "above", "below")
# List settings whose items each name one run (its folder, its row of a summary): a repeat would silently be one.
DISTINCT_LISTS = ("seeds",)
# The sections of --help, in order: group name -> title.
GROUPS = {
    "data": "data (what is read and how it is prepared)",
    "model": "model",
    "training": "training",
    "output": "output",
    "distribution": "distribution (several devices or hosts)",
}
# The KerasTuner searches `hybridvision.common.tuning` runs; here for the tuners' configs (no Keras needed).
TUNERS = ("grid", "random", "hyperband")


def option(default, help="", choices=None, min=None, max=None, above=None, below=None, group=None, space=False,
           **kwargs):
    """A dataclass field with help text, choices and a numeric range for the CLI.

    `min`/`max` are inclusive bounds, `above`/`below` exclusive ones; they
    apply to every item of a list field, and `None` values (automatic
    settings) are not checked. A field an app redeclares without a range keeps
    the range of the field it overrides (e.g. `epochs` stays >= 1); so does
    its help text and `group` (one of `GROUPS`, the section of --help).

    `space=True` marks a `list[float]` field that is a tuner's search space: it also takes a range,
    `low:high` or `low:high:log`, kept as that text (`float_space`); the range's ends must be in the
    field's range.

        epochs: int = option(10, "number of epochs", min=1, group="training")
        val_fraction: float = option(0.2, "share held out", min=0, below=1)
        learning_rates: list[float] = option([1e-3, 3e-4], "learning rates to try", above=0, space=True)
    """
    if group is not None and group not in GROUPS:
        raise ValueError(f"option group {group!r} is not one of {', '.join(GROUPS)}")
    metadata = {"help": help, "choices": choices, "group": group, "space": space}
    bounds = {"min": min, "max": max, "above": above, "below": below}
    metadata.update({k: v for k, v in bounds.items() if v is not None})
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


@dataclasses.dataclass
class TrainConfig:
    """Settings every app shares; apps subclass it and add their own."""

    data_dir: str | None = option(None, "dataset root; omitted: the embedded synthetic demo data", group="data")
    run_dir: str | None = option(
        None, "run directory; default runs/<app>/<timestamp>, or the unfinished run to resume", group="output"
    )
    epochs: int = option(10, "number of training epochs", min=1, group="training")
    batch_size: int = option(32, "batch size (per replica under --strategy mirrored)", min=1, group="training")
    learning_rate: float = option(1e-3, "initial learning rate", above=0, group="training")
    image_size: int = option(128, "images are resized to image_size x image_size", min=1, group="data")
    seed: int = option(0, "random seed for splits, shuffling and initialisation", min=0, group="training")
    deterministic: bool = option(
        False, "repeat a seeded run exactly: TensorFlow's op determinism, which also makes the random augmentation "
        "of the parallel tf.data steps draw in order (without it a seeded run can part from a rerun after its first "
        "epoch); it can cost speed, on a GPU above all", group="training",
    )
    weights: str = option(
        "none", "backbone weights: imagenet, none, or a path to a .weights.h5 file", group="model"
    )
    quiet: bool = option(False, "no progress bars, only warnings and the final summary", group="output")
    export_anyway: bool = option(
        False, "export the model even when its validation score is no better than the run's floor (chance, the "
        "majority class): for smoke tests on tiny data", group="output"
    )
    strategy: str = option(
        "default", "distribution strategy", choices=("default", "mirrored", "data_parallel"), group="distribution"
    )
    scale_learning_rate: bool = option(
        False, "multiply the learning rate by the number of replicas (linear scaling rule)", group="distribution"
    )
    mixed_precision: str = option(
        "off",
        "mixed precision policy",
        choices=("off", "mixed_float16", "mixed_bfloat16"),
        group="training",
    )
    # Training recipes, each a thin use of Keras's own class, applied in one place: hybridvision.common.recipe.
    # Their defaults change nothing (constant learning rate, no EMA, ...).
    lr_schedule: str = option(
        "constant", "learning-rate schedule over each phase's steps: constant; cosine (CosineDecay to 0); step "
        "(x0.1 after each third of the epochs, ExponentialDecay staircase); plateau (ReduceLROnPlateau: x0.1 "
        "after 2 epochs without improvement of the monitored metric)",
        choices=("constant", "cosine", "step", "plateau"), group="training",
    )
    warmup_epochs: float = option(
        0.0, "ramp the learning rate up linearly from 0 over this many epochs (0 = off; with --lr-schedule "
        "constant or cosine)", min=0, group="training",
    )
    early_stopping: int = option(
        0, "stop a phase after this many epochs without improvement of the monitored metric (0 = off); the best "
        "checkpoint is still the one kept", min=0, group="training",
    )
    weight_decay: float = option(
        0.0, "decoupled weight decay, the optimizer's own weight_decay (Adam with it is AdamW; 0 = off)", min=0,
        group="training",
    )
    label_smoothing: float = option(
        0.0, "label smoothing of a binary or categorical cross-entropy loss (0 = off; refused for other losses)",
        min=0, below=1, group="training",
    )
    ema: bool = option(
        False, "keep an exponential moving average of the weights (optimizer use_ema); validation, the best "
        "checkpoint and the export use the averaged weights", group="training",
    )
    ema_momentum: float = option(0.99, "--ema: momentum of the moving average", above=0, below=1, group="training")
    clipnorm: float = option(0.0, "clip each gradient to this norm (the optimizer's clipnorm; 0 = off)", min=0,
                             group="training")
    mixup: float = option(
        0.0, "MixUp of the training batches with this alpha (keras.layers.MixUp; 0 = off; needs a binary or "
        "categorical cross-entropy loss and image-only inputs)", min=0, group="data",
    )
    cutmix: float = option(
        0.0, "CutMix of the training batches with this factor (keras.layers.CutMix's Beta parameter; 0 = off; needs a binary or "
        "categorical cross-entropy loss and image-only inputs)", min=0, group="data",
    )
    randaugment: int = option(
        0, "RandAugment of the training images with this many operations (keras.layers.RandAugment, factor 0.5, "
        "on 0..255 RGB images; 0 = off)", min=0, group="data",
    )
    # Tracking.
    callbacks: list[str] = option(
        [], "more Keras callbacks: module:factory, where factory() returns a callback or a list of them", group="output"
    )
    tracker: str = option(
        "none", "also log the run's settings, per-epoch and final metrics and plots to: none; mlflow (a local "
        "mlruns/ in the run directory); or wandb (Weights & Biases, with the exported model as an artifact: offline, "
        "in <run dir>/wandb or WANDB_DIR, unless WANDB_MODE is set or you are logged in, WANDB_API_KEY or wandb login)",
        choices=("none", "mlflow", "wandb"), group="output",
    )
    # Multi-process runs (JAX, one process per host; see common/distribute.py).
    coordinator: str | None = option(
        None, "multi-host (JAX): HOST:PORT of process 0, the same in every process "
        "(default: KERAS_DISTRIBUTION_JOB_ADDRESSES, or SLURM's first node with --strategy data_parallel)",
        group="distribution",
    )
    num_processes: int | None = option(
        None, "multi-host (JAX): number of processes; > 1 trains data-parallel over all of them "
        "(default: KERAS_DISTRIBUTION_NUM_PROCESSES, or SLURM_NTASKS with --strategy data_parallel; else 1)",
        group="distribution",
    )
    process_id: int | None = option(
        None, "multi-host (JAX): this process's index, 0..N-1; process 0 writes the run directory and export "
        "(default: KERAS_DISTRIBUTION_PROCESS_ID, or SLURM_PROCID with --strategy data_parallel)",
        group="distribution",
    )

    def __post_init__(self):
        validate(self)
        unset = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is None]
        self.fill_automatic()
        if self.warmup_epochs and self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"--warmup-epochs {self.warmup_epochs:g} works with --lr-schedule constant or cosine, "
                             f"not {self.lr_schedule}; pass --warmup-epochs 0")
        # Not a field: never saved, compared or passed on by dataclasses.replace.
        self._automatic = frozenset(name for name in unset if getattr(self, name) is not None)

    def fill_automatic(self) -> None:
        """Fill the automatic settings (fields left `None`) and check combinations of settings.

        Runs once, when the config is made (parsed, read from a file or
        constructed); apps override it. Raise `ValueError` naming the flag
        and the fix for a combination that cannot work.
        """

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes):
        """A copy with `changes`; the automatic settings are worked out again for the new values
        (`dataclasses.replace` keeps them as they are)."""
        again = {name: None for name in getattr(self, "_automatic", ()) if name not in changes}
        return dataclasses.replace(self, **again, **changes)


@dataclasses.dataclass
class AugmentOptions:
    """Mixin: the affine augmentation of the training images (`hybridvision.common.data.AffineAugmentation`).

    Its defaults are Keras ImageDataGenerator's classic knobs; an app
    redeclares a field to change its default (the help and range stay):

        @dataclasses.dataclass
        class MyConfig(AugmentOptions, TrainConfig):
            rotation_range: float = option(10.0)

    `cfg.affine_augmentation()` is the layer (None without `--augment`).
    """

    augment: bool = option(False, "random affine augmentation of the training images", group="data")
    rotation_range: float = option(40.0, "--augment: rotation in degrees, drawn in [-r, r]", min=0, max=180,
                                   group="data")
    width_shift_range: float = option(0.2, "--augment: horizontal shift, fraction of the width", min=0, below=1,
                                      group="data")
    height_shift_range: float = option(0.2, "--augment: vertical shift, fraction of the height", min=0, below=1,
                                       group="data")
    shear_range: float = option(0.2, "--augment: shear angle in degrees, as ImageDataGenerator", min=0, below=90,
                                group="data")
    zoom_range: float = option(0.2, "--augment: zoom factors in [1 - z, 1 + z]", min=0, below=1, group="data")
    fill_mode: str = option("nearest", "--augment: how pixels from outside the image are filled",
                            choices=("nearest", "constant", "reflect", "wrap"), group="data")

    def affine_augmentation(self, **extra):
        """The `AffineAugmentation` of these settings, seeded by `seed`, or None without `augment`.

        `extra`: more `AffineAugmentation` arguments (e.g. `horizontal_flip`)."""
        if not self.augment:
            return None
        from hybridvision.common.data.affine_augment import AffineAugmentation  # Keras only when augmenting

        return AffineAugmentation(
            rotation_range=self.rotation_range, width_shift_range=self.width_shift_range,
            height_shift_range=self.height_shift_range, shear_range=self.shear_range, zoom_range=self.zoom_range,
            fill_mode=self.fill_mode, seed=getattr(self, "seed", None), **extra,
        )


def _field_type(cls, field: dataclasses.Field):
    """The concrete scalar type of a field, unwrapping `X | None`."""
    hint = typing.get_type_hints(cls)[field.name]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0]
        origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return list, typing.get_args(hint)[0] if typing.get_args(hint) else str
    return hint, None


def _parse_list(item_type):
    def parse(text):
        if isinstance(text, (list, tuple)):
            return [item_type(t) for t in text]
        return [item_type(t.strip()) for t in str(text).split(",") if t.strip()]

    return parse


SPACE_HELP = "; or a range low:high (linear) or low:high:log (log sampling) for KerasTuner's hp.Float"


def parse_range(text: str) -> tuple[float, float, str]:
    """`(low, high, sampling)` of a search range `low:high` or `low:high:log` (sampling "linear" or "log"),
    or a one-line `ValueError`: ends that are no numbers, low >= high, log sampling from low <= 0."""
    parts = [p.strip() for p in str(text).split(":")]
    sampling = "log" if len(parts) == 3 and parts[2] == "log" else "linear" if len(parts) == 2 else None
    try:
        if sampling is None:
            raise ValueError
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{text!r} is not a range: expected low:high or low:high:log, e.g. 1e-5:1e-2:log") from None
    if not low < high:
        raise ValueError(f"range {text!r}: low must be below high (got {low:g} >= {high:g})")
    if sampling == "log" and low <= 0:
        raise ValueError(f"range {text!r}: log sampling needs low > 0 (got {low:g}); use low:high for a linear range")
    return low, high, sampling


def float_space(text):
    """A tuner's float search space from the command line or a config file (a field with `space=True`):
    `a,b,...` (or a list) is a list of candidates (KerasTuner's hp.Choice), `low:high[:log]` a range
    (hp.Float, `parse_range`), kept as its text."""
    if isinstance(text, str) and ":" in text:
        parse_range(text)
        return text.strip()
    try:
        return _parse_list(float)(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r}: expected comma-separated numbers (1e-4,1e-3) or a range low:high or "
                         f"low:high:log (1e-5:1e-2:log)") from None


def _typed(name: str, value, kind):
    """`value` as a `kind` (int, float, bool, str), or a one-line `ValueError` naming the key, value and type.

    A setting is never silently changed: a float or bool is no int (`epochs: 2.7`, `epochs: true`), a
    string is no number (`epochs: "3"`), a number is no bool. A whole float (`3.0`, as JSON tools write)
    is an int; `true`/`yes`/`on`/`1` and `false`/`no`/`off`/`0` as text are bools; a number is taken
    as text for a str setting (`data_dir: 2024`).
    """
    if kind is bool and isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    ok = {
        bool: isinstance(value, bool),
        int: (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, float) and value.is_integer()),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, (str, int, float)) and not isinstance(value, bool),
    }.get(kind)
    if ok is None:  # another type (none of the apps' fields today): converted as before
        try:
            return kind(value)
        except (TypeError, ValueError):
            ok = False
    if not ok:
        expected = "true/false" if kind is bool else getattr(kind, "__name__", str(kind))
        raise ValueError(f"config key '{name}': expected {expected}, got {value!r} ({type(value).__name__})")
    return kind(value)


def _coerce(cls, field, value):
    """A value read from a config file (or given as a dict) as the field's type; see `_typed`.

    A list field takes a list of its item type, or one text of comma-separated items (parsed as
    on the command line: `--seeds 0,1,2`).
    """
    if value is None:
        return None
    kind, item = _field_type(cls, field)
    if field_is_space(cls, field.name) and isinstance(value, str):
        try:
            return float_space(value)
        except ValueError as err:
            raise ValueError(f"config key '{field.name}': {err}") from None
    if kind is list:
        if isinstance(value, str):
            try:
                return _parse_list(item)(value)
            except ValueError:
                raise ValueError(f"config key '{field.name}': expected comma-separated {item.__name__} values, "
                                 f"got {value!r}") from None
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key '{field.name}': expected a list of {item.__name__}, got {value!r} "
                             f"({type(value).__name__})")
        return [_typed(field.name, v, item) for v in value]
    return _typed(field.name, value, kind)


class _Loader(yaml.SafeLoader):
    """YAML as PyYAML reads it, but `1e-3` is a float (YAML 1.2), not the text '1e-3'."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_config_file(path: str | Path) -> dict:
    """Read a YAML or JSON config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file; pass a YAML or JSON file")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_Loader)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0]
        raise ValueError(f"--config {path}: not valid YAML/JSON ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of key: value, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def config_from_dict(cls, data: dict, source: str = "config"):
    """Build a `cls` instance from a dict, rejecting unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}"
        )
    values = {name: _coerce(cls, fields[name], value) for name, value in data.items()}
    config = cls(**values)
    if not isinstance(config, TrainConfig):  # a TrainConfig validates itself when made
        validate(config)
    return config


def _inherited(cls, name: str, has) -> dataclasses.Field | None:
    """Field `name` of the first class in `cls`'s MRO whose field of that name satisfies `has`."""
    cls = cls if isinstance(cls, type) else type(cls)
    for klass in cls.__mro__:
        if not dataclasses.is_dataclass(klass):
            continue
        own = {f.name: f for f in dataclasses.fields(klass)}.get(name)
        if own is not None and has(own):
            return own
    return None


def field_range(cls, name: str) -> dict:
    """The range metadata (`min`, `max`, `above`, `below`) of field `name`, inherited from a base class
    whose field of that name has one when the class's own field has none."""
    own = _inherited(cls, name, lambda f: any(k in f.metadata for k in _RANGE_KEYS))
    return {k: own.metadata[k] for k in _RANGE_KEYS if k in own.metadata} if own else {}


def field_choices(cls, name: str):
    """The allowed values of field `name` (None: any), inherited like `field_range`."""
    own = _inherited(cls, name, lambda f: bool(f.metadata.get("choices")))
    return own.metadata["choices"] if own else None


def field_is_space(cls, name: str) -> bool:
    """Whether field `name` is a float search space (`option(..., space=True)`), inherited like `field_range`."""
    return _inherited(cls, name, lambda f: bool(f.metadata.get("space"))) is not None


def field_group(cls, name: str) -> str | None:
    """The --help section (one of `GROUPS`) of field `name`, inherited like `field_help`; None: the tool's own."""
    own = _inherited(cls, name, lambda f: bool(f.metadata.get("group")))
    return own.metadata["group"] if own else None


def field_help(cls, name: str) -> str:
    """The help text of field `name`, inherited from a base class when the class's own field has none."""
    own = _inherited(cls, name, lambda f: bool(f.metadata.get("help")))
    return own.metadata["help"] if own else ""


def _number(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def describe_range(bounds: dict) -> str:
    """'>= 1', '> 0', 'in [0, 1)' ... for a range dict."""
    low = ("[", bounds["min"]) if "min" in bounds else ("(", bounds["above"]) if "above" in bounds else None
    high = ("]", bounds["max"]) if "max" in bounds else (")", bounds["below"]) if "below" in bounds else None
    if low and high:
        return f"in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {_number(low[1])}"
    if high:
        return f"{'<=' if high[0] == ']' else '<'} {_number(high[1])}"
    return ""


def check_range(flag: str, value, bounds: dict) -> None:
    """Raise `ValueError('--flag must be >= 1 (got -1)')` when `value` is outside `bounds` (NaN always is)."""
    if value is None or not bounds or isinstance(value, bool):
        return
    ok = True
    if "min" in bounds:
        ok = ok and value >= bounds["min"]
    if "above" in bounds:
        ok = ok and value > bounds["above"]
    if "max" in bounds:
        ok = ok and value <= bounds["max"]
    if "below" in bounds:
        ok = ok and value < bounds["below"]
    if not ok:
        raise ValueError(f"{flag} must be {describe_range(bounds)} (got {_number(value)})")


def validate(config) -> None:
    """Check every field with `choices` holds an allowed value, every numeric field is in its range and
    the lists of `DISTINCT_LISTS` (`--seeds`) name each item once."""
    for field in dataclasses.fields(config):
        choices = field_choices(config, field.name)
        value = getattr(config, field.name)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        flag = "--" + field.name.replace("_", "-")
        if choices:
            for v in values:
                if v not in choices:
                    raise ValueError(f"{flag} {v!r} is not valid; choose one of: {', '.join(map(str, choices))}")
        repeated = sorted({v for v in values if values.count(v) > 1}, key=str) if field.name in DISTINCT_LISTS else []
        if repeated:
            raise ValueError(f"{flag} {','.join(map(str, values))} lists {', '.join(map(str, repeated))} more than "
                             f"once; each is one run: list each once")
        bounds = field_range(config, field.name)
        if isinstance(value, str) and field_is_space(config, field.name):  # a range: its ends
            try:
                values = list(parse_range(value)[:2])
            except ValueError as err:
                raise ValueError(f"{flag} {err}") from None
        for v in values:
            if isinstance(v, (int, float)):
                check_range(flag, v, bounds)


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, `error: <message>`, exit code 2 (no usage block)."""

    def error(self, message):
        self.exit(2, f"error: {' '.join(str(message).split())}\n")


def _flag_type(parse):
    """An argparse `type` whose ValueError reaches the user as is (`error: --flag <message>`), where argparse
    would say only "invalid value"."""

    def typed(text):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    typed.__name__ = parse.__name__
    return typed


def build_parser(cls, description: str = "", prog: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one flag per dataclass field plus `--config`, in the sections of `GROUPS`.

    `prog`: the command shown in the usage line, e.g. "hybridvision digit_pairs train".
    """
    parser = OneLineErrorParser(
        prog=prog,
        # The flags are listed below, by section; a usage line naming all of them would fill a screen.
        usage="%(prog)s [-h] [--config FILE] [--FLAG VALUE ...]",
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="YAML or JSON file of settings; flags override it")
    # Fields without a group (a tool's own settings) stay in argparse's first section, "options".
    sections = {name: parser.add_argument_group(title) for name, title in GROUPS.items()}
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        kind, item = _field_type(cls, field)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        kwargs = {"help": field_help(cls, field.name), "default": argparse.SUPPRESS}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field_is_space(cls, field.name):
            kwargs["type"] = _flag_type(float_space)
            kwargs["metavar"] = "A,B,...|LOW:HIGH[:log]"
            kwargs["help"] += SPACE_HELP
        elif kind is list:
            kwargs["type"] = _parse_list(item)
            kwargs["metavar"] = "A,B,..."
        else:
            kwargs["type"] = kind
            if field_choices(cls, field.name):
                kwargs["choices"] = field_choices(cls, field.name)
        # Show the real default in --help although parsing uses SUPPRESS.
        if default is not None and kind is not bool:
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            kwargs["help"] = f"{kwargs['help']} (default: {shown})"
        elif kind is bool:
            kwargs["help"] = f"{kwargs['help']} (default: {default})"
        bounds = field_range(cls, field.name)
        if bounds:
            kwargs["help"] = f"{kwargs['help']} [{describe_range(bounds)}]"
        group = field_group(cls, field.name)
        (sections[group] if group else parser).add_argument(flag, **kwargs)
    return parser


def parse_config(cls, argv=None, description: str = "", prog: str | None = None, parser=None):
    """Parse the command line into a `cls` instance (defaults < --config file < flags).

    `parser`: one made by `build_parser(cls, ...)` (then `description` and `prog` are its own).
    """
    parser = parser or build_parser(cls, description, prog)
    args = vars(parser.parse_args(argv))
    config_file = args.pop("config", None)
    try:
        file_values = load_config_file(config_file) if config_file else {}
        return config_from_dict(cls, {**file_values, **args}, source="config")
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))


def save_config(config, path: str | Path) -> None:
    """Write the resolved config as YAML (the format `--config` reads back)."""
    Path(path).write_text(yaml.safe_dump(config.to_dict() if hasattr(config, "to_dict") else dict(config), sort_keys=True))
