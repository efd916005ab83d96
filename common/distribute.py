"""Device placement for training: distribution strategy, mixed precision, multi-host.

Apps build and compile their model inside `scope`:

    dist = Distribution.from_config(cfg)
    with dist.scope():
        model = build_model(...)
        model.compile(optimizer=get_optimizer(..., dist.learning_rate(cfg.learning_rate)), ...)
    train_ds = make_dataset(..., batch_size=dist.global_batch_size(cfg.batch_size))

`--strategy default` runs on one device, `mirrored` uses
tf.distribute.MirroredStrategy over the local GPUs (TensorFlow backend; on a
machine without GPUs, over its logical CPU devices, normally one), and
`data_parallel` uses keras.distribution.DataParallel (JAX backend; the route
to multi-host training, since MultiWorkerMirroredStrategy does not work with
Keras 3: keras-team/keras#20585). `--mixed-precision mixed_float16|mixed_bfloat16`
sets Keras's global dtype policy; model heads keep float32 outputs.

Several processes (hosts), JAX only: every app takes
`--coordinator HOST:PORT --num-processes N --process-id K` (one process per
host, all with the same coordinator, process 0's address). `Distribution`
then calls `keras.distribution.initialize` (before any JAX computation) and
`DataParallel` over the devices of all processes; `--strategy` may stay
`default`. Unset flags are read from the environment, first Keras's own
variables (`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES`,
`KERAS_DISTRIBUTION_PROCESS_ID`), then, with `--strategy data_parallel`
only, SLURM's (`SLURM_NTASKS`, `SLURM_PROCID`, the first host of
`SLURM_STEP_NODELIST`/`SLURM_JOB_NODELIST`, port 61000 + job id mod 4096),
so `srun python -m hybridvision.apps.<app>.train --strategy data_parallel` needs no
flags (examples/slurm/multihost_train.sbatch). SLURM's variables are not read
otherwise: a tuner started under srun runs independent processes.

In a multi-process run `--batch-size` is per device (the global batch is
batch x all devices), every process builds the same `tf.data` pipeline with
the global batch and takes its own contiguous share of every batch
(`even_shards`; Keras's own sharding would leave the processes with different
numbers of steps when the last batch is short, and DataParallel cannot split
a batch that the device count does not divide, so a last batch is cut to a
multiple of the device count: fewer samples than there are devices are left
out of that epoch or evaluation). Process 0 alone writes the run directory
and the export (`is_chief`); the others work in a private copy of it
(hybridvision.common.run.Run), taken when they start, so resuming needs the run
directory on a filesystem all processes see.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re

import keras

log = logging.getLogger("hybridvision")

# Set by `initialize_processes`: (process index, process count) of this run.
_PROCESSES: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class MultiHost:
    """Where the processes of one multi-process run meet, and which one this is."""

    coordinator: str
    num_processes: int
    process_id: int
    source: str = "flags"


def _slurm_first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "gpu[03-05,9],cpu1" -> "gpu03"."""
    match = re.match(r"([^,\[]+)(?:\[([^\],\-]+))?", nodelist.strip())
    if not match:
        raise ValueError(f"cannot read the first host of SLURM's node list {nodelist!r}; pass --coordinator HOST:PORT")
    return match.group(1) + (match.group(2) or "")


def multihost_settings(coordinator=None, num_processes=None, process_id=None, use_scheduler_env: bool = False,
                       environ=None) -> MultiHost | None:
    """This process's multi-process settings, or None for a one-process run.

    Each setting comes from its argument (the command-line flag), else from
    Keras's `KERAS_DISTRIBUTION_*` variables, else (when `use_scheduler_env`)
    from SLURM's. A run is multi-process when the number of processes is > 1.
    """
    env = os.environ if environ is None else environ
    source = "flags"
    if num_processes is None and env.get("KERAS_DISTRIBUTION_NUM_PROCESSES"):
        num_processes, source = int(env["KERAS_DISTRIBUTION_NUM_PROCESSES"]), "KERAS_DISTRIBUTION_*"
    slurm = use_scheduler_env and int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1")) or 1) > 1
    if num_processes is None and slurm:
        num_processes, source = int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS"))), "SLURM"
    if num_processes is None or int(num_processes) == 1:
        if coordinator is not None or process_id not in (None, 0):
            raise ValueError("--coordinator/--process-id need --num-processes N > 1 (or the scheduler's variables)")
        return None
    num_processes = int(num_processes)
    if num_processes < 1:
        raise ValueError(f"--num-processes must be at least 1, got {num_processes}")
    if process_id is None and env.get("KERAS_DISTRIBUTION_PROCESS_ID"):
        process_id = int(env["KERAS_DISTRIBUTION_PROCESS_ID"])
    if process_id is None and slurm and "SLURM_PROCID" in env:
        process_id = int(env["SLURM_PROCID"])
    if coordinator is None and env.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        coordinator = env["KERAS_DISTRIBUTION_JOB_ADDRESSES"].split(",")[0]
    if coordinator is None and slurm:
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if nodelist:
            port = 61000 + int(env.get("SLURM_JOB_ID", "0") or 0) % 4096
            coordinator = f"{_slurm_first_host(nodelist)}:{port}"
    if process_id is None:
        raise ValueError(f"--num-processes {num_processes} needs --process-id K (0..{num_processes - 1}) for this process")
    if not 0 <= int(process_id) < num_processes:
        raise ValueError(f"--process-id {process_id} must be in 0..{num_processes - 1} (--num-processes {num_processes})")
    if not coordinator or not re.fullmatch(r"\S+:\d+", coordinator):
        raise ValueError(
            f"--coordinator {coordinator!r}: give process 0's address as HOST:PORT (the same in every process)"
        )
    return MultiHost(coordinator, num_processes, int(process_id), source)


