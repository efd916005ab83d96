"""Patches at their own size: the size bounds, the bucketed batches, SPP on two shapes, the keep-shape run and the tuner."""

import json

import numpy as np
import pandas as pd
import pytest

from hybridvision.apps.patch_training import train
from hybridvision.apps.patch_training import tune as tune_module
from hybridvision.apps.patch_training.models import build_models, compile_models
from hybridvision.common.data.demo import generate
from hybridvision.common.data.voc import bucketed_patch_dataset, cache_patches, patch_sizes, patch_table, read_voc

TINY = ["--backbone", "small", "--image-size", "32", "--min-patch", "32", "--batch-size", "4", "--patch-hidden", "16", "--quiet"]


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    return generate("voc", tmp_path_factory.mktemp("voc"), scale="tiny") / "VOC2012"


def _boxes(sizes):
    """A box table with (height, width) boxes starting at pixel 1."""
    return pd.DataFrame([{"xmin": 1, "ymin": 1, "xmax": w, "ymax": h} for h, w in sizes])


def test_patch_sizes_keep_the_aspect_within_the_bounds():
    boxes = _boxes([(64, 64), (100, 50), (320, 160), (50, 640), (640, 640), (20, 20), (47, 47)])
    heights, widths = patch_sizes(boxes, max_side=160, step=32)
    assert list(zip(heights, widths)) == [
        (64, 64),  # kept as it is (a multiple of 32)
        (96, 64),  # 100x50 is never enlarged: sides rounded to the 32 grid (2:1 -> 1.5:1)
        (160, 96),  # 320x160 halved to 160x80, 80 rounds to 96 (nearest multiple, ties up)
        (32, 160),  # 640 wide scaled to 160; 12.5 px high raised to one step: aspect capped at 160/32
        (160, 160),  # the longest side never exceeds --image-size
        (32, 32),  # never below one step
        (32, 32),
    ]
    # A --image-size that is no multiple of the step caps at the multiple below.
    heights, widths = patch_sizes(_boxes([(600, 300)]), max_side=150, step=32)
    assert (heights[0], widths[0]) == (128, 64)
    with pytest.raises(ValueError, match="positive"):
        patch_sizes(boxes, max_side=160, step=0)


def test_buckets_hold_one_shape_and_every_patch_once(tiny_voc, tmp_path):
    _, boxes = read_voc(tiny_voc, "train")
    patches = cache_patches(patch_table(boxes, 16), tmp_path / "cache")
    heights, widths = patch_sizes(patches, 64, 16)
    assert len(set(zip(heights, widths))) > 1, "the tiny data should give several size buckets"
    dataset = bucketed_patch_dataset(patches, 64, 3, step=16, shuffle=True, seed=1, augment=True)
    batches = [(np.asarray(x), np.asarray(y)) for x, y in dataset]
    assert len(batches) == int(dataset.cardinality())  # the declared length is the real one
    assert all(x.shape[0] == len(y) <= 3 for x, y in batches)
    seen = sorted(x.shape[1:3] for x, _ in batches for _ in range(len(x)))
    assert seen == sorted(zip(heights, widths)), "each patch once, at its own bucket's size"
    assert sorted(np.concatenate([y for _, y in batches])) == sorted(patches["label"])
    second = [np.asarray(y) for _, y in dataset]  # reshuffled each epoch
    assert sorted(np.concatenate(second)) == sorted(patches["label"])


