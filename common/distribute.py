"""Device placement for training: distribution strategy and mixed precision.

Apps build and compile their model inside `scope`:

    dist = Distribution.from_config(cfg)
    with dist.scope():
        model = build_model(...)
        model.compile(optimizer=get_optimizer(..., dist.learning_rate(cfg.learning_rate)), ...)
    train_ds = make_dataset(..., batch_size=dist.global_batch_size(cfg.batch_size))

`--strategy default` runs on one device, `mirrored` uses
tf.distribute.MirroredStrategy over the local GPUs (TensorFlow backend), and
`data_parallel` uses keras.distribution.DataParallel (JAX backend; the route
to multi-host training, since MultiWorkerMirroredStrategy does not work with
Keras 3: keras-team/keras#20585). `--mixed-precision mixed_float16|mixed_bfloat16`
sets Keras's global dtype policy; model heads keep float32 outputs.
"""

from __future__ import annotations

import contextlib
import logging

import keras

log = logging.getLogger("hybridvision")


class Distribution:
    """The strategy and precision a run trains under.

    Args:
        strategy: "default", "mirrored" or "data_parallel".
        mixed_precision: "off", "mixed_float16" or "mixed_bfloat16".
        scale_learning_rate: multiply the learning rate by the replica count.
    """

    def __init__(self, strategy: str = "default", mixed_precision: str = "off", scale_learning_rate: bool = False):
        self.strategy_name = strategy
        self.mixed_precision = mixed_precision
        self.scale_learning_rate = scale_learning_rate
        self._strategy = None
        backend = keras.backend.backend()
        if mixed_precision not in ("off", None):
            keras.mixed_precision.set_global_policy(mixed_precision)
            log.info("mixed precision: %s", mixed_precision)
        else:
            keras.mixed_precision.set_global_policy("float32")
        if strategy == "mirrored":
            if backend != "tensorflow":
                raise ValueError("--strategy mirrored needs KERAS_BACKEND=tensorflow; use --strategy data_parallel on JAX")
            import tensorflow as tf

            self._strategy = tf.distribute.MirroredStrategy()
        elif strategy == "data_parallel":
            if backend != "jax":
                raise ValueError(
                    "--strategy data_parallel needs KERAS_BACKEND=jax (keras.distribution); "
                    "on TensorFlow use --strategy mirrored"
                )
            keras.distribution.set_distribution(keras.distribution.DataParallel())
        elif strategy not in ("default", None):
            raise ValueError(f"--strategy {strategy!r} is not valid; choose default, mirrored or data_parallel")

    @classmethod
    def from_config(cls, config) -> Distribution:
        return cls(
            getattr(config, "strategy", "default"),
            getattr(config, "mixed_precision", "off"),
            getattr(config, "scale_learning_rate", False),
        )

    @property
    def num_replicas(self) -> int:
        if self._strategy is not None:
            return int(self._strategy.num_replicas_in_sync)
        if self.strategy_name == "data_parallel":
            return len(keras.distribution.list_devices())
        return 1

    def scope(self):
        return self._strategy.scope() if self._strategy is not None else contextlib.nullcontext()

    def global_batch_size(self, per_replica: int) -> int:
        return int(per_replica) * self.num_replicas

    def learning_rate(self, base: float) -> float:
        return float(base) * (self.num_replicas if self.scale_learning_rate else 1)
