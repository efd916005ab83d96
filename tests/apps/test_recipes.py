"""The shared training recipes and trackers (issue 33 items 1-2) through real apps on tiny demo data.

Each option is a `TrainConfig` field every app inherits (`hybridvision.common.recipe`,
`hybridvision.common.tracking`); these runs use orientation_light (sparse categorical cross-entropy)
and attractiveness (binary cross-entropy: soft labels) with a few images of 16 pixels (TensorBoard's
Grad-CAM samples also through digit_pairs and a cross_modal domainbed cell). The whole
training runs are marked slow, like the apps' own; the refusals stop before training.
"""

import json

import keras
import numpy as np
import pytest

from hybridvision.apps.attractiveness import train as attractiveness
from hybridvision.apps.orientation_light import train as orientation
from hybridvision.common import recipe, tracking
from hybridvision.common.cli import UserError
from hybridvision.common.data.demo import generate
from hybridvision.common.history import read_history

CALLED = []


def make_recorder():
    """A `--callbacks` factory (tests.apps.test_recipes:make_recorder): records each epoch it sees."""

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            CALLED.append((epoch, float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))))

    return [Recorder()]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return generate("orientation", tmp_path_factory.mktemp("faces"), scale="tiny")


@pytest.fixture(scope="module")
def celeba(tmp_path_factory):
    return generate("celeba", tmp_path_factory.mktemp("celeba"), scale="tiny")


def _orientation(faces, run_dir, *flags):
    return orientation.main(["--data-dir", str(faces), "--image-size", "16", "--epochs", "2", "--batch-size", "4",
                             "--export-anyway", "--run-dir", str(run_dir), "--quiet", *flags])


def _attractiveness(celeba, run_dir, *flags):
    return attractiveness.main(["--data-dir", str(celeba), "--model", "baseline", "--covariates", "",
                                "--backbone", "small", "--weights", "none", "--image-size", "16", "--batch-size", "4",
                                "--epochs", "1", "--export-anyway", "--run-dir", str(run_dir), "--quiet", *flags])


def _optimizer_config(run_dir):
    return keras.models.load_model(run_dir / "best.keras").optimizer.get_config()


@pytest.mark.slow
def test_defaults_change_nothing(faces, tmp_path, monkeypatch):
    """No recipe flag: the app's optimizer as it built it (a constant rate, no EMA, decay or clipping)."""
    monkeypatch.chdir(tmp_path)
    _orientation(faces, tmp_path / "plain", "--epochs", "1")
    optimizer = _optimizer_config(tmp_path / "plain")
    assert isinstance(optimizer["learning_rate"], float) and optimizer["learning_rate"] == pytest.approx(0.005)
    assert not optimizer["use_ema"] and optimizer["weight_decay"] is None and optimizer["clipnorm"] is None
    assert "learning_rate" not in read_history(tmp_path / "plain" / "history.csv")[0]


@pytest.mark.slow
def test_cosine_warmup_ema_weight_decay_clipnorm_randaugment_callbacks_and_mlflow(faces, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    CALLED.clear()
    run_dir = tmp_path / "run"
    metrics = _orientation(faces, run_dir, "--lr-schedule", "cosine", "--warmup-epochs", "1", "--ema",
                           "--weight-decay", "0.01", "--clipnorm", "1", "--randaugment", "2",
                           "--callbacks", "tests.apps.test_recipes:make_recorder", "--tracker", "mlflow")
    optimizer = _optimizer_config(run_dir)
    assert optimizer["learning_rate"]["class_name"] == "CosineDecay"
    assert optimizer["learning_rate"]["config"]["warmup_target"] == pytest.approx(0.005)
    assert optimizer["use_ema"] and optimizer["weight_decay"] == pytest.approx(0.01)
    assert optimizer["clipnorm"] == pytest.approx(1.0)
    # The user's callback ran each epoch; the rate rose over the warm-up epoch, then decayed.
    assert [epoch for epoch, _ in CALLED] == [0, 1]
    assert CALLED[0][1] == pytest.approx(0.005, rel=1e-3) and CALLED[1][1] < 1e-3

    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.mlflow_uri(run_dir))
    (run,) = client.search_runs([client.get_experiment_by_name("orientation_light").experiment_id])
    assert run.data.params["lr_schedule"] == "cosine" and run.data.params["ema"] == "True"
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 2  # one per epoch
    assert "config.yaml" in [a.path for a in client.list_artifacts(run.info.run_id)]


def _fires(values, patience):
    """The epochs after which a rule "no strict improvement for `patience` epochs" fires (then counts anew)."""
    best, wait, fired = -np.inf, 0, []
    for epoch, value in enumerate(values):
        if value > best:
            best, wait = value, 0
            continue
        wait += 1
        if wait >= patience:
            fired.append(epoch)
            wait = 0
    return fired


