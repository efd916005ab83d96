"""read_domains, split_domains, kfold_domains on a tiny drawn tree."""

import logging

import numpy as np
import pytest

from hybridvision.common.data.domains import kfold_domains, parse_split, read_domains, split_domains


def _tree(root, counts):
    """counts: {modality: {class: n}} -> tiny PNG files."""
    import cv2

    for modality, classes in counts.items():
        for name, n in classes.items():
            folder = root / modality / name
            folder.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{i}.png"), np.full((8, 8, 3), i * 10, np.uint8))
    return root


FULL = {m: {"car": 10, "house": 10, "tree": 10} for m in ("photo", "sketch")}


def test_reader_table_and_label_space(tmp_path):
    table = read_domains(_tree(tmp_path, FULL))
    assert list(table.columns) == ["path", "label", "class_name", "modality"]
    assert len(table) == 60
    assert table.attrs["class_names"] == ["car", "house", "tree"]
    assert table.attrs["modalities"] == ["photo", "sketch"]
    assert table.attrs["missing_classes"] == {}
    for name, label in zip(table["class_name"], table["label"]):
        assert table.attrs["class_names"][label] == name
    assert set(table.groupby("modality").size()) == {30}


def test_missing_class_is_reported_not_fatal(tmp_path, caplog):
    counts = {"photo": {"car": 4, "house": 4}, "sketch": {"car": 4}}
    with caplog.at_level(logging.WARNING, logger="hybridvision"):
        table = read_domains(_tree(tmp_path, counts))
    assert table.attrs["missing_classes"] == {"sketch": ["house"]}
    assert "sketch" in caplog.text and "house" in caplog.text
    # One label space over all modalities.
    assert sorted(table[table.modality == "sketch"]["label"].unique()) == [0]
    parts = split_domains(table, (0.5, 0.25, 0.25), seed=0)
    assert sum(len(p) for p in parts.values()) == 12


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_domains(tmp_path / "nope")
    _tree(tmp_path, {"photo": {"car": 1}})
    with pytest.raises(ValueError, match="modality folder"):
        read_domains(tmp_path, modalities=["clipart"])


def test_split_is_stratified_seeded_and_disjoint(tmp_path):
    table = read_domains(_tree(tmp_path, FULL))
    parts = split_domains(table, "70,20,10", seed=3)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [42, 12, 6]
    for name, part in parts.items():
        sizes = part.groupby(["modality", "label"]).size()
        assert len(sizes) == 6 and sizes.nunique() == 1, name
    paths = [set(p["path"]) for p in parts.values()]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    again = split_domains(table, (0.7, 0.2, 0.1), seed=3)
    assert list(again["test"]["path"]) == list(parts["test"]["path"])
    other = split_domains(table, (0.7, 0.2, 0.1), seed=4)
    assert list(other["test"]["path"]) != list(parts["test"]["path"])


def test_tiny_groups_still_reach_every_part(tmp_path):
    table = read_domains(_tree(tmp_path, {"photo": {"car": 3, "tree": 3}}))
    parts = split_domains(table, (0.7, 0.2, 0.1))
    for part in parts.values():
        assert sorted(part["label"].unique()) == [0, 1]


def test_parse_split_rejects_bad_shares():
    assert parse_split("70,20,10") == pytest.approx((0.7, 0.2, 0.1))
    assert parse_split("0.8,0.1,0.1") == pytest.approx((0.8, 0.1, 0.1))
    for bad in ("70,20", "70,20,20", "a,b,c", "0,50,50"):
        with pytest.raises(ValueError, match="--split"):
            parse_split(bad)


def test_kfold_covers_every_row_once_and_is_stratified(tmp_path):
    table = read_domains(_tree(tmp_path, FULL))
    folds = kfold_domains(table, 5, seed=0)
    assert len(folds) == 5
    tests = [set(test["path"]) for _, test in folds]
    assert set().union(*tests) == set(table["path"])
    assert sum(len(t) for t in tests) == len(table)
    for rest, test in folds:
        assert len(test) == 12 and len(rest) == 48
        assert not set(rest["path"]) & set(test["path"])
        assert set(test.groupby(["modality", "label"]).size()) == {2}
    with pytest.raises(ValueError, match="--folds"):
        kfold_domains(table, 1)
