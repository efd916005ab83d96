import os
import random

import numpy as np
import pandas as pd
import pytest

from hybridvision.data_prep import split


@pytest.fixture(autouse=True)
def _seed_everything():
    # Overrides the suite's fixture: data_prep needs no Keras session to seed or clear.
    random.seed(1337)
    np.random.seed(1337)
    yield


def make_class_folders(root, counts):
    """Tiny stand-in image files (the splitter never decodes them) in class folders."""
    for label, count in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / label / f"{label}_{i:03d}.png").write_bytes(f"{label}{i}".encode())
    return root


def files_in(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())


def test_split_counts_add_up_by_largest_remainder():
    assert split.split_counts(20, (0.7, 0.15, 0.15)) == (14, 3, 3)
    assert split.split_counts(10, (0.7, 0.15, 0.15)) == (7, 2, 1)
    assert split.split_counts(2, (0.7, 0.15, 0.15)) == (2, 0, 0)
    for n in range(60):
        assert sum(split.split_counts(n, (0.6, 0.25, 0.15))) == n


def test_parse_fractions():
    assert split.parse_fractions("70,15,15") == pytest.approx((0.7, 0.15, 0.15))
    assert split.parse_fractions("0.8,0.1,0.1") == pytest.approx((0.8, 0.1, 0.1))
    with pytest.raises(ValueError, match="add up to 100"):
        split.parse_fractions("70,20,20")
    with pytest.raises(ValueError, match="three"):
        split.parse_fractions("70,30")


def test_folders_split_is_stratified_seeded_and_complete(tmp_path, capsys):
    source = make_class_folders(tmp_path / "labelled", {"left": 20, "center": 10, "right": 7})
    out = tmp_path / "dataset"
    assert split.main([str(source), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train" in printed and "total" in printed
    expected = {"left": (14, 3, 3), "center": (7, 2, 1), "right": (5, 1, 1)}
    for label, counts in expected.items():
        for name, count in zip(split.SPLITS, counts):
            assert len(list((out / name / label).glob("*.png"))) == count
    manifest = pd.read_csv(out / "split.csv")
    assert len(manifest) == 37 and manifest["source"].is_unique
    assert sorted(manifest["source"]) == files_in(source)
    # Contents travel with their names.
    for row in manifest.itertuples():
        assert (out / row.file).read_bytes() == (source / row.source).read_bytes()

    # Same seed, same split; another seed, another one.
    again = tmp_path / "again"
    split.make_split(source, again)
    assert files_in(again) == files_in(out)
    other = tmp_path / "other"
    split.make_split(source, other, seed=7)
    assert files_in(other) != files_in(out)
    assert len(files_in(other)) == len(files_in(out))


def test_csv_source_and_link_modes(tmp_path):
    images = tmp_path / "faces"
    images.mkdir()
    rows = []
    for i in range(6):
        name = f"sub{i % 2}/img{i}.png" if i < 4 else f"img{i}.png"
        (images / name).parent.mkdir(exist_ok=True)
        (images / name).write_bytes(bytes([i]))
        rows.append((name, "a" if i % 2 else "b"))
    # Two files with the same base name in different folders keep distinct names.
    (images / "sub0" / "img5.png").write_bytes(b"dup")
    rows.append(("sub0/img5.png", "a"))
    csv = tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["file", "label"]).to_csv(csv, index=False)

    for mode in ("symlink", "hardlink"):
        out = tmp_path / mode
        counts = split.make_split(csv, out, (1.0, 0.0, 0.0), mode=mode, images=images)
        assert counts.loc["total", "train"] == 7 and counts.loc["a", "total"] == 4
        placed = sorted((out / "train" / "a").iterdir())
        assert [p.name for p in placed] == ["img1.png", "img3.png", "img5.png", "sub0__img5.png"]
        for path in placed:
            if mode == "symlink":
                assert path.is_symlink() and os.path.isabs(os.readlink(path))
            else:
                assert not path.is_symlink() and path.stat().st_nlink == 2
        assert (out / "train" / "a" / "sub0__img5.png").read_bytes() == b"dup"


def test_refuses_non_empty_target_unless_overwrite(tmp_path):
    source = make_class_folders(tmp_path / "labelled", {"x": 4, "y": 4})
    out = tmp_path / "dataset"
    (out / "train" / "stale").mkdir(parents=True)
    (out / "train" / "stale" / "old.png").write_bytes(b"old")
    (out / "keep.txt").write_text("user file")
    with pytest.raises(ValueError, match="--overwrite"):
        split.make_split(source, out)
    split.make_split(source, out, overwrite=True)
    assert not (out / "train" / "stale").exists()
    assert (out / "keep.txt").read_text() == "user file"
    with pytest.raises(ValueError, match="must not contain each other"):
        split.make_split(source, source / "x", overwrite=True)


def test_bad_inputs_name_the_fix(tmp_path):
    csv = tmp_path / "l.csv"
    pd.DataFrame({"path": ["a.png"], "label": ["x"]}).to_csv(csv, index=False)
    with pytest.raises(ValueError, match="--images"):
        split.make_split(csv, tmp_path / "o")
    with pytest.raises(ValueError, match="no column 'file'"):
        split.make_split(csv, tmp_path / "o", images=tmp_path)
    pd.DataFrame({"file": ["missing.png"], "label": ["x"]}).to_csv(csv, index=False)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        split.make_split(csv, tmp_path / "o", images=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="class folders"):
        split.make_split(tmp_path / "empty", tmp_path / "o")
    with pytest.raises(SystemExit) as exit_info:
        split.main(["--help"])
    assert exit_info.value.code == 0
