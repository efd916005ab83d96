"""Two-replica MirroredStrategy checks, run in a process of their own (tests/common/test_mirrored_replicas.py).

TensorFlow splits a CPU into logical devices only before it initialises its
devices, which a pytest process has long done; so the test starts this
module with `python -m tests.common.mirrored_replicas_worker OUT.json` in a
fresh process, here we make two logical CPU devices first, and write what
we measured to OUT.json for the test to assert on:

- `equivalence`: digit_pairs' cnn (dropout 0, so no randomness per replica)
  trained 2 epochs with global batch 2B on 2 replicas and on 1 replica, from
  the same initial weights and the same batches; the largest weight
  difference, and how far training moved the weights.
- `scaling`: what `Distribution` reports for 2 replicas.
- `app`: `hybridvision.apps.digit_pairs.train` under `--strategy mirrored --scale-learning-rate`,
  killed (an exception) after its first epoch and run again: the compiled
  learning rate, the epochs each invocation trained, the weights the second
  one started from against those the first one ended epoch 1 with.
"""

from __future__ import annotations

import json
import os
import sys

import tensorflow as tf

REPLICAS = 2
PER_REPLICA = 4


def logical_cpus(n: int = REPLICAS) -> list:
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    return tf.config.list_logical_devices("CPU")


def _pairs(n: int, seed: int = 0):
    import numpy as np

    from hybridvision.apps.digit_pairs.data import PairSet

    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 10, size=(n, 2)).astype("int32")
    x = rng.uniform(size=(n, 14, 14, 2)).astype("float32")
    return PairSet(x, (classes[:, 0] <= classes[:, 1]).astype("int32"), classes)


def equivalence() -> dict:
    import keras
    import numpy as np

    from hybridvision.apps.digit_pairs.data import make_dataset
    from hybridvision.apps.digit_pairs.models import build_model, compile_model
    from hybridvision.common.distribute import Distribution

    pairs = _pairs(8 * PER_REPLICA * REPLICAS)
    final = {}
    initial = None
    for name in ("one", "two"):
        dist = Distribution("mirrored") if name == "two" else Distribution("default")
        with dist.scope():
            keras.utils.set_random_seed(0)
            model = build_model("cnn", 14, dropout=0.0)
            compile_model(model, "cnn", 0.005)
        if initial is None:
            initial = model.get_weights()
        model.set_weights(initial)
        # Global batch 2B in both: 2 replicas get B each, 1 replica all 2B. No shuffling: the same batches.
        batch = dist.global_batch_size(PER_REPLICA) if name == "two" else PER_REPLICA * REPLICAS
        history = model.fit(make_dataset(pairs, False, batch), epochs=2, verbose=0)
        final[name] = (model.get_weights(), dist.num_replicas, batch, history.history["loss"])
    (w1, r1, b1, loss1), (w2, r2, b2, loss2) = final["one"], final["two"]
    return {
        "replicas": [r1, r2],
        "global_batch": [b1, b2],
        "loss": [loss1, loss2],
        "max_weight_difference": max(float(np.max(np.abs(a - b))) for a, b in zip(w1, w2)),
        "max_weight_change": max(float(np.max(np.abs(a - b))) for a, b in zip(w1, initial)),
    }


def scaling() -> dict:
    from hybridvision.common.distribute import Distribution

    plain, scaled = Distribution("mirrored"), Distribution("mirrored", scale_learning_rate=True)
    return {
        "replicas": scaled.num_replicas,
        "global_batch_of_8": scaled.global_batch_size(8),
        "learning_rate_scaled": scaled.learning_rate(0.1),
        "learning_rate_plain": plain.learning_rate(0.1),
    }


class _Watch:
    """Wraps `Run.fit` to see the model and run of each invocation (and to 'kill' the first after epoch 1)."""

    def __init__(self):
        import keras

        self.invocations = []
        watch = self

        class Spy(keras.callbacks.Callback):
            def __init__(self, record, crash):
                super().__init__()
                self.record, self.crash = record, crash

            def on_train_begin(self, logs=None):
                # After the harness's own callback, which restores a resumed run's weights.
                self.record["start_weights"] = [w.tolist() for w in self.model.get_weights()]

            def on_epoch_begin(self, epoch, logs=None):
                self.record["epochs"].append(epoch)

            def on_epoch_end(self, epoch, logs=None):
                self.record["end_weights"] = [w.tolist() for w in self.model.get_weights()]
                if self.crash:
                    raise RuntimeError("simulated crash after the first epoch")

        from hybridvision.common.run import Run

        original = Run.fit

        def fit(run, model, *args, **kwargs):
            record = {"epochs": [], "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))}
            watch.invocations.append(record)
            crash = len(watch.invocations) == 1
            kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [Spy(record, crash)]
            try:
                return original(run, model, *args, **kwargs)
            except RuntimeError:
                run.close()  # what the death of the process would do: release the run directory
                raise

        Run.fit = fit


def app_resume(workdir: str) -> dict:
    import numpy as np

    from hybridvision.apps.digit_pairs import train
    from hybridvision.common.data.demo import generate

    os.chdir(workdir)
    mnist = generate("mnist", os.path.join(workdir, "mnist"), scale="tiny")
    watch = _Watch()
    argv = ["--data-dir", str(mnist), "--model", "cnn", "--pairs", "20", "--epochs", "2", "--batch-size",
            str(PER_REPLICA), "--learning-rate", "0.005", "--warmup-epochs", "0", "--strategy", "mirrored",
            "--scale-learning-rate", "--export-anyway", "--run-dir", os.path.join(workdir, "run"), "--quiet"]
    crashed = False
    try:
        train.main(argv)
    except RuntimeError:
        crashed = True
    metrics = train.main(argv)
    first, second = watch.invocations
    difference = max(float(np.max(np.abs(np.array(a) - np.array(b))))
                     for a, b in zip(first["end_weights"], second["start_weights"]))
    history = open(os.path.join(workdir, "run", "history.csv")).read().splitlines()
    return {
        "crashed": crashed,
        "learning_rates": [first["learning_rate"], second["learning_rate"]],
        "epochs": [first["epochs"], second["epochs"]],
        "restored_weight_difference": difference,
        "history_rows": len(history) - 1,
        "finished": os.path.exists(os.path.join(workdir, "run", "metrics.json")),
        "test_accuracy": metrics["test"]["accuracy"],
    }


def main(out: str) -> None:
    devices = logical_cpus()
    result = {"devices": [d.name for d in devices]}
    result["equivalence"] = equivalence()
    result["scaling"] = scaling()
    result["app"] = app_resume(os.path.dirname(os.path.abspath(out)))
    with open(out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1])
