"""One process of a multi-process app run (tests/jax/test_multiprocess_app.py).

    KERAS_BACKEND=jax python -m tests.jax.multiprocess_app_worker OUT.npz [--crash-after-first-epoch] -- <app argv>

runs `hybridvision.apps.digit_pairs.train.main(<app argv>)` (the app's own command line,
with its `--coordinator/--num-processes/--process-id`) and writes to OUT.npz
the weights this process's model had at the start and at the end of
training, and the epochs it trained. `--crash-after-first-epoch` ends the
process (os._exit, as a kill would) once every process has finished
epoch 1, so that the next launch has to resume.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv) -> None:
    split = argv.index("--")
    own, app_argv = argv[:split], argv[split + 1 :]
    out, crash = own[0], "--crash-after-first-epoch" in own

    import keras
    import numpy as np

    from hybridvision.common import distribute
    from hybridvision.common.run import Run

    record: dict = {"epochs": []}

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            record["start"] = [np.asarray(w) for w in self.model.get_weights()]

        def on_epoch_begin(self, epoch, logs=None):
            record["epochs"].append(epoch)

        def on_epoch_end(self, epoch, logs=None):
            if crash:
                distribute.barrier("crash")  # process 0 has committed the epoch
                _save(out, record, self.model)
                os._exit(3)

        def on_train_end(self, logs=None):
            record["model"] = self.model

    original = Run.fit

    def fit(run, model, *args, **kwargs):
        record["run_dir"] = str(run.dir)
        kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [Spy()]
        return original(run, model, *args, **kwargs)

    Run.fit = fit
    from hybridvision.apps.digit_pairs import train

    metrics = train.main(app_argv)
    record["metrics"] = metrics
    _save(out, record, record["model"])


def _save(out, record, model) -> None:
    import numpy as np

    arrays = {f"final_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    arrays.update({f"start_{i}": w for i, w in enumerate(record.get("start", []))})
    info = {"epochs": record["epochs"], "run_dir": record.get("run_dir"),
            "test_accuracy": (record.get("metrics") or {}).get("test", {}).get("accuracy")}
    np.savez(out, info=np.array(json.dumps(info)), **arrays)


if __name__ == "__main__":
    main(sys.argv[1:])