def initialize_processes(settings: MultiHost) -> None:
    """Connect this process to the others (`keras.distribution.initialize`); before any JAX computation."""
    global _PROCESSES
    if keras.backend.backend() != "jax":
        raise ValueError(
            "multi-process training (--num-processes > 1) needs KERAS_BACKEND=jax; "
            "set it before starting Python"
        )
    if _PROCESSES is not None:
        if _PROCESSES != (settings.process_id, settings.num_processes):
            raise RuntimeError(f"this process already joined a run as {_PROCESSES}; cannot join as {settings}")
        return
    import jax

    # On CPU, all-reduces across processes need a collectives implementation
    # (none by default); gloo comes with jaxlib. GPUs use NCCL regardless.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        keras.distribution.initialize(settings.coordinator, num_processes=settings.num_processes,
                                      process_id=settings.process_id)
    except RuntimeError as err:
        raise RuntimeError(
            f"{err}. keras.distribution.initialize must run before any JAX computation: "
            "build no model and touch no Keras/JAX tensor before Distribution.from_config"
        ) from err
    _PROCESSES = (settings.process_id, settings.num_processes)
    log.info("process %d of %d joined the run at %s (%s)", settings.process_id, settings.num_processes,
             settings.coordinator, settings.source)


def process_index() -> int:
    """This process's index in a multi-process run (0 otherwise)."""
    return _PROCESSES[0] if _PROCESSES else 0


def process_count() -> int:
    return _PROCESSES[1] if _PROCESSES else 1


def is_chief() -> bool:
    """Whether this process writes files (run directory, exports): process 0, or the only process."""
    return process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process gets here (no-op in a one-process run)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def chief_value(text: str, size: int = 4096) -> str:
    """Process 0's `text` on every process (e.g. the run directory it chose); `text` itself in a one-process run."""
    if process_count() == 1:
        return text
    import numpy as np
    from jax.experimental import multihost_utils

    data = text.encode()
    if len(data) > size:
        raise ValueError(f"{text[:80]!r}...: longer than {size} bytes")
    buffer = np.zeros(size + 1, np.uint8)
    buffer[0], buffer[1 : 1 + len(data)] = 1, np.frombuffer(data, np.uint8)  # buffer[0]: never all zeros
    shared = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
    return bytes(shared[1:]).rstrip(b"\0").decode()


def even_shards(dataset, devices: int, processes: int = 1, index: int = 0):
    """This process's share of every batch of `dataset`, each batch cut to a multiple of `devices`.

    Every process reads the same batches (the same pipeline and seed) and
    keeps rows [index * b / processes, (index + 1) * b / processes) of each,
    b being the batch size cut down to a multiple of `devices` (batches left
    empty are dropped), so all processes take the same number of steps with
    equal shares that split evenly over their devices.
    """
    import tensorflow as tf

    def share(*element):
        element = element[0] if len(element) == 1 else element
        size = tf.shape(tf.nest.flatten(element)[0])[0] // devices * devices
        part = size // processes
        return tf.nest.map_structure(lambda t: t[index * part : (index + 1) * part], element)

    def nonempty(*element):
        return tf.shape(tf.nest.flatten(element)[0])[0] > 0

    return dataset.map(share).filter(nonempty)


