"""One training harness for every app.

`Run` owns a run directory and everything written into it:

    runs/<app>/<timestamp>/
        .hybridvision-run    written first: the folder is the suite's (`rundir.own_dir`; others are refused)
        config.yaml          the resolved config (what `--config` reads back)
        run.log              the log, including skipped images
        run.lock             held (flock) by the process training in the folder; holds its PID
        history.csv          one row per finished epoch (per phase: history_<phase>.csv)
        curves.png           loss and metric curves
        best.keras           best checkpoint by the monitored validation metric
        best.json            {"score", "epoch", "monitor", "mode"} of best.keras
        model.keras          the model to use: the best checkpoint, or the last weights (`finish(final=...)`)
        model.<x>            files the app writes to describe it (model.classes.json), exported with it
        metrics.json         {"val": {...}, "test": {...}} with every compiled metric, plus the app's report
        tensorboard/         TensorBoard logs; final/: settings (hparams), final metrics, confusion matrices, Grad-CAM
        mlruns/              --tracker mlflow: the run's local MLflow store (hybridvision.common.tracking)
        wandb/               --tracker wandb: the offline Weights & Biases run, unless WANDB_DIR is set
        backup/              training state while a run is unfinished

Crash safety. At the end of every epoch its results become durable in one
order, each step an atomic rename of a completely written file, so a kill -9
at any instant leaves a directory that the next invocation can trust:

    1. backup/epoch-<n>.weights.h5   the weights and optimizer state after epoch n
    2. history.csv                   with the row of epoch n
    3. best.keras, then best.json    when the monitored metric improved
    4. backup/state.json             the epoch counter: the commit point

A kill before step 4 leaves the counter at the previous epoch. On resume
`Run.fit` looks at what the dead process left: when every step up to 4 is
there (the row, the weights, a best.json that agrees with history.csv), the
epoch is committed; otherwise its partial results are dropped and it runs
again. Leftovers of interrupted writes (`*.tmp*` files) are removed, and a
directory that cannot be repaired (rows missing, the backup weights gone) is
refused with one line. Resuming is logged (console and run.log) as
"resuming <dir> from epoch N of M".

Running the same command again after a crash resumes from the last finished
epoch, keeps the history rows and the best-so-far score (read from best.json,
the score of the model in best.keras), and then carries on. Apps with several
phases (fine-tuning after a frozen phase, a curriculum) call `Run.fit` once
per phase; finished phases are skipped on resume.

Concurrency. A run directory is locked (`fcntl.flock` on run.lock) for the
life of the `Run`; a second process given the same `--run-dir` is refused with
the holder's PID, and the automatic resume (no `--run-dir`) skips folders in
use. A `--run-dir` holding files the suite did not write is refused untouched
(the rule for folders of earlier versions, which have no marker: `rundir`).
Exports to `saved_models/` are atomic (a temporary file renamed), and only a
model that learned is exported: a run that trained 0 epochs, whose weights are
not finite, whose loss exploded, or whose monitored validation score is no
better than its floor (`Run.finish(floor=...)`) replaces nothing; its train
command ends with a one-line error (`refuse_unexported`), the run directory kept.

Exports. Every app exports to `saved_models/<app>/<run name>.keras` (the run
directory's name; tools running several runs in one directory name each, e.g.
`<run>_seed1`) and copies it to `saved_models/<app>/latest.keras` (a copy, not
a symlink: it works on every filesystem and survives moving the folder). A
run on the embedded demo data (`data_dir` None: `hybridvision demo`, notebooks
in QUICK mode, tests) exports under `saved_models/demo/<app>/` instead, so it
never replaces a model trained on real data. Replacing a file is logged. The
export is the final model wrapped by `hybridvision.common.model_card.attach_card`:
it takes images of any size and carries its model card.

Typical use in an app:

    run = Run("digit_pairs", cfg)
    run.fit(model, train_ds, val_ds, monitor="val_accuracy")
    run.finish(model, {"val": val_ds, "test": test_ds}, final="best", report=per_class_tables,
               card={"class_names": names})

`finish` decides how every run ends: it picks the final model (the best
checkpoint of a phase, else the model given; or the model as it is), saves and
evaluates it once, lets the app's `report` hook add its own results of that
model, exports it, and writes metrics.json last.

The package, one job a module: `run` (the `Run` class), `commit` (an epoch
made durable in the order above, and `recover`, which repairs what a kill
left), `atomic` (writes that are complete or absent, space checks, model
saves), `commit_points` (the named points of that order and the kill hook of
the crash tests), `rundir` (picking, comparing and locking run directories)
and `logs` (console logging).
"""

from hybridvision.common.run.commit_points import COMMIT_POINTS, KILL_ENV
from hybridvision.common.run.logs import setup_logging
from hybridvision.common.run.run import FINAL_CHOICES, Run, refuse_unexported, seed_everything
from hybridvision.common.run.rundir import claim_run_dir, other_settings, resolve_run_dir, shorten

__all__ = [
    "COMMIT_POINTS",
    "FINAL_CHOICES",
    "KILL_ENV",
    "Run",
    "claim_run_dir",
    "other_settings",
    "refuse_unexported",
    "resolve_run_dir",
    "seed_everything",
    "setup_logging",
    "shorten",
]
