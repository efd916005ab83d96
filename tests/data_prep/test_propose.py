import importlib.machinery
import importlib.util
import random
import sys
import types

import cv2
import numpy as np
import pandas as pd
import pytest

from hybridvision.data_prep import agreement, propose


@pytest.fixture(autouse=True)
def _seed_everything():
    # Overrides the suite's fixture: data_prep needs no Keras session to seed or clear.
    random.seed(1337)
    np.random.seed(1337)
    yield


SKIN = (90, 110, 150)  # BGR; V = 150, below the default threshold 170


def draw_face(path=None, width=64, height=80, light=None, turn="center"):
    """A drawn aligned 'face': skin ellipse, eyes at fixed places; writes it when `path` is given.

    light: "left"/"right" brightens that half of the image (above V 170), None leaves it dim.
    turn: the nose's side; the face's skin mass is shifted the other way, as on real turned faces.
    """
    image = np.full((height, width, 3), 40, np.uint8)
    shift = {"left": 0.1, "center": 0.0, "right": -0.1}[turn] * width
    centre = (round(width / 2 + shift), round(0.58 * height))
    cv2.ellipse(image, centre, (int(0.28 * width), int(0.32 * height)), 0, 0, 360, SKIN, -1)
    for x in (0.38, 0.62):
        cv2.circle(
            image, (int(x * width), int(0.5 * height)), max(1, width // 20), (30, 30, 30), -1
        )
    if light is not None:
        half = slice(0, width // 2) if light == "left" else slice(width // 2, width)
        image[:, half] = np.clip(image[:, half].astype(int) * 3 // 2, 0, 255).astype(np.uint8)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)
    return image


def write_landmarks(path, rows):
    """The official CelebA landmark layout: count line, header line, then one row per file."""
    lines = [str(len(rows)), " ".join(propose.LANDMARK_COLUMNS)]
    lines += [f"{name} " + " ".join(str(v) for v in values) for name, values in rows.items()]
    path.write_text("\n".join(lines) + "\n")


def test_decide_thresholds_and_confidence():
    classes = propose.ORIENTATION_CLASSES
    assert propose.decide(-0.3, 0.1, classes) == ("left", 1.0)
    assert propose.decide(0.15, 0.1, classes) == ("right", 0.5)
    assert propose.decide(0.0, 0.1, classes) == ("center", 1.0)
    assert propose.decide(0.05, 0.1, classes) == ("center", 0.5)
    assert propose.decide(float("nan"), 0.1, classes) == ("", 0.0)


def test_measure_light_finds_the_bright_half():
    left = propose.measure_light(draw_face(light="left"))
    right = propose.measure_light(draw_face(light="right"))
    dim = propose.measure_light(draw_face())
    assert left["bright_left"] > 0.5 and left["bright_right"] == 0.0
    assert left["bright_balance"] == -1.0 and right["bright_balance"] == 1.0
    assert dim["bright_fraction"] == 0.0 and dim["bright_balance"] == 0.0
    # The same numbers from a plain NumPy reference: V = max(B, G, R) > 170 in the face box.
    image = draw_face(light="right")
    rows, cols = slice(24, 68), slice(16, 48)  # box (0.25, 0.3, 0.75, 0.85) of 64x80
    bright = image.max(axis=2)[rows, cols] > 170
    assert right["bright_right"] == pytest.approx(bright[:, 16:].mean(), abs=1e-4)


def test_nose_offset_sign_and_scale():
    offset, distance = propose.nose_offset(30, 50, 34)
    assert offset == pytest.approx(-0.3) and distance == 20
    assert propose.nose_offset(50, 30, 46)[0] == pytest.approx(0.3)


def test_landmarks_file_found_next_to_the_images(tmp_path):
    images = tmp_path / "img_align_celeba"
    noses = {"000001.jpg": 76, "000002.jpg": 90, "000003.jpg": 104}  # eyes at 70 and 110
    for name in noses:
        draw_face(images / name)
    write_landmarks(
        tmp_path / propose.LANDMARKS_FILENAME,
        {n: (70, 110, 110, 110, x, 130, 75, 150, 105, 150) for n, x in noses.items()},
    )
    table, skipped = propose.propose(images, "orientation")
    assert skipped == []
    assert table["method"].unique().tolist() == ["landmarks"]
    assert table.set_index("file")["proposal"].to_dict() == {
        "000001.jpg": "left",
        "000002.jpg": "center",
        "000003.jpg": "right",
    }
    assert table["nose_offset"].tolist() == pytest.approx([-0.35, 0.0, 0.35])
    assert table["confidence"].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_landmarks_in_anno_folder_and_missing_rows(tmp_path):
    images = tmp_path / "Img" / "img_align_celeba"
    draw_face(images / "a.jpg")
    draw_face(images / "b.jpg")
    # The official CelebA layout: Img/img_align_celeba/ beside Anno/.
    (tmp_path / "Anno").mkdir()
    write_landmarks(
        tmp_path / "Anno" / propose.LANDMARKS_FILENAME,
        {"a.jpg": (70, 110, 110, 110, 95, 130, 75, 150, 105, 150)},
    )
    table, _ = propose.propose(images, "orientation")
    rows = table.set_index("file")
    assert rows.loc["a.jpg", "proposal"] == "right"
    assert rows.loc["a.jpg", "confidence"] == pytest.approx(0.25)
    assert rows.loc["b.jpg", "proposal"] == "" and rows.loc["b.jpg", "confidence"] == 0.0


def test_no_landmarks_and_no_mtcnn_says_how_to_fix(tmp_path, monkeypatch):
    draw_face(tmp_path / "faces" / "a.jpg")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mtcnn" else real_find_spec(name, *a),
    )
    with pytest.raises(ImportError, match="pip install mtcnn"):
        propose.propose(tmp_path / "faces", "orientation")
    with pytest.raises(FileNotFoundError, match="--landmarks"):
        propose.propose(tmp_path / "faces", "orientation", method="landmarks")


def test_mtcnn_path_with_a_stand_in_detector(tmp_path, monkeypatch):
    class FakeMTCNN:
        def detect_faces(self, rgb):
            assert rgb.ndim == 3
            if rgb.mean() > 200:
                return []
            return [
                {
                    "confidence": 0.5,
                    "keypoints": {"left_eye": (0, 0), "right_eye": (10, 0), "nose": (0, 5)},
                },
                {
                    "confidence": 0.99,
                    "keypoints": {"left_eye": (20, 40), "right_eye": (40, 40), "nose": (36, 50)},
                },
            ]

    module = types.ModuleType("mtcnn")
    module.MTCNN = FakeMTCNN
    module.__spec__ = importlib.machinery.ModuleSpec("mtcnn", None)
    monkeypatch.setitem(sys.modules, "mtcnn", module)
    draw_face(tmp_path / "a.png")
    cv2.imwrite(str(tmp_path / "white.png"), np.full((20, 20, 3), 255, np.uint8))
    table, _ = propose.propose(tmp_path, "orientation")
    rows = table.set_index("file")
    assert rows.loc["a.png", "method"] == "mtcnn"
    assert rows.loc["a.png", "nose_offset"] == pytest.approx(0.3)  # the more confident face
    assert rows.loc["a.png", "face_score"] == pytest.approx(0.99)
    assert rows.loc["a.png", "proposal"] == "right"
    assert rows.loc["white.png", "proposal"] == ""


def test_symmetry_heuristic_votes_against_the_skin_shift():
    offsets = {
        turn: propose.measure_skin_symmetry(draw_face(turn=turn))["skin_offset"]
        for turn in ("left", "center", "right")
    }
    assert offsets["left"] > 0.1 and offsets["right"] < -0.1 and abs(offsets["center"]) < 0.03


def test_main_writes_csv_skips_unreadable_and_reports_agreement(tmp_path, capsys):
    data = tmp_path / "light"
    for i in range(2):
        draw_face(data / "left_light" / f"l{i}.png", light="left")
        draw_face(data / "right_light" / f"r{i}.png", light="right")
    draw_face(data / "center_light" / "c0.png", light="left")  # a "wrong" label on purpose
    (data / "center_light" / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "p.csv"
    assert (
        propose.main(
            [
                "--task",
                "light",
                "--images",
                str(data),
                "--out",
                str(out),
                "--workers",
                "1",
                "--labels-dir",
                str(data),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "skipped 1 unreadable" in captured.err
    table = pd.read_csv(out)
    assert list(table.columns[:4]) == ["file", "proposal", "confidence", "method"]
    assert {"bright_left", "bright_right", "bright_balance", "bright_fraction"} <= set(
        table.columns
    )
    assert len(table) == 5 and "center_light/broken.jpg" not in set(table["file"])
    assert "agreement with" in captured.out and "0.800 of 5 images" in captured.out

    per_class, confusion, summary = agreement.agreement_tables(
        agreement.attach_labels(table.fillna(""), data, propose.LIGHT_CLASSES),
        propose.LIGHT_CLASSES,
    )
    assert per_class.loc["left_light", "recall"] == 1.0
    assert per_class.loc["center_light", "recall"] == 0.0
    assert per_class.loc["left_light", "precision"] == pytest.approx(2 / 3, abs=1e-3)
    assert confusion.loc["center_light", "left_light"] == 1
    assert summary["n"] == 5 and summary["agreement"] == 0.8


def test_agreement_matches_by_file_name_when_paths_differ(tmp_path, capsys):
    labels = tmp_path / "labels"
    draw_face(labels / "train" / "left" / "x.png")
    draw_face(labels / "val" / "right" / "y.png")
    proposals = pd.DataFrame(
        {
            "file": ["x.png", "y.png", "z.png"],
            "proposal": ["left", "left", "left"],
            "confidence": [0.9, 0.1, 0.5],
        }
    )
    csv = tmp_path / "p.csv"
    proposals.to_csv(csv, index=False)
    assert agreement.main(["--proposals", str(csv), "--labels-dir", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "0.500 of 2 images" in out


def test_bad_arguments_give_clear_errors(tmp_path):
    draw_face(tmp_path / "a.png")
    with pytest.raises(ValueError, match="--task"):
        propose.propose(tmp_path, "age")
    with pytest.raises(ValueError, match="--channel"):
        propose.propose(tmp_path, "light", channel="q")
    with pytest.raises(ValueError, match="--side-threshold"):
        propose.propose(tmp_path, "light", side_threshold=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        propose.propose(tmp_path / "empty", "light")
    with pytest.raises(SystemExit) as exit_info:
        propose.main(["--help"])
    assert exit_info.value.code == 0


def test_nothing_readable_is_an_error_and_writes_nothing(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a.jpg", "b.png"):
        (tmp_path / "images" / name).write_bytes(b"not an image")
    out = tmp_path / "p.csv"
    with pytest.raises(ValueError, match=r"none of the 2 image\(s\) under .*images could be read \(a.jpg, b.png\); "
                       "nothing written"):
        propose.main(["--task", "light", "--images", str(tmp_path / "images"), "--out", str(out), "--workers", "1"])
    assert not out.exists()
