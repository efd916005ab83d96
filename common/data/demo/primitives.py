"""Drawing and writing helpers shared by the demo-data generators.

Float coordinates, antialiased (OpenCV's fixed-point `shift`), BGR colours,
reproducible JPEG / text writers, and `COUNTS`: how many images each dataset
gets at each scale.
"""

from pathlib import Path

import cv2
import numpy as np

SCALES = ("demo", "tiny")

# Images per dataset; "tiny" keeps every class and split present.
COUNTS = {
    "demo": {
        "celeba": 800,
        "faces_per_class": (60, 15, 15),
        "mnist": (2000, 1000),
        "voc": 120,
        "domains_per_class": 30,
        "table": 240,
    },
    "tiny": {
        "celeba": 20,
        "faces_per_class": (3, 2, 2),
        "mnist": (40, 20),
        "voc": 10,
        "domains_per_class": 3,
        "table": 60,
    },
}
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 92]

# Subpixel drawing: OpenCV takes integer coordinates with `shift` fraction bits.
_SHIFT = 4
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA


def _fix(v):
    return int(round(float(v) * _ONE))


def bgr(c):
    if np.ndim(c) == 0:
        c = (c, c, c)
    return tuple(int(np.clip(round(float(x)), 0, 255)) for x in c)


def draw_ellipse(img, c, axes, color, thickness=-1, angle=0.0, start=0.0, end=360.0):
    axes = (max(axes[0], 0.3), max(axes[1], 0.3))
    cv2.ellipse(
        img,
        (_fix(c[0]), _fix(c[1])),
        (_fix(axes[0]), _fix(axes[1])),
        angle,
        start,
        end,
        bgr(color),
        thickness,
        _AA,
        _SHIFT,
    )


def fill_poly(img, pts, color):
    pts = np.round(np.asarray(pts, np.float64) * _ONE).astype(np.int32)
    cv2.fillPoly(img, [pts], bgr(color), _AA, _SHIFT)


def draw_lines(img, pts, color, thickness=1, closed=False):
    pts = np.round(np.asarray(pts, np.float64) * _ONE).astype(np.int32)
    cv2.polylines(img, [pts], closed, bgr(color), max(1, int(round(thickness))), _AA, _SHIFT)


def ellipse_points(c, axes, n=28, start=0.0, end=360.0):
    t = np.radians(np.linspace(start, end, n, endpoint=end - start < 360))
    return np.stack([c[0] + axes[0] * np.cos(t), c[1] + axes[1] * np.sin(t)], 1)


def blend(img, mask, color, alpha=1.0):
    """Paints `color` where the uint8 `mask` is set, keeping its antialiased edge."""
    a = (mask.astype(np.float32) * (alpha / 255.0))[..., None]
    layer = np.broadcast_to(np.asarray(color, np.float32), img.shape)
    img[:] = np.clip(img * (1 - a) + layer * a, 0, 255).astype(np.uint8)


def smooth_noise(rng, h, w, cells, amp):
    """Low-frequency texture: a coarse random grid upsampled smoothly."""
    grid = rng.normal(0, amp, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def write_jpg(path, img):
    if not cv2.imwrite(str(path), img, _JPEG):
        raise OSError(f"could not write image {path}: check that the folder is writable")




def normalised(p):
    p = np.asarray(p, np.float64)
    return p / p.sum()



def textured_background(rng, h, w):
    top, bottom = rng.uniform(90, 230, 3), rng.uniform(50, 200, 3)
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = top * (1 - ramp) + bottom * ramp + np.zeros((h, w, 3), np.float32)
    img += smooth_noise(rng, h, w, 5, 18)[..., None] + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)



def write_lines(path, lines):
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

