import os
import random

import cv2
import numpy as np
import pandas as pd
import pytest

from hybridvision.data_prep import image_views, views
from tests.data_prep.test_propose import draw_face


@pytest.fixture(autouse=True)
def _seed_everything():
    # Overrides the suite's fixture: data_prep needs no Keras session to seed or clear.
    random.seed(1337)
    np.random.seed(1337)
    yield


def random_image(height=12, width=10):
    return np.random.randint(0, 256, (height, width, 3), dtype=np.uint8)


def test_threshold_mask_matches_numpy_reference():
    image = random_image()
    # OpenCV's V is max(B, G, R); the mask keeps pixels strictly above the threshold.
    expected = np.where(image.max(axis=2) > 170, 255, 0)
    np.testing.assert_array_equal(image_views.threshold_mask(image), expected)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(
        image_views.threshold_mask(image, "gray", 100), np.where(gray > 100, 255, 0)
    )
    saturation = image.max(axis=2).astype(int) - image.min(axis=2)
    s_reference = np.where(
        image.max(axis=2) > 0, saturation * 255 / np.maximum(image.max(axis=2), 1), 0
    )
    s_ours = image_views.channel_values(image, "s").astype(int)
    assert np.abs(s_ours - s_reference).max() <= 1


def test_hsv_rendering_puts_hue_saturation_value_in_red_green_blue():
    pixels = np.array([[[0, 0, 255], [255, 0, 0], [40, 40, 40]]], np.uint8)  # red, blue, gray
    rendering = image_views.hsv_rendering(pixels)
    np.testing.assert_array_equal(rendering[0, 0], [255, 255, 0])  # V=255, S=255, H=0
    assert rendering[0, 1, 0] == 255 and rendering[0, 1, 1] == 255
    assert abs(int(rendering[0, 1, 2]) - 171) <= 1  # blue = 240 degrees = 170.7 of 256
    np.testing.assert_array_equal(rendering[0, 2], [40, 0, 0])


def test_views_panel_layout():
    image = random_image()
    panel = image_views.views_panel(image, gap=4, mask_style="keep")
    assert panel.shape == (12, 3 * 10 + 2 * 4, 3)
    np.testing.assert_array_equal(panel[:, :10], image)
    mask = image.max(axis=2) > 170
    np.testing.assert_array_equal(panel[:, 28:], np.where(mask[..., None], image, 0))
    assert (panel[:, 10:14] == 128).all()


def test_bad_channel_and_threshold_are_refused():
    with pytest.raises(ValueError, match="--channel"):
        image_views.threshold_mask(random_image(), "x")
    with pytest.raises(ValueError, match="--threshold"):
        image_views.threshold_mask(random_image(), "v", 300)


def test_list_images_leaves_out_symlinks_that_escape(tmp_path):
    root = tmp_path / "images"
    draw_face(root / "a.png")
    draw_face(root / "sub" / "b.jpg")
    (root / "notes.txt").write_text("x")
    draw_face(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", root / "escape.png")
    os.symlink(root / "a.png", root / "inside_link.png")
    assert image_views.list_images(root) == ["a.png", "inside_link.png", "sub/b.jpg"]


def test_main_one_png_per_image(tmp_path, capsys):
    images = tmp_path / "images"
    draw_face(images / "a.png", light="left")
    draw_face(images / "sub" / "b.jpg")
    (images / "broken.png").write_bytes(b"junk")
    out = tmp_path / "out"
    assert (
        views.main(
            ["--images", str(images), "--out", str(out), "--workers", "1", "--threshold", "150"]
        )
        == 0
    )
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "a_views.png",
        "sub/b_views.png",
    ]
    assert "skipped 1 unreadable image(s)" in capsys.readouterr().err
    written = cv2.imread(str(out / "a_views.png"))
    original = cv2.imread(str(images / "a.png"))
    np.testing.assert_array_equal(written, image_views.views_panel(original, "v", 150))


def test_main_contact_sheets_in_parallel(tmp_path):
    images = tmp_path / "images"
    for i in range(5):
        draw_face(images / f"{i}.png", light=("left", "right", None)[i % 3])
    out = tmp_path / "sheets"
    assert (
        views.main(
            [
                "--images",
                str(images),
                "--out",
                str(out),
                "--per-sheet",
                "2",
                "--columns",
                "2",
                "--tile-height",
                "32",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    sheets = sorted(p.name for p in out.glob("sheet_*.png"))
    assert sheets == ["sheet_0001.png", "sheet_0002.png", "sheet_0003.png"]
    index = pd.read_csv(out / "sheets.csv")
    assert index["file"].tolist() == [f"{i}.png" for i in range(5)]
    assert index["sheet"].tolist()[-1] == "sheet_0003.png"
    first = cv2.imread(str(out / "sheet_0001.png"))
    # Two tiles side by side, each 32 px of views plus a 16 px caption.
    assert first.shape[0] == 32 + 16
    tile_width = round((3 * 64 + 8) * 32 / 80)
    assert first.shape[1] == 2 * tile_width


def test_main_refuses_output_inside_the_images(tmp_path):
    draw_face(tmp_path / "a.png")
    with pytest.raises(ValueError, match="inside --images"):
        views.main(["--images", str(tmp_path), "--out", str(tmp_path / "views")])
    with pytest.raises(FileNotFoundError):
        views.main(["--images", str(tmp_path / "missing"), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit) as exit_info:
        views.main(["--help"])
    assert exit_info.value.code == 0
