"""CLI, config, the switch between heads, and a 2-point sweep that resumes, on tiny generated VOC."""

import csv
import json

import pytest

from hybridvision.apps.patch_training import DEMO_ARGS, train
from hybridvision.apps.patch_training import sweep as sweep_module
from hybridvision.apps.patch_training.config import PatchTrainingConfig
from hybridvision.common.config import parse_config
from hybridvision.common.data.demo import generate

TINY = ["--backbone", "small", "--image-size", "32", "--min-patch", "32", "--batch-size", "4", "--patch-hidden", "16", "--quiet"]


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    return generate("voc", tmp_path_factory.mktemp("voc"), scale="tiny") / "VOC2012"


@pytest.mark.parametrize("module", [train, sweep_module])
def test_help(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--switch-epoch" in text and "--min-patch" in text and "--patch-pooling" in text
    assert "--patch-shape" in text and "--patch-bucket" in text
    if module is sweep_module:
        assert "--switch-epochs" in text and "--out" in text


def test_resolve_fills_defaults_and_checks_the_switch_epoch():
    cfg = PatchTrainingConfig()
    assert (cfg.backbone, cfg.weights, cfg.learning_rate, cfg.optimizer, cfg.momentum) == ("efficientnet_lite0", "imagenet", 1e-2, "sgd", 0.9)
    assert (cfg.switch_epoch, cfg.epochs, cfg.batch_size, cfg.min_patch) == (5, 10, 16, 64)
    assert (cfg.patch_shape, cfg.patch_bucket) == ("square", 32)  # today's fixed resize stays the default
    assert cfg.patch_lr_factor == 0.1  # the patch head's gradients would wreck the pretrained features
    small = PatchTrainingConfig(backbone="small")
    assert (small.weights, small.learning_rate, small.patch_lr_factor) == ("none", 1e-2, 1.0)
    with pytest.raises(ValueError, match="--switch-epoch 11"):
        PatchTrainingConfig(switch_epoch=11)
    demo = parse_config(PatchTrainingConfig, DEMO_ARGS)
    assert demo.backbone == "small" and 0 < demo.switch_epoch < demo.epochs


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_curriculum_switches_heads_and_writes_metrics(tiny_voc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    learning_rates = []

    def compile_models(full, patch, *args, **kwargs):
        compiled = real_compile(full, patch, *args, **kwargs)
        learning_rates.extend(float(m.optimizer.learning_rate) for m in compiled)
        return compiled

    real_compile = train.compile_models
    monkeypatch.setattr(train, "compile_models", compile_models)
    metrics = train.main(
        ["--data-dir", str(tiny_voc), "--epochs", "3", "--switch-epoch", "1", "--run-dir", str(run_dir),
         "--learning-rate", "0.02", "--patch-lr-factor", "0.25", *TINY]
    )
    assert learning_rates == pytest.approx([0.02, 0.005])  # full model, patch model
    # One epoch through the patch head, then two through the multi-label head.
    assert len(_rows(run_dir / "history_patches.csv")) == 1
    full_rows = _rows(run_dir / "history_full.csv")
    assert len(full_rows) == 2 and "val_pr_auc" in full_rows[0]
    saved = json.loads((run_dir / "metrics.json").read_text())
    val = saved["val"]
    assert val["images"] == 3 and val["tp"] + val["fp"] + val["fn"] + val["tn"] == 3 * 20
    assert 0 <= val["map"] <= 1 and set(saved["phase_seconds"]) == {"patches", "full"}
    assert saved["notes"]["patches"]["min_size"] == 32 and saved["notes"]["patches"]["train"] > 0
    assert metrics["train_seconds"] == pytest.approx(sum(saved["phase_seconds"].values()))
    assert (tmp_path / ".cache" / "voc_patches").is_dir()  # PatchSet crops cached once


@pytest.mark.slow
def test_two_point_sweep_writes_figures_and_resumes(tiny_voc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    argv = ["--data-dir", str(tiny_voc), "--epochs", "2", "--switch-epochs", "0,1", "--out", str(out), *TINY]
    rows = sweep_module.main(argv)
    assert [r["switch_epoch"] for r in rows] == [0, 1]
    table = _rows(out / "sweep.csv")
    assert {"switch_epoch", "precision", "recall", "map", "train_seconds", "tp", "fp", "fn", "tn"} <= set(table[0])
    assert [int(r["switch_epoch"]) for r in table] == [0, 1]
    assert float(table[1]["patch_seconds"]) > 0 and float(table[0]["patch_seconds"]) == 0
    assert not (out / "K0" / "history_patches.csv").exists()  # K = 0 is the baseline: no patch phase
    assert len(_rows(out / "K1" / "history_patches.csv")) == 1 and len(_rows(out / "K1" / "history_full.csv")) == 1
    assert "| K |" in (out / "sweep.md").read_text()
    per_class = (out / "sweep_per_class_ap.md").read_text()
    assert "| class | chance AP | K=0 | K=1 |" in per_class and "| **mAP** |" in per_class
    for name in ("precision_recall", "confusion", "map", "time"):
        assert (out / f"sweep_{name}.png").stat().st_size > 0
    # Each K exports its own model instead of overwriting one name.
    assert {p.name for p in (tmp_path / "saved_models" / "patch_training").iterdir()} == {
        "sweep_K0.keras", "sweep_K1.keras", "latest.keras"}

    # Interrupted after K1's training but before its metrics: the rerun keeps
    # K0, does not train K1 again, and rewrites the same table.
    k0_stamp = (out / "K0" / "metrics.json").stat().st_mtime_ns
    (out / "K1" / "metrics.json").unlink()
    again = sweep_module.main(argv)
    assert (out / "K0" / "metrics.json").stat().st_mtime_ns == k0_stamp
    assert len(_rows(out / "K1" / "history_full.csv")) == 1
    assert [r["map"] for r in again] == pytest.approx([r["map"] for r in rows], abs=1e-6)
    with pytest.raises(ValueError, match="other settings.*--out"):
        sweep_module.main([*argv, "--learning-rate", "0.5"])


def test_full_epochs_gives_every_switch_epoch_the_same_whole_image_epochs(tmp_path):
    argv = ["--switch-epochs", "0,3", "--epochs", "2", "--out", str(tmp_path)]
    same_full = parse_config(sweep_module.SweepConfig, [*argv, "--full-epochs", "4"])
    runs = [sweep_module._run_config(same_full, k, tmp_path) for k in (0, 3)]
    assert [(r.switch_epoch, r.epochs, r.epochs - r.switch_epoch) for r in runs] == [(0, 4, 4), (3, 7, 4)]
    fixed = parse_config(sweep_module.SweepConfig, ["--epochs", "5", "--out", str(tmp_path)])
    assert [sweep_module._run_config(fixed, k, tmp_path).epochs for k in (0, 3)] == [5, 5]  # the report's fixed budget
    with pytest.raises(ValueError, match=r"--switch-epochs \[3\] outside"):
        sweep_module.sweep(parse_config(sweep_module.SweepConfig, argv))  # K=3 > --epochs 2 without --full-epochs
