"""A table of images and columns: what it reads, how it splits, and the one-line errors of bad tables."""

import numpy as np
import pytest
from PIL import Image

from hybridvision.common.cli import UserError
from hybridvision.common.data.image_table import read_image_table, split_table


def _table(tmp_path, rows, header="image,label,age,site", images=None):
    folder = tmp_path / "data"
    (folder / "img").mkdir(parents=True, exist_ok=True)
    for i in range(images if images is not None else len(rows)):
        Image.fromarray(np.full((8, 8, 3), i % 255, "uint8")).save(folder / "img" / f"{i}.png")
    path = folder / "labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _rows(n=20, classes=("a", "b")):
    return [f"img/{i}.png,{classes[i % len(classes)]},{20 + i},{'xy'[i % 2]}" for i in range(n)]


def test_reads_kinds_classes_and_keeps_text(tmp_path, string_storage):
    rows = _rows(20, ("2", "10", "1"))
    rows[3] = "img/3.png,1,,"  # missing age and site
    data = read_image_table(_table(tmp_path, rows), "label", ["age", "site"])
    assert data.class_names == ["1", "2", "10"]  # numbers in numeric order
    assert data.kinds == {"age": "numeric", "site": "categorical"}
    assert data.table["site"].iloc[3] == "" and data.table["path"].iloc[0].endswith("img/0.png")
    assert list(data.table["label"][:3]) == [1, 2, 0]
    tables, note = split_table(data, seed=0)
    assert sum(len(t) for t in tables.values()) == 20 and "stratified by label (seed 0)" in note
    assert not set(tables["train"]["path"]) & set(tables["test"]["path"])
    # Covariates default to every other column; a split column is respected as it is.
    rows = [r + f",{'train' if i < 12 else ('val' if i < 16 else 'test')}" for i, r in enumerate(_rows())]
    data = read_image_table(_table(tmp_path / "s", rows, header="image,label,age,site,split"), "label")
    assert data.covariates == ["age", "site"]
    tables, note = split_table(data)
    assert note is None and [len(tables[s]) for s in ("train", "val", "test")] == [12, 4, 4]


@pytest.mark.parametrize("header, rows, kwargs, message", [
    ("file,label,age,site", _rows(), {}, "has no 'image' column .*pass --image-column NAME"),
    ("image,label,age,site", _rows(), {"target": "grade"}, "--target grade is not a column"),
    ("image,label,age,site", [r.replace(",b,", ",a,") for r in _rows()], {}, "--target label has one class"),
    ("image,label,age,site", _rows(), {"covariates": ["label"]}, "--covariates holds the target label"),
    ("image,label,age,site", _rows(), {"covariates": ["weight"]}, "--covariates weight is not a column"),
    ("image,label,age,site", [*_rows(19), "img/19.png,a,old,x"], {},
     "covariate 'age' is numeric but holds 'old' at line 21; empty the cell .*--categorical age"),
    ("image,label,age,site", [*_rows(20), "img/0.png,b,3,x"], {}, "image 'img/0.png' is listed twice \\(line 2, line 22\\)"),
    ("image,label,age,site", [*_rows(18), "img/x.png,a,1,x", "img/y.png,b,1,y"], {},
     "2 of 20 images are missing or unreadable, e.g. img/x.png at line 20 \\(file not found\\).*--max-unreadable"),
    ("image,label,age,site,split", [r + ",training" for r in _rows()], {}, "holds 'training' at row 1; use train"),
])
def test_bad_tables_get_one_line(tmp_path, string_storage, header, rows, kwargs, message):
    path = _table(tmp_path, rows, header=header, images=20)
    kwargs = {"target": "label", **kwargs}
    with pytest.raises(UserError, match=message) as error:
        read_image_table(path, **kwargs)
    assert "\n" not in str(error.value)


def test_a_few_unreadable_images_are_left_out(tmp_path, caplog):
    rows = [*_rows(40)]
    rows[5] = "img/none.png,b,1,y"
    data = read_image_table(_table(tmp_path, rows, images=40), "label", max_unreadable=0.05)
    assert len(data.table) == 39 and "left out 1 of 40 images" in caplog.text
    with pytest.raises(UserError, match="no such file"):
        read_image_table(tmp_path / "nope.csv", "label")