@pytest.mark.slow
def test_plateau_and_early_stopping(faces, tmp_path, monkeypatch):
    """A rate too small to move the weights much: val_accuracy soon stops improving; the plateau schedule
    cuts the rate x0.1 after 2 epochs without improvement, early stopping ends the phase after 3."""
    monkeypatch.chdir(tmp_path)
    CALLED.clear()
    run_dir = tmp_path / "run"
    _orientation(faces, run_dir, "--lr-schedule", "plateau", "--early-stopping", "3", "--epochs", "5",
                 "--learning-rate", "1e-6", "--monitor", "val_accuracy",
                 "--callbacks", "tests.apps.test_recipes:make_recorder")
    values = [r["val_accuracy"] for r in read_history(run_dir / "history.csv")]
    stops = _fires(values + [-1.0] * (5 - len(values)), 3)
    assert len(values) == min(5, stops[0] + 1 if stops else 5)
    cuts = _fires(values, 2)
    expected = [1e-6 * 0.1 ** sum(cut <= epoch for cut in cuts) for epoch in range(len(values))]
    assert [rate for _, rate in CALLED] == pytest.approx(expected, rel=1e-4)
    best = json.loads((run_dir / "best.json").read_text())  # the best checkpoint stays the one kept
    assert best["epoch"] == int(np.argmax(values))


def test_step_schedule():
    step = recipe.schedule("step", 0.1, epochs=6, steps=10)
    rates = [float(step(i)) for i in (0, 19, 20, 39, 40)]
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


@pytest.mark.slow
def test_label_smoothing_mixup_and_cutmix_on_a_soft_label_loss(celeba, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    metrics = _attractiveness(celeba, run_dir, "--label-smoothing", "0.1", "--mixup", "0.2", "--cutmix", "1.0")
    assert np.isfinite(metrics["test"]["accuracy"])
    loss = keras.models.load_model(run_dir / "best.keras").loss
    assert isinstance(loss, keras.losses.BinaryCrossentropy) and loss.label_smoothing == pytest.approx(0.1)


@pytest.mark.parametrize("flag", ["--label-smoothing", "--mixup", "--cutmix"])
def test_soft_label_options_are_refused_in_one_line_for_a_sparse_loss(faces, tmp_path, monkeypatch, flag):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=f"^{flag}: this model's loss \\(sparse_categorical_crossentropy\\)") as info:
        _orientation(faces, tmp_path / "run", flag, "0.1")
    assert "\n" not in str(info.value)


