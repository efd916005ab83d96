"""Training recipes: the shared `TrainConfig` options, each a thin use of Keras's own class, applied in one place.

`Run.fit` (hybridvision.common.run) calls `apply` once per phase, before training; every app gets the
same options with the same names:

    --lr-schedule constant|cosine|step|plateau, --warmup-epochs   keras.optimizers.schedules.CosineDecay
        (warm-up: warmup_target/warmup_steps), ExponentialDecay(staircase=True), keras.callbacks.ReduceLROnPlateau
    --early-stopping N      keras.callbacks.EarlyStopping (the best checkpoint stays the one kept)
    --weight-decay W        the optimizer's own weight_decay (decoupled: Adam with it is AdamW)
    --clipnorm C            the optimizer's own clipnorm
    --ema, --ema-momentum   the optimizer's own use_ema/ema_momentum; the averaged weights are swapped in for
                            validation and for the epoch's checkpoint (as keras.callbacks.SwapEMAWeights), and
                            Keras's fit ends with them (optimizer.finalize_variable_values)
    --label-smoothing S     BinaryCrossentropy / CategoricalCrossentropy(label_smoothing=S): an app names its
                            loss through `loss(name, config)`; any other loss is refused with one line
    --mixup A, --cutmix A   keras.layers.MixUp / CutMix on the training batches (soft-label losses only)
    --randaugment N         keras.layers.RandAugment on the training images

Defaults change nothing. The optimizer is changed in place (before it is built), so the app's own
optimizer, learning rate and loss stay as they are. Resuming after a crash is exact: a schedule is a
function of the optimizer's step counter, and the counter, the learning rate and the moving averages are
optimizer variables in each epoch's backup; the state of ReduceLROnPlateau and EarlyStopping is replayed
from the committed history rows.
"""

from __future__ import annotations

import importlib
import logging
import types

import keras

from hybridvision.common.cli import UserError

log = logging.getLogger("hybridvision")

SOFT_LABEL_LOSSES = {"binary_crossentropy": keras.losses.BinaryCrossentropy,
                     "categorical_crossentropy": keras.losses.CategoricalCrossentropy}
PLATEAU = {"factor": 0.1, "patience": 2}
STEP_FACTOR = 0.1


def _get(config, name, default):
    return getattr(config, name, default)


def loss(name: str, config):
    """The loss `name` ("binary_crossentropy", "categorical_crossentropy") with `config.label_smoothing`.

    Without label smoothing the name itself (as the app compiled before)."""
    smoothing = float(_get(config, "label_smoothing", 0.0))
    if not smoothing:
        return name
    return SOFT_LABEL_LOSSES[name](label_smoothing=smoothing)


def _losses(model) -> list:
    value = getattr(model, "loss", None)
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _loss_name(item) -> str:
    return item if isinstance(item, str) else getattr(item, "name", type(item).__name__)


def _soft(item) -> bool:
    if isinstance(item, str):
        return item in SOFT_LABEL_LOSSES
    return isinstance(item, tuple(SOFT_LABEL_LOSSES.values()))


def check_losses(model, config) -> None:
    """Refuse (one line) the options the model's loss cannot take."""
    losses = _losses(model)
    names = ", ".join(sorted({_loss_name(item) for item in losses}))
    smoothing = float(_get(config, "label_smoothing", 0.0))
    if smoothing and not all(getattr(item, "label_smoothing", None) == smoothing for item in losses):
        raise UserError(f"--label-smoothing: this model's loss ({names}) takes no label smoothing; only a binary or "
                        "categorical cross-entropy does (pass --label-smoothing 0)")
    for flag in ("mixup", "cutmix"):
        if float(_get(config, flag, 0.0)) and not all(_soft(item) for item in losses):
            raise UserError(f"--{flag}: this model's loss ({names}) needs hard labels; mixed labels need a binary or "
                            f"categorical cross-entropy (pass --{flag} 0)")


