"""cross_modal's search: every trial of the grid trains, early stopping stops, the best config is a train config."""

import pytest

from hybridvision.apps.cross_modal import tune as tune_module
from hybridvision.apps.cross_modal.config import CrossModalConfig
from hybridvision.common.config import parse_config


@pytest.fixture(scope="module")
def tiny_domains(tmp_path_factory):
    from hybridvision.common.data.demo import generate

    return generate("domains", tmp_path_factory.mktemp("domains"), scale="tiny")


def _hparams_model(trial_logs):
    """The `model` hparam KerasTuner wrote to a trial's TensorBoard logs (None if none)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    for events in trial_logs.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                if value.tag == "_hparams_/session_start_info":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    return data.session_start_info.hparams["model"].string_value
    return None


@pytest.mark.slow
def test_search_runs_the_grid_stops_early_and_resumes(tiny_domains, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A learning rate of 1e-12 leaves the val accuracy where the first epoch put it: with patience 1 every phase
    # stops after its second epoch, whatever the data.
    argv = [
        "--data-dir", str(tiny_domains), "--protocol", "from_source", "--source", "photo", "--backbone", "small",
        "--weights", "none", "--image-size", "16", "--batch-size", "8", "--epochs", "5", "--finetune-epochs", "5",
        "--patience", "1", "--learning-rates", "1e-12", "--models", "finetune,frozen", "--augmentations",
        "none,report", "--run-dir", str(tmp_path / "tune"), "--quiet",
    ]  # fmt: skip
    best, best_path, rows = tune_module.main(argv)
    assert len(rows) == 4
    assert {(r["model"], r["augmentation"]) for r in rows} == {
        (m, a) for m in ("finetune", "frozen") for a in ("none", "report")}
    for r in rows:
        assert r["head_epochs"] == 2
        assert r["finetune_epochs_run"] == (2 if r["model"] == "finetune" else 0)
        assert 0 <= r["val_accuracy"] <= 1 and r["train_seconds"] > 0
    assert rows[0]["val_accuracy"] == max(r["val_accuracy"] for r in rows)
    out = tmp_path / "tune" / "search"
    assert "| model | learning rate | augmentation | val accuracy |" in (out / "search.md").read_text()
    assert len((out / "search.csv").read_text().splitlines()) == 5
    # Every trial, a frozen one too (its only phase is the head's), is in TensorBoard with its hparams.
    assert sorted(model for model in map(_hparams_model, (out / "tensorboard").iterdir())) == [
        "finetune", "finetune", "frozen", "frozen"]
    # The best config is a plain train config whose augmentation fields are one preset's.
    cfg = parse_config(CrossModalConfig, ["--config", str(best_path)])
    assert (cfg.model, cfg.learning_rate) == (best.model, 1e-12)
    assert tune_module.preset_of(cfg) in ("none", "report")
    # Running it again trains nothing new and reports the same trials.
    again = tune_module.main(argv)[2]
    assert [r["val_accuracy"] for r in again] == pytest.approx([r["val_accuracy"] for r in rows])


def test_presets_set_the_augmentation_fields():
    assert tune_module.preset_of(CrossModalConfig()) == "report_color"  # the app's defaults
    assert tune_module.preset_of(CrossModalConfig(augment=False)) == "none"
    assert tune_module.preset_of(CrossModalConfig(grayscale=0.2)) is None
    base = tune_module.train_config(tune_module.TuneConfig(augmentations=["report"], models=["frozen"],
                                                           learning_rates=[3e-4], run_dir="x"))
    assert (base.model, base.learning_rate, base.run_dir, tune_module.preset_of(base)) == ("frozen", 3e-4, None, "report")
