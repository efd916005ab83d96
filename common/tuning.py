"""KerasTuner helpers: search spaces built from an app's config, one search driver.

A search space is a dict `{config_field: [values]}`; each trial is the app's
config with those fields replaced, so a trial trains exactly what
`train.py --config best_config.yaml` trains afterwards. The config's own value
is always the space's default (`hp.Choice(..., default=cfg.<field>)`), so a
grid search's first trial is the config's own setting (random search draws
every trial). A float field's values may instead be a range, the text
`low:high` or `low:high:log` (what `--learning-rates 1e-5:1e-2:log` parses to,
`hybridvision.common.config.float_space`): an `hp.Float` with linear or log
sampling, its default the config's value where that lies in the range (a grid
search takes 10 values spread over a range, KerasTuner's `Float.values`).

Each trial's epochs and its hyperparameters go to TensorBoard, in
`<directory>/<project>/tensorboard/<trial id>/execution0` (KerasTuner's own
use of a `keras.callbacks.TensorBoard` passed to `search`: the hparams
dashboard compares the trials; TensorFlow backend only):
`tensorboard --logdir <directory>/<project>/tensorboard`.

The same `search` call serves a distributed search (`python -m hybridvision.common.tuning
launch --workers N -- <search command>`, see hybridvision.common.tuning_launch): on a
worker (`KERASTUNER_TUNER_ID` other than `chief`) it trains the trials the
oracle hands out and returns `(None, tuner)`; the chief returns the best.

    hypermodel = ConfigHyperModel(cfg, {"learning_rate": [1e-3, 3e-4], "batch_size": [16, 32]},
                                  build_model=lambda c: ..., make_data=lambda c: (train_ds, val_ds))
    best_cfg, tuner = search(hypermodel, kind="random", objective="val_accuracy",
                             directory="runs/tune", project_name="orientation", max_trials=8)

Searches resume: running the same command again with the same directory
continues where KerasTuner's oracle stopped (finished trials are not redone).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import keras
import keras_tuner

from hybridvision.common.config import TUNERS, parse_range, save_config  # noqa: F401 - TUNERS re-exported
from hybridvision.common.tables import write_csv

log = logging.getLogger("hybridvision")


def choice(hp, name: str, values, default):
    """`hp.Choice` whose default is the config's value (added to the values if missing)."""
    values = list(values)
    if default not in values:
        values = [default] + values
    return hp.Choice(name, values, default=default)


def hyperparameter(hp, name: str, values, default):
    """The trial's value of one search-space entry: `choice` over a list, or `hp.Float` over a range text
    `low:high[:log]` (its default the config's value where that lies in the range, else `low`)."""
    if isinstance(values, str):
        low, high, sampling = parse_range(values)
        inside = default is not None and low <= default <= high
        return hp.Float(name, low, high, sampling=sampling, default=default if inside else None)
    return choice(hp, name, values, default)


def first_value(values):
    """A search-space entry's first candidate (a list's first, a range's low end)."""
    return parse_range(values)[0] if isinstance(values, str) else list(values)[0]


class ConfigHyperModel(keras_tuner.HyperModel):
    """A HyperModel whose trials are copies of an app config.

    Args:
        base_config: the app's config dataclass (defaults = best known settings).
        space: `{field: [values]}` to search; fields must exist on the config.
            Values must be str, int, float or bool (KerasTuner's Choice types);
            a float field's may be a range text `low:high[:log]` (`hyperparameter`).
        build_model: `config -> compiled keras.Model`.
        make_data: `config -> (train_data, val_data)`; called per trial so the
            batch size can be searched.
    """

    def __init__(self, base_config, space: dict, build_model, make_data, **kwargs):
        super().__init__(**kwargs)
        names = {f.name for f in dataclasses.fields(base_config)}
        unknown = sorted(set(space) - names)
        if unknown:
            raise ValueError(f"search space field(s) {', '.join(unknown)} not in the config; valid: {', '.join(sorted(names))}")
        self.base_config = base_config
        self.space = {k: v if isinstance(v, str) else list(v) for k, v in space.items()}
        self.build_model = build_model
        self.make_data = make_data

    def config_for(self, hp):
        values = {name: hyperparameter(hp, name, vals, getattr(self.base_config, name))
                  for name, vals in self.space.items()}
        return dataclasses.replace(self.base_config, **values)

    def build(self, hp):
        return self.build_model(self.config_for(hp))

    def fit(self, hp, model, *args, **kwargs):
        config = self.config_for(hp)
        train, val = self.make_data(config)
        kwargs.setdefault("epochs", config.epochs)
        kwargs.pop("validation_data", None)
        kwargs.setdefault("verbose", 0 if getattr(config, "quiet", False) else "auto")
        # `train` is a dataset, which orders its own batches (Keras warns about shuffle=True).
        kwargs.setdefault("shuffle", False)
        return model.fit(train, validation_data=val, **kwargs)