# ---- the optimizer -------------------------------------------------------------
def _inner(optimizer):
    return getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's own optimizer


def steps_per_epoch(train_data, config, fit_kwargs: dict) -> int | None:
    """Training steps in one epoch: `steps_per_epoch`, a dataset's cardinality, or arrays / batch size."""
    if fit_kwargs.get("steps_per_epoch"):
        return int(fit_kwargs["steps_per_epoch"])
    if isinstance(train_data, tuple):  # arrays (x, y): Keras batches them itself
        x = train_data[0]
        rows = len(next(iter(x.values())) if isinstance(x, dict) else x)
        return -(-rows // int(fit_kwargs.get("batch_size") or _get(config, "batch_size", 32)))
    cardinality = getattr(train_data, "cardinality", None)
    if cardinality is not None:
        n = int(cardinality())
        return n if n > 0 else None
    return None


def _base_rate(optimizer) -> tuple[float, bool]:
    """(the learning rate the app set, whether the app set a schedule of its own)."""
    rate = optimizer._learning_rate
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        for attr in ("warmup_target", "initial_learning_rate"):
            if getattr(rate, attr, None):
                return float(getattr(rate, attr)), True
        return float(keras.ops.convert_to_numpy(rate(0))), True
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate)), False


def schedule(kind: str, base: float, epochs: int, steps: int, warmup_epochs: float = 0.0):
    """The Keras learning-rate schedule of `--lr-schedule kind` (None: a constant rate without warm-up,
    or `plateau`, which is a callback)."""
    warmup = round(warmup_epochs * steps)
    total = max(1, epochs * steps)
    schedules = keras.optimizers.schedules
    if kind == "cosine":
        if warmup:
            return schedules.CosineDecay(0.0, decay_steps=max(1, total - warmup), warmup_target=base,
                                         warmup_steps=warmup)
        return schedules.CosineDecay(base, decay_steps=total)
    if kind == "step":
        return schedules.ExponentialDecay(base, decay_steps=steps * max(1, epochs // 3), decay_rate=STEP_FACTOR,
                                          staircase=True)
    if warmup:  # constant: CosineDecay with alpha=1 never decays, a linear warm-up then constant
        return schedules.CosineDecay(0.0, decay_steps=1, alpha=1.0, warmup_target=base, warmup_steps=warmup)
    return None


def configure_optimizer(model, config, epochs: int, steps: int | None) -> None:
    """Set the recipe's options on `model.optimizer`, in place (before it is built)."""
    optimizer = _inner(model.optimizer)
    kind = _get(config, "lr_schedule", "constant")
    warmup = float(_get(config, "warmup_epochs", 0.0))
    base, own = _base_rate(optimizer)
    if kind in ("cosine", "step") or (kind == "constant" and warmup and not own):
        if steps is None:
            raise UserError(f"--lr-schedule {kind}: the number of training steps per epoch is unknown (a dataset "
                            "of unknown cardinality); pass --lr-schedule constant --warmup-epochs 0")
        optimizer.learning_rate = schedule(kind, base, epochs, steps, warmup)
        log.info("learning rate: %s from %g over %d epochs of %d steps%s", kind, base, epochs, steps,
                 f", warm-up {warmup:g} epochs" if warmup else "")
    elif kind == "plateau" and own:
        raise UserError("--lr-schedule plateau: this app's optimizer already follows a schedule of its own; "
                        "pass --lr-schedule constant or cosine")
    if float(_get(config, "weight_decay", 0.0)):
        optimizer.weight_decay = float(config.weight_decay)
    if float(_get(config, "clipnorm", 0.0)):
        if optimizer.global_clipnorm:
            raise UserError("--clipnorm: this app's optimizer clips by global norm already; pass --clipnorm 0")
        optimizer.clipnorm = float(config.clipnorm)
    if _get(config, "ema", False):
        if optimizer.built and not optimizer.use_ema:
            raise UserError("--ema: the optimizer was built (used) before this phase; compile the model anew")
        optimizer.use_ema = True
        optimizer.ema_momentum = float(_get(config, "ema_momentum", 0.99))
        optimizer.ema_overwrite_frequency = None


# ---- the moving average --------------------------------------------------------
class _EMASwap:
    """Exchanges the model's trainable weights and the optimizer's moving averages (exactly: through NumPy).

    `before` goes before the epoch's commit (EpochCommit), `after` right after it: validation and the
    epoch's checkpoint see the averaged weights, training the raw ones. The backup is written swapped,
    so a resumed run swaps it back after loading it."""

    def __init__(self, resumed: bool):
        self.resumed = resumed
        self.swapped = False
        swap = self

        class Before(keras.callbacks.Callback):
            def on_test_begin(self, logs=None):
                swap.to(True, self.model)

            def on_test_end(self, logs=None):
                swap.to(False, self.model)

            def on_epoch_end(self, epoch, logs=None):
                swap.to(True, self.model)

        class After(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                if swap.resumed:  # the backup just loaded holds the averages in the model
                    swap.swapped = True
                    swap.to(False, self.model)

            def on_epoch_end(self, epoch, logs=None):
                swap.to(False, self.model)

        self.before, self.after = Before(), After()

    def to(self, averaged: bool, model) -> None:
        if self.swapped == averaged:
            return
        optimizer = _inner(model.optimizer)
        for var, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
            value = keras.ops.convert_to_numpy(var)
            var.assign(average)
            average.assign(value)
        self.swapped = averaged


# ---- callbacks replayed from the history ---------------------------------------
def _replay(callback, rows: list[dict], rate: float):
    """Feed the committed epochs' rows through `callback.on_epoch_end` on a stand-in model (nothing of the
    real model changes: the learning rate it set then is in the optimizer's restored variables)."""
    stand_in = types.SimpleNamespace(stop_training=False, optimizer=types.SimpleNamespace(learning_rate=rate))
    callback.set_model(stand_in)
    for row in sorted(rows, key=lambda r: r["epoch"]):
        callback.on_epoch_end(int(row["epoch"]), {k: v for k, v in row.items() if k != "epoch"})
    return stand_in.stop_training


class _Resumable:
    """A Keras callback whose state after the committed epochs is rebuilt from their history rows."""

    def __init__(self, rows, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rows = list(rows)

    def on_train_begin(self, logs=None):
        model = self.model
        super().on_train_begin(logs)
        if self._rows:
            rate = float(keras.ops.convert_to_numpy(_inner(model.optimizer).learning_rate))
            _replay(self, self._rows, rate)
            self.set_model(model)


class ResumableReduceLROnPlateau(_Resumable, keras.callbacks.ReduceLROnPlateau):
    pass


class ResumableEarlyStopping(_Resumable, keras.callbacks.EarlyStopping):
    pass


def _early_stopping(config, monitor, mode, rows=()):
    return ResumableEarlyStopping(rows, monitor=monitor, mode=mode, patience=int(config.early_stopping))


def stopped_early(config, rows: list[dict], monitor: str, mode: str) -> bool:
    """Whether `--early-stopping` stopped the phase after its committed epochs (a resume then trains no more)."""
    if not rows or not int(_get(config, "early_stopping", 0)):
        return False
    callback = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=int(config.early_stopping))
    callback.on_train_begin()
    return _replay(callback, rows, 0.0)


def callback_factory(spec):
    """The factory named by one `--callbacks` entry `module:factory`; a one-line `UserError` when it is not there."""
    module, _, name = str(spec).partition(":")
    if not module or not name:
        raise UserError(f"--callbacks {spec!r}: expected module:factory, e.g. mypackage.callbacks:make")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as err:
        raise UserError(f"--callbacks {spec}: cannot import {module} ({err})") from None
    except AttributeError:
        raise UserError(f"--callbacks {spec}: {module} has no {name}") from None


def user_callbacks(specs) -> list:
    """The callbacks of `--callbacks module:factory,...`: each factory() returns a callback or a list."""
    made = []
    for spec in specs or ():
        result = callback_factory(spec)()
        result = list(result) if isinstance(result, (list, tuple)) else [result]
        bad = [type(c).__name__ for c in result if not isinstance(c, keras.callbacks.Callback)]
        if bad:
            raise UserError(f"--callbacks {spec}: factory returned {', '.join(bad)}, not a keras.callbacks.Callback")
        made += result
    return made


# ---- the training data -----------------------------------------------------------
def _augmenters(config):
    seed = int(_get(config, "seed", 0))
    layers = []
    if int(_get(config, "randaugment", 0)):
        layers.append(("images", keras.layers.RandAugment(value_range=(0, 255), num_ops=int(config.randaugment),
                                                          factor=0.5, seed=seed)))
    if float(_get(config, "mixup", 0.0)):
        layers.append(("both", keras.layers.MixUp(alpha=float(config.mixup), seed=seed)))
    if float(_get(config, "cutmix", 0.0)):
        layers.append(("both", keras.layers.CutMix(factor=float(config.cutmix), seed=seed)))
    return layers


def augment(train_data, config):
    """The training dataset with `--randaugment`, `--mixup`, `--cutmix` mapped over its batches."""
    layers = _augmenters(config)
    if not layers:
        return train_data
    import tensorflow as tf

    flags = ", ".join(f"--{f}" for f in ("randaugment", "mixup", "cutmix") if float(_get(config, f, 0)))
    if not isinstance(train_data, tf.data.Dataset):
        raise UserError(f"{flags}: this phase trains on arrays (e.g. features), not on a dataset of images")
    spec = train_data.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2 or not isinstance(spec[0], tf.TensorSpec) \
            or spec[0].shape.rank != 4:
        raise UserError(f"{flags}: needs batches of images alone as the model's input (this model takes "
                        f"{spec[0] if isinstance(spec, tuple) else spec})")
    if int(_get(config, "randaugment", 0)) and spec[0].shape[-1] != 3:
        raise UserError(f"--randaugment: needs RGB images (these have {spec[0].shape[-1]} channels)")

    def apply(images, labels, *rest):
        dtype = images.dtype
        images = tf.cast(images, "float32")
        for kind, layer in layers:
            if kind == "images":
                images = layer(images, training=True)
                continue
            flat = labels.shape.rank == 1
            mixed = layer({"images": images, "labels": tf.cast(labels[:, None] if flat else labels, "float32")},
                          training=True)
            images, labels = mixed["images"], mixed["labels"][:, 0] if flat else mixed["labels"]
        return (tf.cast(images, dtype), labels, *rest)

    return train_data.map(apply, num_parallel_calls=tf.data.AUTOTUNE)


# ---- all together ----------------------------------------------------------------
def apply(model, train_data, config, *, epochs: int, monitor: str, mode: str, rows: list[dict], resumed: bool,
          fit_kwargs: dict):
    """Apply the recipe to one phase: returns (training data, callbacks before the epoch's commit, callbacks after).

    `rows`: the history rows of the epochs committed before (a resume)."""
    check_losses(model, config)
    configure_optimizer(model, config, epochs, steps_per_epoch(train_data, config, fit_kwargs))
    before, after = [], []
    if _get(config, "ema", False):
        swap = _EMASwap(resumed)
        before.append(swap.before)
        after.append(swap.after)
    if _get(config, "lr_schedule", "constant") == "plateau":
        after.append(ResumableReduceLROnPlateau(rows, monitor=monitor, mode=mode, verbose=0, **PLATEAU))
    if int(_get(config, "early_stopping", 0)):
        after.append(_early_stopping(config, monitor, mode, rows))
    after += user_callbacks(_get(config, "callbacks", []))
    return augment(train_data, config), before, after
