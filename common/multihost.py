"""Multi-process data-parallel training on the JAX backend (keras.distribution).

`MultiWorkerMirroredStrategy` does not work with Keras 3
(keras-team/keras#20585), so training over several processes or hosts goes
through `keras.distribution` on JAX: every process runs the same script,
`keras.distribution.initialize` connects them (through `jax.distributed`),
and `DataParallel` over all devices of all processes keeps one replica of
the weights per device and averages the gradients across processes each step.

Every process builds the same `tf.data` pipeline batched with the GLOBAL
batch size; Keras shards it so that each process loads its own slice of
every batch (`DataParallel(auto_shard_dataset=True)`, the default; arrays
are refused in multi-process runs). On CPU, JAX needs a cross-process collectives implementation: we select gloo
(`jax_cpu_collectives_implementation`), without which the first all-reduce
across processes fails.

Run two processes on this machine (each writes its final weights to --out):

    KERAS_BACKEND=jax python -m hybridvision.common.multihost --coordinator localhost:12345 \
        --num-processes 2 --process-id 0 --out runs/dp/weights_0.npz &
    KERAS_BACKEND=jax python -m hybridvision.common.multihost --coordinator localhost:12345 \
        --num-processes 2 --process-id 1 --out runs/dp/weights_1.npz

On a cluster, start one process per host with the first host's address as
`--coordinator` (under SLURM: `--process-id $SLURM_PROCID --num-processes
$SLURM_NTASKS`). The demo model is a tiny HybridConv2D network. Every app's
command line does the same itself (`--coordinator/--num-processes/--process-id`,
or SLURM's variables with `--strategy data_parallel`: see common/distribute.py
and examples/slurm/multihost_train.sbatch). A script of your own: call
`initialize()` below first, then
`keras.distribution.set_distribution(keras.distribution.DataParallel())`.
"""

from __future__ import annotations

import logging
import os
import sys

from hybridvision.common.config import OneLineErrorParser

log = logging.getLogger("hybridvision")


def initialize(coordinator: str, num_processes: int, process_id: int, local_devices: int = 1) -> None:
    """Connect this process to the others; call before any Keras/JAX computation.

    Args:
        coordinator: "host:port" of process 0 (every process passes the same).
        num_processes: how many processes take part.
        process_id: this process's index, 0 .. num_processes - 1.
        local_devices: CPU devices to expose per process (ignored on GPU hosts,
            where every local GPU is a device).
    """
    if os.environ.get("KERAS_BACKEND", "") != "jax":
        raise ValueError("multi-process training needs KERAS_BACKEND=jax (set it before starting Python)")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id {process_id} must be in 0..{num_processes - 1} (--num-processes {num_processes})")
    if local_devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        # Read by XLA when the CPU client starts, so it must be set before the first JAX op.
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={local_devices}"
        ).strip()
    from hybridvision.common.distribute import MultiHost, initialize_processes

    # keras.distribution.initialize, with gloo for the cross-process all-reduces on CPU.
    initialize_processes(MultiHost(coordinator, num_processes, process_id))


def build_demo_model(image_size: int = 8, num_covariates: int = 2, num_classes: int = 3):
    """A tiny HybridConv2D classifier (softmax output kept in float32 under mixed precision)."""
    import keras

    from hybridvision.common.layers import HybridConv2D

    images = keras.Input((image_size, image_size, 3), name="images")
    covariates = keras.Input((num_covariates,), name="covariates")
    x = HybridConv2D(4, 3, num_covariates, padding="same", activation="relu",
                     covariate_initializer="glorot_uniform")([images, covariates])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model([images, covariates], outputs)


def demo_data(n: int, image_size: int = 8, num_covariates: int = 2, num_classes: int = 3):
    """The demo samples (the same on every process; Keras hands each its slice)."""
    import numpy as np

    rng = np.random.default_rng(100)
    images = rng.normal(size=(n, image_size, image_size, 3)).astype("float32")
    covariates = rng.normal(size=(n, num_covariates)).astype("float32")
    labels = rng.integers(0, num_classes, size=n)
    return (images, covariates), labels


def train_demo(process_id: int, out: str, steps: int = 4, local_batch: int = 4, seed: int = 0) -> dict:
    """Train the demo model `steps` steps under DataParallel; save initial and final weights."""
    import keras
    import numpy as np

    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    # The same seed everywhere gives the same initial weights; DataParallel
    # replicates them anyway, this just makes "initial" comparable across processes.
    keras.utils.set_random_seed(seed)
    model = build_demo_model()
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    initial = [np.asarray(w) for w in model.get_weights()]
    import jax
    import tensorflow as tf

    global_batch = local_batch * jax.process_count()
    x, y = demo_data(steps * global_batch)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch)
    history = model.fit(dataset, epochs=1, shuffle=False, verbose=0)
    final = [np.asarray(w) for w in model.get_weights()]
    np.savez(out, **{f"final_{i}": w for i, w in enumerate(final)}, **{f"initial_{i}": w for i, w in enumerate(initial)})
    return {"devices": len(devices), "loss": float(history.history["loss"][-1])}


def main(argv=None) -> dict:
    parser = OneLineErrorParser(description=__doc__.split("\n\n")[0], prog="python -m hybridvision.common.multihost")
    parser.add_argument("--coordinator", required=True, help="host:port of process 0, e.g. localhost:12345")
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--local-devices", type=int, default=1, help="CPU devices per process (XLA host platform)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--local-batch", type=int, default=4, help="samples per process per step")
    parser.add_argument("--out", required=True, help="where this process writes its weights (.npz)")
    args = parser.parse_args(argv)
    initialize(args.coordinator, args.num_processes, args.process_id, args.local_devices)
    result = train_demo(args.process_id, args.out, steps=args.steps, local_batch=args.local_batch)
    print(f"process {args.process_id}/{args.num_processes}: {result['devices']} devices, loss {result['loss']:.4f}, weights -> {args.out}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