def test_warmup_needs_a_schedule_that_takes_it(faces, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _orientation(faces, tmp_path / "run", "--lr-schedule", "step", "--warmup-epochs", "1")
    assert "--warmup-epochs 1 works with --lr-schedule constant or cosine" in capsys.readouterr().err


def test_bad_callbacks_are_one_line(faces, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="--callbacks nosuchmodule:f: cannot import nosuchmodule"):
        _orientation(faces, tmp_path / "run", "--callbacks", "nosuchmodule:f")


@pytest.mark.slow
def test_tensorboard_has_hparams_final_metrics_the_confusion_matrix_and_gradcam(faces, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import tensorflow as tf

    run_dir = tmp_path / "run"
    metrics = _orientation(faces, run_dir, "--epochs", "1", "--lr-schedule", "step")
    assert _optimizer_config(run_dir)["learning_rate"]["class_name"] == "ExponentialDecay"
    (events,) = (run_dir / "tensorboard" / "final").glob("events.out.tfevents.*")
    tags, scalars, images = set(), {}, {}
    for event in tf.compat.v1.train.summary_iterator(str(events)):
        for value in event.summary.value:
            tags.add(value.tag)
            plugin = value.metadata.plugin_data.plugin_name
            if plugin == "scalars":
                scalars[value.tag] = float(tf.make_ndarray(value.tensor))
            if plugin == "images":  # [width, height, PNG, PNG, ...]
                images[value.tag] = tf.make_ndarray(value.tensor)
    assert "_hparams_/session_start_info" in tags
    from tensorboard.plugins.hparams import plugin_data_pb2

    for event in tf.compat.v1.train.summary_iterator(str(events)):
        for value in event.summary.value:
            if value.tag == "_hparams_/session_start_info":
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                hparams = data.session_start_info.hparams
                assert hparams["lr_schedule"].string_value == "step"
                assert hparams["epochs"].number_value == 1
    assert scalars["final/test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert {"final/val_confusion_matrix", "final/test_confusion_matrix"} <= set(images)
    # Grad-CAM of the first 4 val images: each the image beside its heat map, titled true / predicted.
    gradcam = images["final/gradcam"]
    width, height = int(gradcam[0]), int(gradcam[1])
    assert len(gradcam) - 2 == 4 and width > 16 and height > 16
    for png in gradcam[2:]:
        assert tf.image.decode_png(png).shape[:2] == (height, width)


def _gradcam_samples(run_dir):
    """{events file: (samples, width, height)} of each `final/gradcam` image summary under `run_dir`."""
    import tensorflow as tf

    found = {}
    for events in sorted(run_dir.rglob("final/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                if value.tag == "final/gradcam":
                    tensor = tf.make_ndarray(value.tensor)
                    found[events.relative_to(run_dir).parts[0]] = (len(tensor) - 2, int(tensor[0]), int(tensor[1]))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("app", ["attractiveness", "digit_pairs", "cross_modal"])
def test_gradcam_samples_of_covariate_pair_and_domainbed_models(app, celeba, tmp_path, monkeypatch):
    """Raw covariates beside the image, a two-digit pair with a dict of outputs, a domainbed cell (no export)."""
    import importlib

    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    small = ["--backbone", "small", "--weights", "none", "--image-size", "16", "--epochs", "1", "--batch-size", "4"]
    flags = {
        "attractiveness": ["--data-dir", str(celeba), "--model", "hybrid", "--covariates", "Male,Smiling", *small,
                           "--export-anyway"],
        "digit_pairs": ["--data-dir", str(generate("mnist", tmp_path / "mnist", scale="tiny")), "--model", "aux",
                        "--pairs", "20", "--epochs", "1", "--export-anyway"],
        "cross_modal": ["--data-dir", str(generate("domains", tmp_path / "domains", scale="tiny")), "--protocol",
                        "domainbed", "--test-domains", "photo", "--model", "frozen", *small],
    }[app]
    importlib.import_module(f"hybridvision.apps.{app}.train").main([*flags, "--run-dir", str(run_dir), "--quiet"])
    found = _gradcam_samples(run_dir)
    assert set(found) == ({"photo_seed0"} if app == "cross_modal" else {"tensorboard"})
    ((samples, width, height),) = found.values()
    assert 1 <= samples <= 4 and width > 16 and height > 16


@pytest.mark.parametrize("tracker, extra", [("mlflow", "tracking"), ("wandb", "wandb")])
def test_a_tracker_that_is_not_installed_is_refused_before_the_run_starts(tmp_path, monkeypatch, tracker, extra):
    import importlib.util

    from hybridvision.common.config import TrainConfig

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == tracker else find_spec(name, *a))
    with pytest.raises(UserError, match=f"^--tracker {tracker}: {tracker} is not installed \\(pip install {tracker}, "
                                        f"or the hybridvision\\[{extra}\\] extra\\)") as info:
        tracking.check(TrainConfig(tracker=tracker, run_dir=str(tmp_path / "run")))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


def _wandb_records(path):
    """The records of an offline run's `run-<id>.wandb` file (wandb's LevelDB-style log of protobuf records:
    a 7-byte file header, then in 32 KiB blocks chunks of checksum, length, type (1 full, 2 first, 3 middle,
    4 last) and data)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, chunk = 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = chunk + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


@pytest.mark.slow
def test_wandb_logs_settings_epochs_final_metrics_and_the_exported_model_offline(faces, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    run_dir = tmp_path / "run"
    metrics = _orientation(faces, run_dir, "--lr-schedule", "cosine", "--tracker", "wandb")
    (log_file,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    records = list(_wandb_records(log_file))
    (run,) = [r.run for r in records if r.HasField("run")]
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert run.project == "hybridvision-orientation_light" and run.display_name == run_dir.name
    assert config["lr_schedule"] == "cosine" and config["epochs"] == 2
    history = [{i.nested_key[-1]: json.loads(i.value_json) for i in r.history.item} for r in records
               if r.HasField("history")]
    assert [h["epoch"] for h in history] == [0, 1]
    assert [h["loss"] for h in history] == pytest.approx([r["loss"] for r in read_history(run_dir / "history.csv")])
    summary = {u.key: json.loads(u.value_json) for r in records if r.HasField("summary") for u in r.summary.update}
    assert summary["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    (artifact,) = [r.artifact for r in records if r.HasField("artifact")]
    exported = metrics["notes"]["exported_model"]
    assert artifact.type == "model" and [c.path for c in artifact.manifest.contents] == [exported.split("/")[-1]]
    saved = {f.path for r in records if r.HasField("files") for f in r.files.files}
    assert "run/config.yaml" in saved and "run/curves.png" in saved


def test_wandb_is_offline_unless_the_user_chose_or_logged_in(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert tracking.wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.wandb_mode() is None  # the user's own WANDB_MODE rules
    monkeypatch.delenv("WANDB_MODE")
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert tracking.wandb_mode() is None  # logged in (wandb login): wandb's own default, online


def test_an_apps_own_warmup_is_kept_or_replaced_by_the_chosen_schedule():
    """digit_pairs builds its own warm-up (CosineDecay, alpha=1); --lr-schedule cosine replaces it, from its rate."""
    from hybridvision.apps.digit_pairs.config import DigitPairsConfig

    def compiled():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        own = keras.optimizers.schedules.CosineDecay(0.0, decay_steps=1, alpha=1.0, warmup_target=0.005,
                                                     warmup_steps=8)
        model.compile(keras.optimizers.Adam(own), "mse")
        return model

    kept = compiled()
    recipe.configure_optimizer(kept, DigitPairsConfig(), epochs=10, steps=4)
    assert kept.optimizer.learning_rate is not None and kept.optimizer._learning_rate.alpha == 1.0
    replaced = compiled()
    recipe.configure_optimizer(replaced, DigitPairsConfig(lr_schedule="cosine"), epochs=10, steps=4)
    cosine = replaced.optimizer._learning_rate
    assert (cosine.alpha, cosine.warmup_target, cosine.warmup_steps, cosine.decay_steps) == (0.0, 0.005, 8, 32)


def test_randaugment_mixup_and_cutmix_change_the_training_batches():
    """What Run.fit maps over an app's training batches: images changed, binary labels mixed into soft ones."""
    import tensorflow as tf

    from hybridvision.common.config import TrainConfig

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    labels = np.array([0, 1] * 4, "float32")
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    for flags in ({"randaugment": 2}, {"mixup": 0.4}, {"cutmix": 1.0}):
        (x, y), = recipe.augment(data, TrainConfig(**flags)).as_numpy_iterator()
        assert x.shape == images.shape and y.shape == labels.shape and not np.allclose(x, images)
        if "randaugment" in flags:
            np.testing.assert_array_equal(y, labels)
        else:
            assert ((y > 0) & (y < 1)).any() and ((y >= 0) & (y <= 1)).all()
    assert recipe.augment(data, TrainConfig()) is data


def _hparams_of(log_dir):
    """{name: value} of the trial hparams KerasTuner wrote (hparams_api.KerasCallback) in `log_dir`'s event files."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = {}
    for events in log_dir.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                if value.tag == "_hparams_/session_start_info":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    for name, hparam in data.session_start_info.hparams.items():
                        found[name] = hparam.WhichOneof("kind") and getattr(hparam, hparam.WhichOneof("kind"))
    return found


@pytest.mark.slow
def test_tune_with_a_log_range_writes_each_trial_with_its_hparams_to_tensorboard(faces, tmp_path, monkeypatch):
    """`--learning-rates 1e-4:1e-2:log` reaches KerasTuner as an hp.Float with log sampling; each trial's
    epochs and hyperparameters are in <run-dir>/<project>/tensorboard/<trial>/ (the hparams dashboard)."""
    from hybridvision.apps.orientation_light import tune

    monkeypatch.chdir(tmp_path)
    best, path = tune.main(["--data-dir", str(faces), "--image-size", "16", "--epochs", "1", "--tuner", "random",
                            "--max-trials", "2", "--batch-size", "4", "--batch-sizes", "4", "--optimizer", "adam",
                            "--optimizers", "adam",
                            "--learning-rates", "1e-4:1e-2:log", "--head-dropouts", "0.1:0.5",
                            "--conv-dropouts", "0.2", "--run-dir", str(tmp_path / "tune"), "--quiet"])
    project = path.parent
    oracle = json.loads((project / "oracle.json").read_text())
    space = {hp["config"]["name"]: hp for hp in oracle["hyperparameters"]["space"]}
    assert space["learning_rate"]["class_name"] == "Float"
    assert space["learning_rate"]["config"]["sampling"] == "log"
    assert (space["learning_rate"]["config"]["min_value"], space["learning_rate"]["config"]["max_value"]) == (1e-4, 1e-2)
    assert space["head_dropout"]["class_name"] == "Float" and space["head_dropout"]["config"]["sampling"] == "linear"
    assert space["batch_size"]["class_name"] == "Choice"
    assert 1e-4 <= best.learning_rate <= 1e-2 and 0.1 <= best.head_dropout <= 0.5

    trials = sorted(p.name for p in (project / "tensorboard").iterdir())
    assert len(trials) == 2
    for trial in trials:
        state = json.loads((project / f"trial_{trial}" / "trial.json").read_text())["hyperparameters"]["values"]
        logged = _hparams_of(project / "tensorboard" / trial)
        assert logged["learning_rate"] == pytest.approx(state["learning_rate"])
        assert logged["head_dropout"] == pytest.approx(state["head_dropout"])
        assert logged["optimizer"] == state["optimizer"] and logged["batch_size"] == state["batch_size"]
        assert list((project / "tensorboard" / trial / "execution0").glob("train/events.out.tfevents.*"))