def test_spp_gives_fixed_length_vectors_and_trains_on_two_shapes():
    full, patch = build_models("small", 32, "none", "spp", patch_hidden=8, dropout=0.0, patch_shape="keep")
    compile_models(full, patch, np.full(20, 3.0), learning_rate=0.05)
    assert patch.input_shape == (None, None, None, 3) and full.input_shape == (None, 32, 32, 3)
    pooled = patch.get_layer("patch_flatten").output.shape[-1]
    assert pooled == 21 * 128  # 1 + 4 + 16 cells x the small backbone's 128 channels, for any patch size
    import keras

    features = keras.Model(patch.input, patch.get_layer("patch_flatten").output)
    rng = np.random.default_rng(0)
    tall, wide = rng.uniform(0, 1, (2, 64, 32, 3)), rng.uniform(0, 1, (3, 32, 96, 3))
    assert features(tall.astype("float32")).shape == (2, pooled)
    assert features(wide.astype("float32")).shape == (3, pooled)
    before = [np.array(v) for v in patch.trainable_variables]
    for x, y in ((tall, [1, 2]), (wide, [3, 4, 5])):
        loss = patch.train_on_batch(x.astype("float32"), np.array(y))[0]
        assert np.isfinite(loss)
    assert all(not np.allclose(np.array(v), b) for v, b in zip(patch.trainable_variables, before))
    assert full(rng.uniform(0, 1, (1, 32, 32, 3)).astype("float32")).shape == (1, 20)


@pytest.mark.slow
def test_keep_shape_run_writes_per_class_report_and_speed(tiny_voc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    argv = ["--data-dir", str(tiny_voc), "--epochs", "2", "--switch-epoch", "1", "--run-dir", str(run_dir), *TINY]
    train.main([*argv, "--patch-shape", "keep", "--patch-pooling", "spp", "--image-size", "64", "--patch-bucket", "16"])
    saved = json.loads((run_dir / "metrics.json").read_text())
    val = saved["val"]
    assert 0 <= val["chance_map"] <= 1 and 0 <= val["map"] <= 1  # chance_map beside the val mAP
    assert set(val["per_class_precision"]) == set(val["per_class_positives"]) and len(val["per_class_positives"]) == 20
    assert set(val["per_class_recall"]) == set(val["per_class_ap"]) == set(val["per_class_chance_ap"])
    note = saved["notes"]["patches"]
    assert note["shape"] == "keep" and note["buckets"] > 1 and note["mean_pixels"] < 64 * 64
    phase = saved["patch_phase"]
    assert phase["shape"] == "keep" and phase["patches_per_second"] > 0 and 0 <= phase["val_accuracy"] <= 1
    table = (run_dir / "per_class.md").read_text()
    assert "| class | val positives | AP | chance AP | precision | recall |" in table and "| person |" in table
    assert (run_dir / "per_class.png").stat().st_size > 0


@pytest.mark.slow
def test_tuner_runs_the_ablation_grid_and_resumes(tiny_voc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [
        "--data-dir", str(tiny_voc), "--epochs", "2", "--switch-epoch", "1", "--run-dir", str(tmp_path / "tune"),
        "--learning-rates", "0.01,0.001", "--batch-sizes", "4", "--patch-shape", "keep", *TINY,
    ]  # fmt: skip
    best, best_path, rows = tune_module.main(argv)
    assert sorted(r["learning_rate"] for r in rows) == [0.001, 0.01] and {r["batch_size"] for r in rows} == {4}
    assert all(r["train_seconds"] > 0 and r["patch_seconds"] > 0 and 0 <= r["val_map"] <= 1 for r in rows)
    assert best.learning_rate in (0.01, 0.001) and best.patch_shape == "keep" and best_path.exists()
    out = tmp_path / "tune" / "ablation"
    assert "| learning rate | batch | val mAP |" in (out / "ablation.md").read_text()
    assert (out / "trials.csv").exists() and len((out / "ablation.csv").read_text().splitlines()) == 3
    # The saved best config is a plain train config.
    cfg = train.parse_config(train.PatchTrainingConfig, ["--config", str(best_path)])
    assert (cfg.learning_rate, cfg.batch_size) == (best.learning_rate, best.batch_size)
    # Running it again trains nothing new and reports the same trials.
    again = tune_module.main(argv)[2]
    assert [r["val_map"] for r in again] == pytest.approx([r["val_map"] for r in rows])
