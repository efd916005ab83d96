"""cross_modal: every model kind trains a step, fine-tuning keeps BatchNorm frozen, the CLI runs end to end."""

import json

import keras
import numpy as np
import pytest

from hybridvision.apps.cross_modal import explain as explain_module
from hybridvision.apps.cross_modal import train as train_module
from hybridvision.apps.cross_modal.config import CrossModalConfig
from hybridvision.apps.cross_modal.data import make_images
from hybridvision.apps.cross_modal.models import build_model, compile_model, prepare_finetuning
from hybridvision.common.data.domains import read_domains

SMALL = {"backbone": "small", "weights": "none", "image_size": 16, "batch_size": 2, "augment": True, "cache": False}


@pytest.fixture(scope="module")
def tiny_domains(tmp_path_factory):
    from hybridvision.common.data.demo import generate

    return generate("domains", tmp_path_factory.mktemp("domains"), scale="tiny")


@pytest.mark.parametrize(
    "kind", ["frozen", "finetune", "scratch", pytest.param("per_modality", marks=pytest.mark.slow)]
)
def test_each_model_kind_trains_one_step(kind, tiny_domains):
    table = read_domains(tiny_domains)
    modalities, classes = table.attrs["modalities"], table.attrs["class_names"]
    cfg = CrossModalConfig(model=kind, **SMALL)
    model, _, head = build_model(cfg, len(classes), modalities)
    compile_model(model, cfg, 1e-2, len(classes))
    x, y = next(iter(make_images(cfg, table.iloc[:2], 2, True, modalities)))
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert any(changed)
    probs = np.asarray(model(x))
    assert probs.shape == (2, len(classes))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    if kind in ("frozen", "finetune"):
        # Only the head trains: the backbone is a fixed feature extractor.
        assert len(model.trainable_weights) == len(head.trainable_weights) == 4
    if kind == "per_modality":
        assert [i.shape[1:] for i in model.inputs] == [(16, 16, 3), (len(modalities),)]


