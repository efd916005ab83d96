"""Search batch size, drop rates, learning rate and optimiser with KerasTuner (as the report did by hand).

    hybridvision orientation_light tune --task orientation --data-dir data/orientation --tuner random \\
        --max-trials 12 --epochs 10
    hybridvision orientation_light train --config runs/orientation_light_tune/orientation_from_scratch/best_config.yaml

Every trial is the train config with the searched fields replaced, trained on
`train` and scored on `val` (`val_accuracy`); the test split is never looked
at. A grid search starts from the config's own setting (the original report's best);
a random search draws every trial. Written to `<run-dir>/<task>_<model>/`: KerasTuner's trial folders,
`trials.csv` (one row per finished trial) and `best_config.yaml`, the best
trial's full config, which `train.py --config` reads as is. Running the same
command again resumes the search: finished trials are not redone.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from hybridvision.apps.orientation_light.config import OrientationLightConfig, TuneConfig, tune_parser
from hybridvision.apps.orientation_light.data import load_tables, make_datasets
from hybridvision.apps.orientation_light.models import build_model, compile_model
from hybridvision.common.config import parse_config
from hybridvision.common.run import seed_everything, setup_logging
from hybridvision.common.tuning import ConfigHyperModel, search

log = logging.getLogger("hybridvision")
OBJECTIVE = "val_accuracy"


def search_space(cfg: TuneConfig) -> dict:
    """`{train config field: values}`; conv dropout only where the model has it."""
    space = {"batch_size": cfg.batch_sizes, "learning_rate": cfg.learning_rates, "optimizer": cfg.optimizers,
             "head_dropout": cfg.head_dropouts}
    if cfg.model == "from_scratch":
        space["conv_dropout"] = cfg.conv_dropouts
    for name, values in space.items():
        if not values:
            raise ValueError(f"--{name.replace('_', '-')}s is empty; give at least one value")
        # A range (text low:high[:log]) was checked against the flag's bounds when parsed.
        if "dropout" in name and not isinstance(values, str) and not all(0.0 <= v < 1.0 for v in values):
            raise ValueError(f"--{name.replace('_', '-')}s {values}: every rate must be in [0, 1)")
    return {name: values if isinstance(values, str) else list(values) for name, values in space.items()}


def train_config(cfg: TuneConfig) -> OrientationLightConfig:
    """The plain train config of the search (what `train.py --config` reads), automatic values filled in."""
    names = {f.name for f in dataclasses.fields(OrientationLightConfig)}
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k in names}
    return OrientationLightConfig(**{**values, "run_dir": None})


def main(argv=None):
    """Run or resume the search; returns (best train config, path of its YAML file)."""
    cfg = parse_config(TuneConfig, argv, parser=tune_parser())
    setup_logging(cfg.quiet)
    space = search_space(cfg)
    base = train_config(cfg)
    # Only train and val are used; a held-out test split stays unseen.
    tables, class_names, _ = load_tables(base)
    tables = {"train": tables["train"], "val": tables["val"]}

    def build(trial_cfg):
        # One initialisation for every trial: differences come from the settings.
        seed_everything(trial_cfg)
        return compile_model(build_model(trial_cfg, len(class_names)), trial_cfg)

    def make_data(trial_cfg):
        datasets = make_datasets(trial_cfg, tables, class_names, trial_cfg.batch_size)
        return datasets["train"], datasets["val"]

    project = f"{cfg.task}_{cfg.model}"
    best_path = Path(cfg.best_config) if cfg.best_config else Path(cfg.run_dir) / project / "best_config.yaml"
    hypermodel = ConfigHyperModel(base, space, build, make_data)
    best, tuner = search(hypermodel, cfg.tuner, OBJECTIVE, cfg.run_dir, project, max_trials=cfg.max_trials,
                         seed=cfg.seed, best_config_path=best_path)
    if best is None:  # a worker of a distributed search: the chief reports
        return None, best_path
    trial = tuner.oracle.get_best_trials(1)[0]
    settings = ", ".join(f"{name} {getattr(best, name)}" for name in space)
    print(f"orientation_light tune {cfg.task} {cfg.model} ({cfg.tuner}): best {OBJECTIVE} {trial.score:.4f} "
          f"with {settings}; config in {best_path} (train with --config {best_path})")
    return best, best_path


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
