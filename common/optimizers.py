"""AdaBound / AMSBound for Keras 3, and a by-name optimizer factory."""

import keras
from keras import ops

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adabound", "amsbound")


@keras.saving.register_keras_serializable(package="hybridvision")
class AdaBound(keras.optimizers.Optimizer):
    """AdaBound: Adam whose per-weight step size is clipped to a band that
    narrows towards SGD's learning rate `final_lr` as training goes on.

    At step `t` (1-based), with Adam's moments `m_t`, `v_t`:

        step   = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) / (sqrt(v_t) + eps)
        final  = final_lr * lr / base_learning_rate
        step   = clip(step, final * (1 - 1 / (gamma * t + 1)),
                            final * (1 + 1 / (gamma * t)))
        w_t    = w_{t-1} - step * m_t

    With `amsbound=True`, `v_t` is replaced by its running maximum (AMSBound).
    This is the authors' reference implementation step for step.

    Learning-rate schedules: like the reference code, `final_lr` is relative
    to the base learning rate, so the bounds follow the schedule: when the
    current learning rate is half the base one (a `LearningRateSchedule`,
    `ReduceLROnPlateau`, or assigning `optimizer.learning_rate`), the band
    is centred on `final_lr / 2`. The base learning rate is the initial one
    (a schedule's value at step 0) unless `base_learning_rate` is given; it
    is saved in the config, so a reloaded optimizer scales the same way.

    Weight decay: `weight_decay` is Keras's decoupled decay applied by the
    base optimizer (`w -= lr * weight_decay * w` before each step, as for
    `keras.optimizers.AdamW`), close to the authors' `AdaBoundW`. The
    reference `AdaBound` instead adds an L2 term to the gradient; use a
    `kernel_regularizer` for that.

    Args:
        learning_rate: float, `LearningRateSchedule` or callable; Adam's
            learning rate at the start of training. Defaults to `1e-3`.
        beta_1: decay rate of the first-moment estimate. Defaults to `0.9`.
        beta_2: decay rate of the second-moment estimate. Defaults to
            `0.999`.
        final_lr: the SGD learning rate the bounds converge to, for the base
            learning rate. Defaults to `0.1`.
        gamma: how fast the bounds close in (about `1 / gamma` steps).
            Defaults to `1e-3`.
        epsilon: added to `sqrt(v)` for numerical stability. Defaults to
            `1e-8`.
        amsbound: use the running maximum of `v` (AMSBound). Defaults to
            `False`.
        base_learning_rate: the learning rate `final_lr` is quoted for;
            `None` takes the initial learning rate.
        weight_decay: decoupled weight decay (see above); `None` for none.
        clipnorm: clip each gradient to this norm, as for every Keras
            optimizer.
        clipvalue: clip each gradient to this absolute value.
        global_clipnorm: clip the gradients to this global norm.
        use_ema: keep an exponential moving average of the weights.
        ema_momentum: the momentum of that average.
        ema_overwrite_frequency: every how many steps the weights are
            overwritten with their average (`None`: never).
        loss_scale_factor: multiply the loss by this before computing the
            gradients (and divide the gradients back).
        gradient_accumulation_steps: apply the gradients averaged over this
            many steps.
        name: the optimizer's name.
        **kwargs: other base optimizer arguments.

    Example:
        ```python
        import keras
        import numpy as np
        from hybridvision.optimizers import AdaBound

        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer=AdaBound(learning_rate=3e-3, final_lr=0.1),
                      loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        model.fit(rng.normal(size=(16, 4)), rng.integers(0, 3, 16), epochs=2, verbose=0)

        amsbound = AdaBound(amsbound=True)  # the AMSBound variant
        ```

    Reference:
        Luo, Xiong, Liu and Sun, "Adaptive Gradient Methods with Dynamic
        Bound of Learning Rate", ICLR 2019, https://openreview.net/forum?id=Bkg3g2R9FX
        (code: https://github.com/Luolc/AdaBound).
    """

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        final_lr=0.1,
        gamma=1e-3,
        epsilon=1e-8,
        amsbound=False,
        base_learning_rate=None,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name="adabound",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            name=name,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            **kwargs,
        )
        if base_learning_rate is None:
            base_learning_rate = _initial_value(learning_rate)
        for arg, value in (
            ("final_lr", final_lr),
            ("gamma", gamma),
            ("base_learning_rate", base_learning_rate),
        ):
            if not value > 0:
                raise ValueError(f"AdaBound {arg} must be > 0, got {value!r}.")
        for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= value < 1:
                raise ValueError(f"AdaBound {arg} must be in [0, 1), got {value!r}.")
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.final_lr = final_lr
        self.gamma = gamma
        self.epsilon = epsilon
        self.amsbound = amsbound
        self.base_learning_rate = float(base_learning_rate)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        if self.amsbound:
            self._velocity_maxes = self.add_optimizer_variables(var_list, "velocity_max")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]

        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        if self.amsbound:
            v_max = self._velocity_maxes[index]
            self.assign(v_max, ops.maximum(v_max, v))
            v = v_max

        bias_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        bias_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        adam_step = lr * ops.sqrt(bias_2) / bias_1
        final_lr = self.final_lr * lr / self.base_learning_rate
        lower = final_lr * (1 - 1 / (self.gamma * step + 1))
        upper = final_lr * (1 + 1 / (self.gamma * step))
        step_size = ops.divide(adam_step, ops.add(ops.sqrt(v), self.epsilon))
        step_size = ops.minimum(ops.maximum(step_size, lower), upper)
        self.assign_sub(variable, ops.multiply(step_size, m))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "final_lr": self.final_lr,
                "gamma": self.gamma,
                "epsilon": self.epsilon,
                "amsbound": self.amsbound,
                "base_learning_rate": self.base_learning_rate,
            }
        )
        return config


def get_optimizer(name, learning_rate=1e-3, **kwargs):
    """Build an optimizer by name: one of `OPTIMIZERS`.

    `"sgd"` defaults to momentum 0.9 (the reports' setting); `"amsbound"` is
    `AdaBound(amsbound=True)`. Extra keyword arguments go to the optimizer.
    """
    key = str(name).lower()
    if key == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, **kwargs)
    if key == "sgd":
        kwargs.setdefault("momentum", 0.9)
        return keras.optimizers.SGD(learning_rate=learning_rate, **kwargs)
    if key == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate, **kwargs)
    if key in ("adabound", "amsbound"):
        kwargs.setdefault("amsbound", key == "amsbound")
        kwargs.setdefault("name", key)
        return AdaBound(learning_rate=learning_rate, **kwargs)
    raise ValueError(f"Unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}.")


def _initial_value(learning_rate):
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return float(ops.convert_to_numpy(learning_rate(0)))
    if callable(learning_rate):
        return float(ops.convert_to_numpy(learning_rate()))
    return float(learning_rate)
