"""Tests for the synthetic demo datasets (hybridvision.common.data.demo): formats, determinism, caching, learnability."""

import gzip
import hashlib
import struct
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import hybridvision.common.data.demo as demo_data
from hybridvision.common.data import names


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny")
    return {name: demo_data.generate(name, base / name, scale="tiny") for name in demo_data.NAMES}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Demo-scale data, generated lazily per dataset and shared by the module."""
    base = tmp_path_factory.mktemp("demo")
    return lambda name: demo_data.generate(name, base / name, scale="demo")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree_digests(root):
    return {str(p.relative_to(root)): _digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return magic, np.frombuffer(data[4 + 4 * ndim :], np.uint8).reshape(dims)


def _load_folder(root, split, classes, size=(16, 20)):
    x, y = [], []
    for label, cls in enumerate(classes):
        for f in sorted((root / split / cls).glob("*.jpg")):
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            x.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA).ravel() / 255.0)
            y.append(label)
    return np.array(x), np.array(y)


# --- formats -----------------------------------------------------------------


def test_celeba_official_layout(tiny):
    root = tiny["celeba"]
    attr_file = root / "list_attr_celeba.txt"
    attrs = pd.read_csv(attr_file, sep=r"\s+", skiprows=1)
    assert list(attrs.columns) == list(names.CELEBA_ATTRIBUTE_NAMES)
    assert len(attrs) == int(attr_file.read_text().splitlines()[0]) == 20
    assert set(np.unique(attrs.to_numpy())) <= {-1, 1}
    assert attrs.index[0] == "000001.jpg"
    # Female faces never get a beard: the attributes follow the drawing rules.
    female = attrs["Male"] == -1
    assert (attrs.loc[female, "No_Beard"] == 1).all()

    part = pd.read_csv(root / "list_eval_partition.txt", sep=r"\s+", header=None, index_col=0)
    assert list(part.index) == list(attrs.index)
    assert set(part[1]) == {0, 1, 2}

    marks = pd.read_csv(root / "list_landmarks_align_celeba.txt", sep=r"\s+", skiprows=1)
    assert list(marks.columns) == list(names.CELEBA_LANDMARKS)
    assert list(marks.index) == list(attrs.index)
    for fname, row in marks.iterrows():
        img = cv2.imread(str(root / "img_align_celeba" / fname))
        assert img.shape == (109, 89, 3)
        assert 0 <= row.min() and row[0::2].max() < 89 and row[1::2].max() < 109
        assert row.lefteye_x < row.righteye_x and row.leftmouth_x < row.rightmouth_x
        assert row.lefteye_y < row.nose_y < row.leftmouth_y


def test_celeba_landmarks_sit_on_the_drawn_eyes(demo):
    root = demo("celeba")
    marks = pd.read_csv(root / "list_landmarks_align_celeba.txt", sep=r"\s+", skiprows=1)
    dark = []
    for fname, row in marks.head(100).iterrows():
        gray = cv2.imread(str(root / "img_align_celeba" / fname), cv2.IMREAD_GRAYSCALE)
        for x, y in ((row.lefteye_x, row.lefteye_y), (row.righteye_x, row.righteye_y)):
            # The iris is dark, much darker than the face around it.
            dark.append(gray[y, x] < np.median(gray[y - 8 : y + 9, x - 8 : x + 9]) - 30)
    assert np.mean(dark) > 0.85


def test_face_class_folders(tiny):
    for name, classes in (
        ("orientation", names.ORIENTATION_CLASSES),
        ("light", names.LIGHT_CLASSES),
    ):
        for split in ("train", "val", "test"):
            for cls in classes:
                files = sorted((tiny[name] / split / cls).glob("*.jpg"))
                assert files, f"{name}/{split}/{cls} is empty"
                assert cv2.imread(str(files[0])).shape == (109, 89, 3)


def test_mnist_idx_files(tiny):
    root = tiny["mnist"]
    for prefix, count in (("train", 40), ("t10k", 20)):
        magic, images = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
        assert magic == 2051 and images.shape == (count, 28, 28)
        magic, labels = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
        assert magic == 2049 and labels.shape == (count,)
        assert labels.max() <= 9
        # Digits like MNIST's: black background, bright strokes, the border mostly empty.
        assert images.max() == 255 and images[:, :2, :].mean() < 5


def test_voc_tree(tiny):
    root = demo_data.demo_root("voc", tiny["voc"].parent, scale="tiny")
    assert root == tiny["voc"] / "VOC2012"
    main = root / "ImageSets" / "Main"
    train = main.joinpath("train.txt").read_text().split()
    val = main.joinpath("val.txt").read_text().split()
    assert train and val and not set(train) & set(val)
    assert sorted(train + val) == sorted(p.stem for p in (root / "JPEGImages").glob("*.jpg"))
    present = {}
    for image_id in train + val:
        ann = ET.parse(root / "Annotations" / f"{image_id}.xml").getroot()
        assert ann.findtext("filename") == f"{image_id}.jpg"
        w, h = int(ann.findtext("size/width")), int(ann.findtext("size/height"))
        assert cv2.imread(str(root / "JPEGImages" / f"{image_id}.jpg")).shape == (h, w, 3)
        objects = ann.findall("object")
        assert 1 <= len(objects) <= 3
        for obj in objects:
            assert obj.findtext("name") in names.VOC_CLASSES
            assert obj.findtext("difficult") == "0"
            box = [int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            assert 1 <= box[0] < box[2] <= w and 1 <= box[1] < box[3] <= h
        present[image_id] = {obj.findtext("name") for obj in objects}
    for cls in names.VOC_CLASSES:
        rows = pd.read_csv(main / f"{cls}_train.txt", sep=r"\s+", header=None, dtype={0: str})
        assert list(rows[0]) == train
        assert list(rows[1]) == [1 if cls in present[i] else -1 for i in train]


def test_domain_folders(tiny):
    for modality in demo_data.DOMAIN_MODALITIES:
        for cls in demo_data.DOMAIN_CLASSES:
            files = sorted((tiny["domains"] / modality / cls).glob("*.jpg"))
            assert len(files) == 3
            assert cv2.imread(str(files[0])).shape == (64, 64, 3)
    # Sketches are dark strokes on white; photos are not.
    sketch = cv2.imread(str(next((tiny["domains"] / "sketch" / "sun").glob("*.jpg"))), 0)
    photo = cv2.imread(str(next((tiny["domains"] / "photo" / "sun").glob("*.jpg"))), 0)
    assert np.median(sketch) > 230 and np.median(photo) < 230


def test_every_folder_says_it_is_synthetic(tiny):
    for path in tiny.values():
        assert "SYNTHETIC demo data" in (path / demo_data.README).read_text()


# --- determinism and caching -------------------------------------------------


def test_same_seed_same_bytes(tiny, tmp_path):
    for name in ("celeba", "mnist", "voc", "domains"):
        again = demo_data.generate(name, tmp_path / name, scale="tiny")
        assert _tree_digests(again) == _tree_digests(tiny[name]), name
    other = demo_data.generate("celeba", tmp_path / "other", scale="tiny", seed=1)
    img = "img_align_celeba/000001.jpg"
    assert _digest(other / img) != _digest(tiny["celeba"] / img)


def test_regenerates_only_when_needed(tmp_path):
    out = tmp_path / "orientation"
    demo_data.generate("orientation", out, scale="tiny")
    first = sorted(out.rglob("*.jpg"))[0]
    expected = _digest(first)

    extra = out / "keep.txt"
    extra.write_text("x")
    demo_data.generate("orientation", out, scale="tiny")
    assert extra.exists(), "an up-to-date folder was regenerated"

    # An interrupted generation leaves no stamp: the next call starts over.
    (out / demo_data.STAMP).unlink()
    first.unlink()
    demo_data.generate("orientation", out, scale="tiny")
    assert _digest(first) == expected and not extra.exists()
    assert demo_data.is_complete(out, "orientation", "tiny")

    # A stamp from another generator version is stale too.
    (out / demo_data.STAMP).write_text("hybridvision demo data: version=0\n")
    extra.write_text("x")
    demo_data.generate("orientation", out, scale="tiny")
    assert not extra.exists()


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    out = tmp_path / "celeba"
    out.mkdir()
    (out / "list_attr_celeba.txt").write_text("real data\n")
    with pytest.raises(ValueError, match="holds no demo data"):
        demo_data.generate("celeba", out, scale="tiny")
    assert (out / "list_attr_celeba.txt").read_text() == "real data\n"


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown demo dataset 'imagenet'"):
        demo_data.demo_dir("imagenet")
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        demo_data.generate("mnist", scale="huge")
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        demo_data.generate("mnist", scale="tiny", seed=-1)


def test_demo_dir_uses_env_var_and_cli_prints_paths(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(demo_data.ENV_VAR, str(tmp_path / "env"))
    path = demo_data.demo_dir("domains", scale="tiny")
    assert path == tmp_path / "env" / "domains"
    assert demo_data.is_complete(path, "domains", "tiny")

    assert demo_data.main(["--out", str(tmp_path / "cli"), "--scale", "tiny", "mnist"]) == 0
    assert capsys.readouterr().out.strip() == f"mnist: {tmp_path / 'cli' / 'mnist'}"


# --- learnability --------------------------------------------------------------


@pytest.mark.parametrize(
    "name, classes",
    [("orientation", names.ORIENTATION_CLASSES), ("light", names.LIGHT_CLASSES)],
)
def test_face_classes_are_learnable_from_pixels(demo, name, classes):
    root = demo(name)
    x_train, y_train = _load_folder(root, "train", classes)
    x_test, y_test = _load_folder(root, "test", classes)
    assert len(x_train) == 180 and len(x_test) == 45
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=1000))
    model.fit(x_train, y_train)
    assert model.score(x_test, y_test) > 0.8  # chance is 1/3


def test_mnist_digits_are_learnable(demo):
    root = demo("mnist")
    _, x_train = _read_idx(root / "train-images-idx3-ubyte.gz")
    _, y_train = _read_idx(root / "train-labels-idx1-ubyte.gz")
    _, x_test = _read_idx(root / "t10k-images-idx3-ubyte.gz")
    _, y_test = _read_idx(root / "t10k-labels-idx1-ubyte.gz")
    assert len(x_train) == 2000 and len(x_test) == 1000
    small = lambda x: x.reshape(-1, 14, 2, 14, 2).mean((2, 4)).reshape(len(x), -1) / 255.0  # noqa: E731
    # Nearest neighbours: fast, and the test digits come from unseen source digits.
    model = KNeighborsClassifier(3).fit(small(x_train), y_train)
    assert model.score(small(x_test), y_test) > 0.85  # chance is 0.1


def test_celeba_attractive_follows_the_documented_rule(demo):
    attrs = pd.read_csv(demo("celeba") / "list_attr_celeba.txt", sep=r"\s+", skiprows=1)
    covariates = ["Male", "Smiling", "Young", "High_Cheekbones"]
    x, y = (attrs[covariates] > 0).to_numpy(float), attrs["Attractive"].to_numpy() > 0
    model = LogisticRegression().fit(x, y)
    male, smiling, young, cheekbones = model.coef_[0]
    # logit = 3 e (1 - 2 Male) + 0.8 (Young - Male + Smiling + High_Cheekbones) - 0.8 (hybridvision.common.data.demo);
    # the eye-size term averages out of a covariates-only fit.
    assert male < 0 and smiling > 0.3 and young > 0.3 and cheekbones > 0.3
    assert 0.35 < y.mean() < 0.75
    # Smiling is visible: the mouth region alone predicts it.
    files = [demo("celeba") / "img_align_celeba" / f for f in attrs.index]
    mouths = np.array(
        [cv2.resize(cv2.imread(str(f), 0)[62:90, 20:70], (25, 14)).ravel() / 255.0 for f in files]
    )
    smile = attrs["Smiling"].to_numpy() > 0
    model = LogisticRegression(C=0.1, max_iter=1000).fit(mouths[:600], smile[:600])
    assert model.score(mouths[600:], smile[600:]) > 0.75