def tensorboard_callbacks(callbacks) -> list:
    """Those of a trial's callbacks that write its TensorBoard logs and hparams (the `keras.callbacks.TensorBoard`
    `search` adds, the hparams callback KerasTuner adds beside it): for a hypermodel whose trial trains
    another model than the tuner's (cached features), where the tuner's checkpoint callbacks cannot go."""
    return [c for c in callbacks or () if isinstance(c, keras.callbacks.TensorBoard)
            or type(c).__module__.startswith("tensorboard.plugins.hparams")]


def make_tuner(hypermodel, kind: str, objective: str, directory, project_name: str, max_trials: int = 10,
               max_epochs: int | None = None, seed: int = 0, **kwargs):
    """A KerasTuner tuner by name: `grid`, `random` or `hyperband` (resumes from `directory`)."""
    common = dict(objective=objective, directory=str(directory), project_name=project_name, seed=seed,
                  overwrite=False, **kwargs)
    if kind == "grid":
        return keras_tuner.GridSearch(hypermodel, max_trials=max_trials, **common)
    if kind == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if kind == "hyperband":
        epochs = max_epochs or getattr(getattr(hypermodel, "base_config", None), "epochs", 10)
        return keras_tuner.Hyperband(hypermodel, max_epochs=max(2, int(epochs)), **common)
    raise ValueError(f"--tuner {kind!r} is not valid; choose one of: {', '.join(TUNERS)}")


def trials_table(tuner, metrics=()) -> list[dict]:
    """One row per finished trial: its hyperparameters, score, and the last value of each of `metrics`
    (what the trial's `fit` returned; None where the trial has none)."""
    rows = []
    for trial in tuner.oracle.trials.values():
        if trial.score is None:
            continue
        row = {"trial_id": trial.trial_id, "score": float(trial.score), "status": str(trial.status), **trial.hyperparameters.values}
        row.update({m: trial.metrics.get_last_value(m) if trial.metrics.exists(m) else None for m in metrics})
        rows.append(row)
    return sorted(rows, key=lambda r: r["trial_id"])


def search(hypermodel: ConfigHyperModel, kind: str, objective: str, directory, project_name: str,
           max_trials: int = 10, seed: int = 0, best_config_path=None, **search_kwargs):
    """Run (or resume) a search and write the best trial's config for `train.py --config`.

    Returns:
        (best config, tuner); `(None, tuner)` on a worker of a distributed search,
        since only the chief holds the oracle's results (and may have exited).
    """
    tuner = make_tuner(hypermodel, kind, objective, directory, project_name, max_trials=max_trials, seed=seed)
    if keras.backend.backend() == "tensorflow":
        # KerasTuner gives each trial its own folder of this callback's logs and adds the trial's hparams.
        logs = Path(directory) / project_name / "tensorboard"
        search_kwargs["callbacks"] = [*(search_kwargs.get("callbacks") or []),
                                      keras.callbacks.TensorBoard(str(logs), write_graph=False)]
    tuner.search(**search_kwargs)
    if os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief":
        log.info("worker %s: no trials left", os.environ["KERASTUNER_TUNER_ID"])
        return None, tuner
    best_hp = tuner.get_best_hyperparameters(1)[0]
    best = hypermodel.config_for(best_hp)
    best = dataclasses.replace(best, run_dir=None) if hasattr(best, "run_dir") else best
    out_dir = Path(directory) / project_name
    write_csv(trials_table(tuner), out_dir / "trials.csv")
    path = Path(best_config_path) if best_config_path else out_dir / "best_config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_config(best, path)
    log.info("best trial: %s -> %s; config written to %s", best_hp.values, objective, path)
    keras.backend.clear_session()
    return best, tuner


def main(argv=None) -> int:
    """`python -m hybridvision.common.tuning launch --workers N -- <search command>` (see hybridvision.common.tuning_launch)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "launch":
        print("usage: python -m hybridvision.common.tuning launch --workers N [--port P] -- <search command>", file=sys.stderr)
        return 2
    from hybridvision.common.tuning_launch import main as launch_main

    return launch_main(argv[1:])


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