def test_finetune_unfreezes_the_top_block_and_keeps_batchnorm_statistics(tiny_domains):
    table = read_domains(tiny_domains)
    cfg = CrossModalConfig(model="finetune", **SMALL)
    model, extractor, _ = build_model(cfg, 5)
    assert prepare_finetuning(extractor, cfg) == 1
    compile_model(model, cfg, 1e-2, 5)
    bns = [layer for layer in extractor._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    stats = [[w.numpy().copy() for w in bn.weights] for bn in bns]
    convs = {layer.name: layer for layer in extractor._flatten_layers() if isinstance(layer, keras.layers.Conv2D)}
    kernels = {name: conv.kernel.numpy().copy() for name, conv in convs.items()}
    x, y = next(iter(make_images(cfg, table.iloc[:2], 2, True, table.attrs["modalities"])))
    model.train_on_batch(x, y)
    for bn, before in zip(bns, stats):
        assert not bn.trainable
        for w, b in zip(bn.weights, before):
            np.testing.assert_array_equal(w.numpy(), b)
    assert not np.allclose(kernels["block4_conv"], convs["block4_conv"].kernel.numpy())
    for name in ("block1_conv", "block2_conv", "block3_conv"):
        np.testing.assert_array_equal(kernels[name], convs[name].kernel.numpy())


def test_help_lists_the_app_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--model", "--protocol", "--source", "--folds", "--split", "--backbone", "--rotation-range"):
        assert flag in text


def test_explain_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        explain_module.main(["--help"])
    assert exit_info.value.code == 0
    assert "--run-dir" in capsys.readouterr().out


def test_bad_source_is_a_one_line_error(tiny_domains, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="--source clipart"):
        train_module.main(["--data-dir", str(tiny_domains), "--protocol", "from_source", "--source", "clipart",
                           "--backbone", "small", "--weights", "none", "--run-dir", str(tmp_path / "r")])


@pytest.mark.slow
def test_from_source_end_to_end_writes_per_modality_metrics(tiny_domains, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metrics = train_module.main([
        "--data-dir", str(tiny_domains), "--protocol", "from_source", "--source", "photo", "--model", "frozen",
        "--backbone", "small", "--weights", "none", "--image-size", "16", "--epochs", "1", "--batch-size", "4",
        "--run-dir", str(tmp_path / "run"), "--quiet",
    ])
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    per = written["test"]["per_modality"]
    assert set(per) == {"photo", "cartoon", "sketch"}
    table = read_domains(tiny_domains)
    for modality, scores in per.items():
        assert 0.0 <= scores["accuracy"] <= 1.0
        # The source's test split; every image of the modalities it never saw.
        expected = 5 if modality == "photo" else int((table["modality"] == modality).sum())
        assert scores["images"] == expected, modality
    retrieval = written["retrieval"]["photo"]
    assert set(retrieval) == {"embedding", "backbone_features"}
    for by_query in retrieval.values():
        assert set(by_query) == {"photo", "cartoon", "sketch"}
        assert all(0.0 < v <= 1.0 for row in by_query.values() for v in row.values() if v is not None)
        assert by_query["photo"]["photo"] is None  # 5 test photos of 5 classes: no same-class pair
        assert by_query["sketch"]["photo"] is not None and by_query["sketch"]["sketch"] is not None
    assert "query \\ gallery" in (tmp_path / "run" / "retrieval_table.md").read_text()
    assert metrics["test"]["per_modality"] == per
    assert set(written["test"]["table"]) == {"photo"}
    assert (tmp_path / "run" / "modality_table.csv").read_text().startswith("trained_on,cartoon,photo,sketch,all")
    assert (tmp_path / "run" / "confusion_photo_sketch.png").exists()
    assert list((tmp_path / "feature_cache").glob("*.npy"))
    # The explanations CLI on the finished run: Grad-CAM, activations, filters as PNG grids.
    written = explain_module.main(["--run-dir", str(tmp_path / "run"), "--images", "2", "--quiet"])
    names = {p.name for p in written}
    assert {"gradcam_photo.png", "gradcam_sketch.png", "filters.png", "activations_block1_conv_cartoon.png"} <= names
    assert all(p.stat().st_size > 1000 for p in written)


@pytest.mark.slow
def test_leave_one_out_with_folds_reports_mean_and_std(tiny_domains, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_module.main([
        "--data-dir", str(tiny_domains), "--protocol", "leave_one_out", "--folds", "2", "--model", "frozen",
        "--backbone", "small", "--weights", "none", "--image-size", "16", "--epochs", "1", "--batch-size", "8",
        "--run-dir", str(tmp_path / "run"), "--quiet",
    ])
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert test["folds"] == 2
    assert set(test["table"]) == {"without_cartoon", "without_photo", "without_sketch"}
    for modality, scores in test["per_modality"].items():
        assert len(scores["accuracy_folds"]) == 2
        assert scores["accuracy"] == pytest.approx(np.mean(scores["accuracy_folds"]))
        assert scores["accuracy"] == pytest.approx(test["table"][f"without_{modality}"][modality])
    assert "±" in (tmp_path / "run" / "modality_table.md").read_text()
    assert "| **average** |" in (tmp_path / "run" / "leave_one_out_table.md").read_text()


def test_unseen_modalities_are_tested_on_every_image(tiny_domains):
    from hybridvision.apps.cross_modal.data import partitions, test_rows

    table = read_domains(tiny_domains)
    part = partitions(CrossModalConfig(**SMALL), table)[0]
    tested = test_rows(table, part["test"], ["photo"])
    photo_test = part["test"][part["test"]["modality"] == "photo"]
    assert sorted(tested[tested["modality"] == "photo"]["path"]) == sorted(photo_test["path"])
    for modality in ("cartoon", "sketch"):
        assert sorted(tested[tested["modality"] == modality]["path"]) == sorted(
            table[table["modality"] == modality]["path"])
    # Seen images never leak into the test rows.
    seen = set(part["train"]["path"]) | set(part["val"]["path"])
    assert not seen & set(tested[tested["modality"] == "photo"]["path"])


def test_leave_one_out_rotates_every_modality_out():
    from hybridvision.apps.cross_modal.data import experiments

    cfg = CrossModalConfig(protocol="leave_one_out", **SMALL)
    rows = experiments(cfg, ["art", "cartoon", "photo", "sketch"])
    assert [name for name, _ in rows] == ["without_art", "without_cartoon", "without_photo", "without_sketch"]
    for (name, train), held_out in zip(rows, ["art", "cartoon", "photo", "sketch"]):
        assert held_out not in train and len(train) == 3


def test_places_style_layout_with_205_classes_needs_no_per_class_code(tmp_path):
    from PIL import Image

    from hybridvision.apps.cross_modal.data import partitions

    classes = [f"scene_{i:03d}" for i in range(205)]
    pixels = np.zeros((8, 8, 3), "uint8")
    for modality in ("natural", "sketch"):
        for name in classes:
            folder = tmp_path / modality / name
            folder.mkdir(parents=True)
            for k in range(3):
                Image.fromarray(pixels + k).save(folder / f"{k}.png")
    table = read_domains(tmp_path)
    assert table.attrs["class_names"] == classes and len(table) == 2 * 205 * 3
    assert sorted(table["label"].unique()) == list(range(205))
    part = partitions(CrossModalConfig(**SMALL, split="34,33,33"), table)[0]
    assert set(part["train"]["label"]) == set(range(205))
    cfg = CrossModalConfig(model="frozen", **SMALL)
    model, _, _ = build_model(cfg, len(classes))
    assert model.output.shape == (None, 205)


def test_leave_one_out_table_is_one_row_per_held_out_domain_and_their_average():
    from hybridvision.apps.cross_modal.report import leave_one_out_markdown

    test = {"per_modality": {"art": {"accuracy": 0.5, "images": 10}, "sketch": {"accuracy": 0.8, "images": 12}}}
    # Each held-out domain's retrieval rows: its own queries against every gallery.
    retrieval = {
        "without_art": {"embedding": {"art": {"art": 0.4, "photo": 0.2, "sketch": 0.6}},
                        "backbone_features": {"art": {"art": 0.3, "photo": None, "sketch": 0.1}}},
        "without_sketch": {"embedding": {"sketch": {"sketch": 0.7, "art": 0.5, "photo": 0.3}},
                           "backbone_features": {"sketch": {"sketch": 0.9, "art": 0.2, "photo": 0.4}}},
    }
    lines = leave_one_out_markdown(test, retrieval, "caption").splitlines()
    assert lines[0] == "caption"
    assert lines[4] == "| art | 10 | 0.500 | 0.400 | 0.400 | 0.300 | 0.100 |"
    assert lines[5] == "| sketch | 12 | 0.800 | 0.700 | 0.400 | 0.900 | 0.300 |"
    assert lines[6] == "| **average** | | **0.650** | **0.550** | **0.400** | **0.600** | **0.200** |"