class EvenDataParallel(keras.distribution.DataParallel):
    """`DataParallel` whose tf.data batches always split evenly over the devices and processes (`even_shards`)."""

    def distribute_dataset(self, dataset):
        import tensorflow as tf

        if not isinstance(dataset, tf.data.Dataset):
            return super().distribute_dataset(dataset)
        devices = len(keras.distribution.list_devices()) if self.device_mesh is None else int(
            self.device_mesh.devices.size)
        shards = even_shards(dataset, devices, self.num_processes, getattr(self, "_process_id", 0))
        return shards.prefetch(tf.data.AUTOTUNE)


def jit_steps_under_data_parallel(model) -> bool:
    """Under `DataParallel` on JAX, make `model`'s train/test steps jit-compiled; whether they are.

    A model compiled with `jit_compile=False` (digit_pairs does so for
    TensorFlow's sake) runs op by op on JAX, and under DataParallel every op
    is then a program of its own over all devices, many of them holding an
    all-reduce (the gradients' sums over the batch). On XLA's CPU client with
    several devices in one process such programs deadlocked now and then:
    one device waited in an all-reduce whose partner never started, and XLA
    aborted the process after its 40 s rendezvous timeout (digit_pairs'
    siamese model, 5 epochs on 2 forced CPU devices of a 2-core machine:
    8 of 9 un-jitted runs aborted, 0 of 6 jitted ones; aux: 1 of 1 and 0 of
    1). One jitted program per step has a single all-reduce schedule and
    did not hang. Models that cannot be jitted (holding AffineAugmentation)
    stay op by op, with a warning.
    """
    if keras.backend.backend() != "jax" or keras.distribution.distribution() is None:
        return bool(getattr(model, "jit_compile", False))
    if model.jit_compile:
        return True
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras's "doesn't support jit_compile=True"; ours below says why it matters
        model.jit_compile = True
    if not model.jit_compile:
        log.warning("model %s cannot be jit-compiled (a layer opts out, e.g. AffineAugmentation): under "
                    "--strategy data_parallel it runs op by op, which hung XLA's CPU all-reduce on several "
                    "CPU devices; keep such layers in the tf.data pipeline", model.name)
        return False
    # Step functions made before were eager; make them again, jitted.
    model.train_function = model.test_function = model.predict_function = None
    log.info("model %s: train/test steps jit-compiled under data_parallel", model.name)
    return True


class Distribution:
    """The strategy and precision a run trains under, over one or several processes.

    Args:
        strategy: "default", "mirrored" or "data_parallel".
        mixed_precision: "off", "mixed_float16" or "mixed_bfloat16".
        scale_learning_rate: multiply the learning rate by the replica count.
        coordinator, num_processes, process_id: multi-process settings (JAX;
            see the module docstring); None reads them from the environment.
    """

    def __init__(self, strategy: str = "default", mixed_precision: str = "off", scale_learning_rate: bool = False,
                 coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None):
        self.mixed_precision = mixed_precision
        self.scale_learning_rate = scale_learning_rate
        self._strategy = None
        backend = keras.backend.backend()
        if strategy not in ("default", "mirrored", "data_parallel", None):
            raise ValueError(f"--strategy {strategy!r} is not valid; choose default, mirrored or data_parallel")
        # First of all: joining the other processes must precede any JAX computation.
        self.multihost = multihost_settings(coordinator, num_processes, process_id,
                                            use_scheduler_env=strategy == "data_parallel")
        if self.multihost is not None:
            if strategy == "mirrored":
                raise ValueError("--strategy mirrored is one host only; several processes train with "
                                 "--strategy data_parallel on KERAS_BACKEND=jax")
            initialize_processes(self.multihost)
            strategy = "data_parallel"
        self.strategy_name = strategy
        if mixed_precision not in ("off", None):
            keras.mixed_precision.set_global_policy(mixed_precision)
            log.info("mixed precision: %s", mixed_precision)
        else:
            keras.mixed_precision.set_global_policy("float32")
        if strategy == "mirrored":
            if backend != "tensorflow":
                raise ValueError("--strategy mirrored needs KERAS_BACKEND=tensorflow; use --strategy data_parallel on JAX")
            import tensorflow as tf

            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            self._strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
            log.info("mirrored strategy over %d devices: %s", len(devices), ", ".join(d.name for d in devices))
        elif strategy == "data_parallel":
            if backend != "jax":
                raise ValueError(
                    "--strategy data_parallel needs KERAS_BACKEND=jax (keras.distribution); "
                    "on TensorFlow use --strategy mirrored"
                )
            keras.distribution.set_distribution(EvenDataParallel())

    @classmethod
    def from_config(cls, config) -> Distribution:
        return cls(
            getattr(config, "strategy", "default"),
            getattr(config, "mixed_precision", "off"),
            getattr(config, "scale_learning_rate", False),
            getattr(config, "coordinator", None),
            getattr(config, "num_processes", None),
            getattr(config, "process_id", None),
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
