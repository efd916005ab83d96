"""attractiveness app: models, matched initialisation, CLI, seeds, sweep."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score

from hybridvision.apps.attractiveness import train, tune
from hybridvision.apps.attractiveness.config import AttractivenessConfig
from hybridvision.apps.attractiveness.data import make_datasets
from hybridvision.apps.attractiveness.floor import covariate_floor
from hybridvision.apps.attractiveness.models import (
    build_baseline,
    build_coded_model,
    build_late_fusion,
    build_model,
    compile_model,
    parse_positions,
)
from hybridvision.common.backbones import with_preprocessing
from hybridvision.common.covariate_coding import fit_coding
from hybridvision.common.data.demo import generate
from hybridvision.common.data.image_table import from_celeba
from hybridvision.common.transfer import hybridize

COVARIATES = ["Male", "Smiling"]


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    return generate("celeba", tmp_path_factory.mktemp("celeba"), scale="tiny")


@pytest.fixture(scope="module")
def train_only_root(tmp_path_factory, celeba_root):
    """The tiny CelebA with every image in the train partition, like the shared real sample."""
    import shutil

    root = tmp_path_factory.mktemp("celeba_train_only") / "celeba"
    shutil.copytree(celeba_root, root)
    lines = (root / "list_eval_partition.txt").read_text().split("\n")
    (root / "list_eval_partition.txt").write_text("\n".join(line.split()[0] + " 0" for line in lines if line) + "\n")
    return root


def _cfg(**kw):
    base = {"backbone": "small", "weights": "none", "image_size": 16, "batch_size": 4, "epochs": 1,
            "covariates": COVARIATES, "hybrid_positions": ["first", "last"], "quiet": True}
    return AttractivenessConfig(**{**base, **kw})


def _inputs(n=3, size=16, d=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, 3)).astype("float32"), rng.integers(0, 2, (n, d)).astype("float32")


def _hybrid_layers(model):
    return [layer for layer in model.layers if type(layer).__name__ == "HybridConv2D"]


def test_hybrid_and_late_fusion_equal_the_baseline_at_init():
    x, s = _inputs()
    outputs = {}
    for kind in ("baseline", "hybrid", "late_fusion"):
        keras.utils.set_random_seed(7)
        model = build_model(_cfg(model=kind), len(COVARIATES))
        outputs[kind] = np.asarray(model(x if kind == "baseline" else [x, s], training=False))
    assert np.std(outputs["baseline"]) > 0  # a real, input-dependent output
    np.testing.assert_allclose(outputs["hybrid"], outputs["baseline"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs["late_fusion"], outputs["baseline"], rtol=1e-5, atol=1e-6)
    keras.utils.set_random_seed(8)
    other = build_model(_cfg(model="baseline"), len(COVARIATES))
    assert not np.allclose(np.asarray(other(x, training=False)), outputs["baseline"])


def test_hybrid_positions_and_bad_values():
    keras.utils.set_random_seed(0)
    baseline = build_model(_cfg(model="baseline"), 2)
    keras.utils.set_random_seed(0)
    hybrid = build_model(_cfg(model="hybrid", hybrid_positions=["first", "3", "last"]), 2)
    # The small backbone's convs are block1..block4; the 1st, 3rd and last became hybrids with W0 = their kernel.
    hybrids = _hybrid_layers(hybrid)
    assert len(hybrids) == 3
    for layer, name in zip(hybrids, ["block1_conv", "block3_conv", "block4_conv"]):
        np.testing.assert_array_equal(np.array(layer.kernel), np.array(baseline.get_layer(name).kernel))
        assert layer.covariate_kernels.shape == (2, *baseline.get_layer(name).kernel.shape)
        assert not np.any(np.array(layer.covariate_kernels))
    assert parse_positions(["first", "3"]) == ["first", 3]
    assert parse_positions(["middle"]) == ["middle"]  # resolved against the network by resolve_positions
    with pytest.raises(ValueError, match="--hybrid-positions 'centre'"):
        parse_positions(["centre"])
    with pytest.raises(ValueError, match="needs at least one covariate"):
        build_model(_cfg(model="hybrid"), 0)


@pytest.mark.parametrize("kind", ["baseline", "hybrid", "late_fusion"])
def test_each_model_trains_one_step_on_tiny_celeba(celeba_root, kind):
    cfg = _cfg(model=kind)
    tables, _, table_data = from_celeba(celeba_root, "Attractive", COVARIATES)
    coding = None if kind == "baseline" else fit_coding(tables["train"], COVARIATES, table_data.kinds)
    data = make_datasets(cfg, tables, coding, 2, cfg.batch_size)
    batch = next(iter(data["train"]))
    keras.utils.set_random_seed(0)
    model = compile_model(build_coded_model(cfg, coding), cfg)
    before = [np.array(w) for w in model.trainable_weights]
    logs = model.fit(data["train"].take(1), epochs=1, shuffle=False, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and 0 <= logs["f1_macro"][0] <= 1
    changed = [not np.allclose(b, np.array(w)) for b, w in zip(before, model.trainable_weights)]
    assert sum(changed) >= len(changed) - 1  # every weight with a gradient moved
    if kind == "hybrid":
        # The covariate kernels W_l are real, trained parameters (the thesis code never trained them).
        for layer in _hybrid_layers(model):
            covariate_kernels = [w for w in layer.trainable_weights if "covariate" in w.path]
            assert covariate_kernels and all(np.abs(np.array(w)).max() > 0 for w in covariate_kernels)
    assert model.predict(batch[0], verbose=0).shape == (cfg.batch_size, 1)


def test_augment_moves_training_faces_but_not_val_or_test(celeba_root):
    tables, _, _ = from_celeba(celeba_root, "Attractive", [])
    plain = make_datasets(_cfg(model="baseline", flip=False), tables, None, 2, 4)
    augmented = make_datasets(_cfg(model="baseline", flip=False, augment=True, rotation_range=30.0), tables, None, 2, 4)
    first = {name: {split: next(iter(data[split]))[0].numpy() for split in data}
             for name, data in (("plain", plain), ("augmented", augmented))}
    assert not np.allclose(first["augmented"]["train"], first["plain"]["train"])
    for split in ("val", "test"):
        np.testing.assert_array_equal(first["augmented"][split], first["plain"][split])


@pytest.mark.slow
def test_vgg16_bn_models_train_one_step_and_match_at_init():
    cfg = _cfg(backbone="vgg16_bn", image_size=32, hybrid_positions=["last"])
    x, s = _inputs(n=2, size=32)
    y = np.array([[1.0], [0.0]], "float32")
    keras.utils.set_random_seed(3)
    baseline = build_baseline("vgg16_bn", cfg.image_size, cfg.weights, cfg.bn_momentum, cfg.head_dropout)
    # One VGG16-BN build (the costly part) shared by the three kinds, each behind the preprocessing
    # (caffe-style, a fixed 1x1 conv) that takes raw images, as build_model does it.
    models = {
        "baseline": baseline,
        "hybrid": hybridize(baseline, parse_positions(cfg.hybrid_positions), 2),
        "late_fusion": build_late_fusion(baseline, 2),
    }
    models = {kind: with_preprocessing(model, "vgg16_bn") for kind, model in models.items()}
    assert all(model.get_layer("preprocess").trainable is False for model in models.values())
    inputs = {kind: x if kind == "baseline" else [x, s] for kind in models}
    # All outputs before any training step: late fusion shares the baseline's layers.
    outputs = {kind: np.asarray(model(inputs[kind], training=False)) for kind, model in models.items()}
    for kind, model in models.items():
        history = compile_model(model, cfg).fit(inputs[kind], y, batch_size=2, epochs=1, verbose=0).history
        assert np.isfinite(history["loss"][0])
    np.testing.assert_allclose(outputs["hybrid"], outputs["baseline"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs["late_fusion"], outputs["baseline"], rtol=1e-5, atol=1e-6)


def test_cli_help_and_unknown_covariate(celeba_root, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0 and "--hybrid-positions" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown CelebA attribute.*Handsome.*valid names \\(40\\).*Young"):
        train.main(["--data-dir", str(celeba_root), "--covariates", "Male,Handsome", "--run-dir", str(tmp_path / "r")])


def test_learning_rate_default_follows_weights():
    assert AttractivenessConfig(weights="imagenet").learning_rate == 1e-4  # efficientnet_lite0
    assert AttractivenessConfig(backbone="vgg16_bn", weights="imagenet").learning_rate == 1e-5
    assert AttractivenessConfig(backbone="small").learning_rate == 1e-3  # weights default: none
    assert AttractivenessConfig(weights="none").learning_rate == 1e-3
    assert AttractivenessConfig(weights="none", learning_rate=0.01).learning_rate == 0.01


def test_covariate_floor_matches_a_rule(train_only_root):
    tables, _, table_data = from_celeba(train_only_root, "Attractive", ["Male", "Smiling"])
    tables["test"] = tables["train"]  # both classes present, so the ROC AUC is defined
    for split in tables.values():  # a target equal to a covariate: the floor must find it
        split["label"] = split["Male"].astype(int)
    floor = covariate_floor(tables, fit_coding(tables["train"], ["Male", "Smiling"], table_data.kinds))
    assert floor["test"]["accuracy"] == 1.0 and floor["test"]["roc_auc"] == 1.0
    assert floor["val"]["f1_macro"] == pytest.approx(
        f1_score(tables["val"]["label"], tables["val"]["Male"].astype(int), average="macro"))
    majority = covariate_floor(tables, None)  # no covariates: the train rows' majority class, AUC 0.5
    assert majority["test"]["roc_auc"] == 0.5


@pytest.mark.slow
def test_main_with_seeds_writes_summary_notes_and_resumes(train_only_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "runs" / "seeds"
    argv = ["--data-dir", str(train_only_root), "--model", "hybrid", "--backbone", "small", "--weights", "none",
            "--image-size", "16", "--batch-size", "4", "--epochs", "1", "--covariates", "Male,Smiling",
            "--seeds", "0,1", "--export-anyway", "--run-dir", str(run_dir), "--quiet"]
    metrics = train.main(argv)
    for seed in (0, 1):
        seed_metrics = json.loads((run_dir / f"seed{seed}" / "metrics.json").read_text())
        assert set(seed_metrics["test"]) >= {"accuracy", "f1_macro"}
        assert "train rows into train/val/test = 14/3/3" in seed_metrics["notes"]["fallback_split"]
        assert (run_dir / f"seed{seed}" / "best.keras").exists()
        # Each seed exported under the run's name: another multi-seed run does not overwrite it.
        assert seed_metrics["notes"]["exported_model"] == str(Path("saved_models/attractiveness") / f"seeds_seed{seed}.keras")
        assert (tmp_path / "saved_models" / "attractiveness" / f"seeds_seed{seed}.keras").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    accs = [r["test_accuracy"] for r in summary["runs"]]
    assert summary["seeds"] == [0, 1] and summary["mean"]["test_accuracy"] == pytest.approx(np.mean(accs))
    assert summary["std"]["test_accuracy"] == pytest.approx(np.std(accs, ddof=1))
    assert metrics["test"]["accuracy"] == pytest.approx(np.mean(accs)) and "fallback_split" in metrics["notes"]
    assert (run_dir / "summary.csv").read_text().splitlines()[0].startswith("seed,")
    # The same command again reuses the finished seeds (no retraining, same numbers).
    stamp = (run_dir / "seed0" / "model.keras").stat().st_mtime_ns
    assert train.main(argv)["test"] == metrics["test"]
    assert (run_dir / "seed0" / "model.keras").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_two_trial_sweep_writes_the_comparison_and_resumes(celeba_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "tune"
    argv = ["--data-dir", str(celeba_root), "--run-dir", str(out), "--models", "baseline,hybrid",
            "--backbone", "small", "--weights", "none", "--image-size", "16", "--epochs", "1",
            "--learning-rates", "0.001,0.01", "--batch-sizes", "4", "--position-sets", "first",
            "--covariate-sets", "Male", "--max-trials", "2", "--seeds", "0", "--quiet"]
    rows = tune.main(argv)
    assert [r["model"] for r in rows] == ["baseline", "hybrid", "covariates_only_logreg"]
    for kind in ("baseline", "hybrid"):
        trials = (out / "search" / kind / "trials.csv").read_text().splitlines()
        assert len(trials) == 3  # header + the 2 trials of the shared grid
        assert (out / "final" / kind / "seed0" / "metrics.json").exists()
    table = (out / "comparison.md").read_text()
    assert "| model |" in table and "test_accuracy" in table and "±" in table
    grid = (out / "grid.csv").read_text().splitlines()
    assert grid[0] == "learning_rate,batch_size,baseline,hybrid" and len(grid) == 3
    # Resuming: the finished search and seeds are reused, the table is the same.
    again = tune.main(argv)
    assert [r["test_accuracy_mean"] for r in again] == [r["test_accuracy_mean"] for r in rows]
    assert len((out / "search" / "hybrid" / "trials.csv").read_text().splitlines()) == 3


def test_fc4096_head_is_the_vgg16_bn_classifier():
    # The thesis's head: 7x7 adaptive average pooling -> flatten -> (FC 4096 -> dropout 0.5) x 2 -> the sigmoid unit.
    x, s = _inputs(n=2, size=16)
    for kind in ("baseline", "hybrid", "late_fusion"):
        model = build_model(_cfg(model=kind, head="fc4096", hybrid_positions=["last"]), 2)
        channels = model.get_layer("head_pool").input.shape[-1]
        sizes = {name: tuple(model.get_layer(name).output.shape[1:])
                 for name in ("head_pool", "head_flatten", "head_fc1", "head_fc2")}
        assert sizes == {"head_pool": (7, 7, channels), "head_flatten": (49 * channels,),
                         "head_fc1": (4096,), "head_fc2": (4096,)}
        assert [model.get_layer(f"head_fc{k}_dropout").rate for k in (1, 2)] == [0.5, 0.5]
        out = model(x if kind == "baseline" else [x, s], training=False)
        assert tuple(out.shape) == (2, 1)
    # The default head is still global pooling straight to the sigmoid unit.
    pooled = build_model(_cfg(model="baseline"), 2)
    assert pooled.get_layer("target").input.shape[1:] == (pooled.get_layer("head_dropout").input.shape[-1],)
    with pytest.raises(ValueError, match="--head 'fc'"):
        build_baseline("small", 16, head="fc")


def test_celeba_through_the_table_pipeline_gives_its_files_in_order(celeba_root):
    """CelebA is one reader of the shared table pipeline: each split's batches are its files, decoded and resized
    by the common decoder, with the attribute file's target (the training split: the same rows, shuffled)."""
    import tensorflow as tf

    from hybridvision.common.data.celeba import read_celeba
    from hybridvision.common.data.images import decode_image

    new, _, data = from_celeba(celeba_root, "Attractive", ["Male"])
    assert data.class_names == ["not_Attractive", "Attractive"]
    attributes = read_celeba(celeba_root).set_index("path")["Attractive"]
    datasets = make_datasets(_cfg(model="baseline", flip=False, seed=3), new, None, 2, 4)
    test = list(datasets["test"])
    images = np.concatenate([x.numpy() for x, _ in test])
    labels = np.concatenate([y.numpy()[:, 0] for _, y in test])
    expected = [tf.round(decode_image(tf.constant(p), (16, 16))).numpy() for p in new["test"]["path"]]
    np.testing.assert_array_equal(images, np.stack(expected))
    np.testing.assert_array_equal(labels, attributes[new["test"]["path"]].to_numpy())
    train = np.concatenate([y.numpy()[:, 0] for _, y in datasets["train"]])
    assert sorted(train) == sorted(attributes[new["train"]["path"]])


def test_covariate_lr_multiplier_default_per_model_and_as_given():
    """Late fusion's covariate rows learn 100x faster by default, the conditioned convolutions' kernels 1x."""
    import pandas as pd

    coding = fit_coding(pd.DataFrame({"age": ["30", "50", "70"]}, dtype=object), ["age"])

    def scale(**kw):
        model = build_coded_model(_cfg(covariates=["age"], **kw), coding)
        names = [layer.name for layer in model.layers]
        return model.get_layer("covariate_scale").scale if "covariate_scale" in names else 1.0

    assert scale(model="late_fusion") == 100.0
    assert scale(model="hybrid") == 1.0 and scale(model="film") == 1.0
    assert scale(model="late_fusion", covariate_lr_multiplier=1.0) == 1.0
    assert scale(model="hybrid", covariate_lr_multiplier=3.0) == 3.0
