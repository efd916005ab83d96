"""Synthetic demo datasets in the real on-disk formats, generated in seconds.

Every app can run its demo on a fresh clone with no download: this module
draws small, deterministic (seeded) datasets with NumPy and OpenCV and writes
them in the same layouts as the real data, so the readers in `common/data`
serve both. Each dataset folder holds a `README.txt` saying that it is
SYNTHETIC demo data: numbers obtained on it say nothing about real data.

Datasets (`demo_dir(name)`; the path to hand a reader is `demo_root(name)`):

- `celeba`: the official CelebA layout (`img_align_celeba/000001.jpg`,
  `list_attr_celeba.txt`, `list_eval_partition.txt`,
  `list_landmarks_align_celeba.txt`) with 89x109 cartoon faces whose
  attributes are drawn (Smiling = curved mouth, Male = short hair and
  facial hair, not Young = wrinkles, Eyeglasses, hair colour, ...).
  Landmarks are the drawn eye centres, nose tip and mouth corners, in the
  pixels of these 89x109 images (the official file uses 178x218).
  `Attractive` depends on a visible feature and on covariates::

      logit = 2.5 * e + 1.5 * Young - 1.5 * Male + 1.2 * Smiling
              + 1.2 * High_Cheekbones - 1.2
      Attractive ~ Bernoulli(sigmoid(logit))

  with the attributes as 0/1 and `e` uniform in [-1, 1] drawn as the eye
  size (eye radius times 1 + 0.3 e). Sampling the label adds label noise.
  On 20,000 sampled faces a logistic regression on the true values reaches
  about 0.70 from e alone, 0.69 from the four covariates alone and 0.79
  from both (the best any model can do), so a model given the covariates
  (HybridConv2D, late fusion) has something to gain over pixels alone.
- `orientation` and `light`: `train/val/test/<class>/*.jpg` of the same
  faces; classes `left, center, right` (the nose and eyes shift towards the
  image's left or right) and `left_light, center_light, right_light` (a
  brightness gradient, brighter on the image's left or right).
- `mnist`: the four gzipped IDX files (magic 2051/2049, big-endian dims),
  28x28 digits made from scikit-learn's bundled 8x8 digits (no download),
  upsampled to 20x20, centred in 28x28 and randomly shifted and rotated a
  little. Train and test digits come from disjoint source digits.
- `voc`: `VOC2012/{JPEGImages,Annotations,ImageSets/Main}` with 160x120
  images holding 1-3 drawn glyphs of the 20 VOC classes (each class its own
  shape and colours), VOC XML with 1-based pixel boxes, `train.txt`,
  `val.txt`, `trainval.txt` and `<class>_<split>.txt`. Eight classes are
  frequent, the other twelve rare.
- `domains`: PACS-like `<modality>/<class>/*.jpg`, modalities `photo`
  (shaded, textured, noisy), `cartoon` (flat colours, thick outlines) and
  `sketch` (thin jittered black strokes on white), classes house, tree,
  sun, car, boat, 64x64.

A dataset is generated only when missing or when `GENERATOR_VERSION`,
the seed or the scale changed: a `.complete` stamp is written last, so an
interrupted generation is redone. `scale="tiny"` writes a handful of images
per class, for tests that need real-format data in well under a second.

Command line: `python -m data_prep.demo_data [--out DIR] [names...]`.
"""

import argparse
import contextlib
import gzip
import math
import os
import shutil
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import cv2
import numpy as np

GENERATOR_VERSION = "1"
NAMES = ("celeba", "orientation", "light", "mnist", "voc", "domains")
SCALES = ("demo", "tiny")
ENV_VAR = "HYBRIDVISION_DEMO_DIR"
STAMP = ".complete"
README = "README.txt"
_README_MARK = "SYNTHETIC demo data"

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips "
    "Big_Nose Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin "
    "Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open "
    "Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
    "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
CELEBA_LANDMARKS = (
    "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
    "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
).split()
ORIENTATION_CLASSES = ("left", "center", "right")
LIGHT_CLASSES = ("left_light", "center_light", "right_light")
VOC_CLASSES = (
    "aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse "
    "motorbike person pottedplant sheep sofa train tvmonitor"
).split()
VOC_FREQUENT = ("aeroplane", "bird", "car", "cat", "dog", "person", "pottedplant", "tvmonitor")
DOMAIN_MODALITIES = ("photo", "cartoon", "sketch")
DOMAIN_CLASSES = ("house", "tree", "sun", "car", "boat")

# Images per dataset; "tiny" keeps every class and split present.
_COUNTS = {
    "demo": {
        "celeba": 800,
        "faces_per_class": (60, 15, 15),
        "mnist": (2000, 1000),
        "voc": 120,
        "domains_per_class": 30,
    },
    "tiny": {
        "celeba": 20,
        "faces_per_class": (3, 2, 2),
        "mnist": (40, 20),
        "voc": 10,
        "domains_per_class": 3,
    },
}
_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 92]
_FACE_SIZE = (89, 109)  # width, height: the shared real CelebA sample's size

# Subpixel drawing: OpenCV takes integer coordinates with `shift` fraction bits.
_SHIFT = 4
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA


# ----------------------------------------------------------------------------
# Drawing helpers (float coordinates, antialiased)
# ----------------------------------------------------------------------------


def _fix(v):
    return int(round(float(v) * _ONE))


def _col(c):
    if np.ndim(c) == 0:
        c = (c, c, c)
    return tuple(int(np.clip(round(float(x)), 0, 255)) for x in c)


def _ellipse(img, c, axes, color, thickness=-1, angle=0.0, start=0.0, end=360.0):
    axes = (max(axes[0], 0.3), max(axes[1], 0.3))
    cv2.ellipse(
        img,
        (_fix(c[0]), _fix(c[1])),
        (_fix(axes[0]), _fix(axes[1])),
        angle,
        start,
        end,
        _col(color),
        thickness,
        _AA,
        _SHIFT,
    )


def _poly(img, pts, color):
    pts = np.round(np.asarray(pts, np.float64) * _ONE).astype(np.int32)
    cv2.fillPoly(img, [pts], _col(color), _AA, _SHIFT)


def _lines(img, pts, color, thickness=1, closed=False):
    pts = np.round(np.asarray(pts, np.float64) * _ONE).astype(np.int32)
    cv2.polylines(img, [pts], closed, _col(color), max(1, int(round(thickness))), _AA, _SHIFT)


def _ellipse_pts(c, axes, n=28, start=0.0, end=360.0):
    t = np.radians(np.linspace(start, end, n, endpoint=end - start < 360))
    return np.stack([c[0] + axes[0] * np.cos(t), c[1] + axes[1] * np.sin(t)], 1)


def _blend(img, mask, color, alpha=1.0):
    """Paints `color` where the uint8 `mask` is set, keeping its antialiased edge."""
    a = (mask.astype(np.float32) * (alpha / 255.0))[..., None]
    layer = np.broadcast_to(np.asarray(color, np.float32), img.shape)
    img[:] = np.clip(img * (1 - a) + layer * a, 0, 255).astype(np.uint8)


def _smooth_noise(rng, h, w, cells, amp):
    """Low-frequency texture: a coarse random grid upsampled smoothly."""
    grid = rng.normal(0, amp, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _write_jpg(path, img):
    if not cv2.imwrite(str(path), img, _JPEG):
        raise OSError(f"could not write image {path}: check that the folder is writable")


# ----------------------------------------------------------------------------
# Cartoon faces
# ----------------------------------------------------------------------------

_HAIR_COLORS = {
    "Black_Hair": (25, 25, 30),
    "Brown_Hair": (35, 65, 110),
    "Blond_Hair": (95, 200, 235),
    "Gray_Hair": (170, 170, 172),
    None: (40, 60, 150),  # auburn: none of the four CelebA hair colours
}


def _sample_face_attributes(rng):
    """Draws the 40 attributes (0/1) with rough CelebA frequencies and links."""
    r = rng.random
    male = r() < 0.42
    young = r() < 0.75
    smiling = r() < 0.48
    a = {
        "Male": male,
        "Young": young,
        "Smiling": smiling,
        "High_Cheekbones": r() < (0.7 if smiling else 0.2),
        "Mouth_Slightly_Open": r() < (0.65 if smiling else 0.25),
        "Bald": male and r() < (0.1 if young else 0.3),
        "Wearing_Hat": r() < 0.07,
        "Eyeglasses": r() < 0.12,
        "Narrow_Eyes": r() < 0.12,
        "Big_Lips": r() < 0.24,
        "Big_Nose": r() < (0.4 if male else 0.12),
        "Oval_Face": r() < 0.28,
        "Pale_Skin": r() < 0.08,
        "Blurry": r() < 0.05,
        "Bags_Under_Eyes": r() < (0.12 if young else 0.5),
        "Chubby": r() < (0.05 if young else 0.18),
        "Arched_Eyebrows": r() < (0.05 if male else 0.45),
        "Bushy_Eyebrows": r() < (0.3 if male else 0.08),
        "Heavy_Makeup": not male and r() < 0.65,
        "Rosy_Cheeks": not male and r() < 0.12,
        "Wearing_Earrings": r() < (0.02 if male else 0.35),
        "Wearing_Necklace": not male and r() < 0.2,
        "Wearing_Necktie": male and r() < 0.2,
    }
    a["Pointy_Nose"] = not a["Big_Nose"] and r() < 0.3
    a["Double_Chin"] = r() < (0.6 if a["Chubby"] else 0.02)
    a["Wearing_Lipstick"] = not male and r() < (0.9 if a["Heavy_Makeup"] else 0.3)
    beard = male and r() < 0.3
    a["Goatee"] = male and not beard and r() < 0.12
    a["No_Beard"] = not (beard or a["Goatee"])
    a["Mustache"] = male and r() < (0.5 if beard else 0.06)
    a["Sideburns"] = male and r() < (0.5 if beard else 0.05)
    a["5_o_Clock_Shadow"] = male and a["No_Beard"] and r() < 0.3
    hair = rng.choice(
        ["Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair", None],
        p=_normalised([0.3, 0.25, 0.05 if male else 0.25, 0.02 if young else 0.5, 0.08]),
    )
    for name in ("Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair"):
        a[name] = hair == name and not a["Bald"]  # no hair drawn, so no colour to see
    a["hair"] = hair
    a["Bangs"] = not a["Bald"] and not a["Wearing_Hat"] and r() < (0.08 if male else 0.22)
    a["Receding_Hairline"] = (
        not a["Bald"] and not a["Bangs"] and r() < (0.05 if young and not male else 0.2)
    )
    wavy_p = 0.1 if male else 0.45
    u = r()
    a["Wavy_Hair"] = not a["Bald"] and u < wavy_p
    a["Straight_Hair"] = not a["Bald"] and wavy_p <= u < wavy_p + 0.3
    a["eye_size"] = rng.uniform(-1.0, 1.0)
    logit = (
        2.5 * a["eye_size"]
        + 1.5 * young
        - 1.5 * male
        + 1.2 * smiling
        + 1.2 * a["High_Cheekbones"]
        - 1.2
    )
    a["Attractive"] = r() < 1.0 / (1.0 + math.exp(-logit))
    return a


def _normalised(p):
    p = np.asarray(p, np.float64)
    return p / p.sum()


def _draw_face(rng, attrs, yaw, light, size=_FACE_SIZE):
    """Draws one face; returns (BGR uint8 image, landmarks as 5 (x, y) pairs).

    `yaw` in [-1, 1]: -1 faces the image's left. `light` in [-1, 1]: -1 lights
    the image's left half.
    """
    w, h = size
    u = min(w, h * 0.82)  # one length unit, so 64x64 faces keep proportions
    jit = lambda s: rng.uniform(-s, s)  # noqa: E731
    cx, cy = w / 2 + jit(1.5), h * 0.5 + jit(1.5)
    a_ax = u * 0.27 * (1.12 if attrs["Chubby"] else 1.0) * (0.93 if attrs["Oval_Face"] else 1.0)
    b_ax = u * 0.36 * (1.05 if attrs["Oval_Face"] else 1.0)
    feat_dx = yaw * a_ax * 0.3  # eyes, nose and mouth turn with the head
    hair_dx = -yaw * a_ax * 0.15  # the back of the head moves the other way

    skin = np.array((205, 222, 242) if attrs["Pale_Skin"] else (120, 160, 215), np.float64)
    skin = skin + rng.uniform(-15, 15, 3)
    hair = np.array(_HAIR_COLORS[attrs["hair"]], np.float64) + rng.uniform(-12, 12, 3)
    dark = skin * 0.45

    bg = rng.uniform(60, 220, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = bg
    img += np.linspace(-20, 20, h, dtype=np.float32)[:, None, None]
    img += _smooth_noise(rng, h, w, 4, 10)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)

    # Shoulders, neck and what is worn on them.
    clothes = rng.uniform(30, 220, 3)
    _ellipse(img, (cx, h * 1.04), (u * 0.55, h * 0.2), clothes)
    _poly(
        img,
        [
            (cx - a_ax * 0.4, cy + b_ax * 0.5),
            (cx + a_ax * 0.4, cy + b_ax * 0.5),
            (cx + a_ax * 0.45, h),
            (cx - a_ax * 0.45, h),
        ],
        skin * 0.9,
    )
    if attrs["Wearing_Necktie"]:
        ty = h * 0.9
        _poly(img, [(cx - 3, ty), (cx + 3, ty), (cx + 4.5, h), (cx - 4.5, h)], (40, 30, 170))
    if attrs["Wearing_Necklace"]:
        pts = _ellipse_pts((cx, cy + b_ax * 0.85), (a_ax * 0.5, b_ax * 0.3), 9, 20, 160)
        for x, y in pts:
            _ellipse(img, (x, y), (1.1, 1.1), (220, 230, 240))

    # Hair behind the head: long for women, short for men, none when bald.
    hx, hy = cx + hair_dx, cy - b_ax * 0.12
    if not attrs["Bald"]:
        if attrs["Male"]:
            outline = _ellipse_pts((hx, hy), (a_ax * 1.1, b_ax * 1.0), 40)
            outline = outline[outline[:, 1] <= cy + b_ax * 0.15]
        else:
            top = _ellipse_pts((hx, hy), (a_ax * 1.22, b_ax * 1.02), 30, 180, 360)
            bottom = cy + b_ax * (1.05 + rng.uniform(0, 0.25))
            outline = np.vstack([[(hx - a_ax * 1.22, bottom)], top, [(hx + a_ax * 1.22, bottom)]])
        if attrs["Wavy_Hair"]:
            centre = np.array([hx, hy])
            d = outline - centre
            ang = np.arctan2(d[:, 1], d[:, 0])
            outline = centre + d * (1 + 0.06 * np.sin(ang * 9))[:, None]
        _poly(img, outline, hair)
        if attrs["Straight_Hair"]:
            for k in np.linspace(-0.9, 0.9, 7):
                x = hx + k * a_ax * 1.1
                _lines(img, [(x, hy - b_ax * 0.6), (x, outline[:, 1].max() - 2)], hair * 0.7)

    # Ears and earrings.
    ey = cy - b_ax * 0.15
    for side in (-1, 1):
        ex = cx + side * a_ax * (0.97 - 0.1 * side * yaw)
        _ellipse(img, (ex, ey + b_ax * 0.1), (a_ax * 0.13, b_ax * 0.17), skin * 0.85)
        if attrs["Wearing_Earrings"]:
            _ellipse(img, (ex, ey + b_ax * 0.3), (1.6, 1.6), (40, 200, 230))

    # The face, then what covers it.
    fx = cx + yaw * a_ax * 0.05
    face = np.zeros((h, w), np.uint8)
    _ellipse(face, (fx, cy), (a_ax, b_ax), 255)
    _blend(img, face, skin)
    rows = np.arange(h, dtype=np.float32)[:, None]
    if not attrs["Bald"]:
        # A slightly larger cap than the face, so no skin-coloured seam shows.
        cap = np.zeros((h, w), np.uint8)
        _ellipse(cap, (fx, cy), (a_ax + 0.7, b_ax + 0.7), 255)
        line = 0.55 if attrs["Receding_Hairline"] else (0.2 if attrs["Bangs"] else 0.42)
        hairline = cy - b_ax * line
        if attrs["Bangs"]:
            cols = np.arange(w, dtype=np.float32)[None, :]
            hairline = hairline + 2.0 * np.sin(cols * 1.3)
        _blend(img, cap * (rows < hairline), hair)
    mouth_y = cy + b_ax * 0.5
    if not attrs["No_Beard"] and not attrs["Goatee"]:
        _blend(img, face * (rows > mouth_y - b_ax * 0.18), hair * 0.8)
    if attrs["5_o_Clock_Shadow"]:
        stipple = (rng.random((h, w)) < 0.5) * (rows > mouth_y - b_ax * 0.15)
        _blend(img, (face * stipple).astype(np.uint8), dark, 0.45)
    if attrs["Sideburns"]:
        for side in (-1, 1):
            x = fx + side * a_ax * 0.88
            _poly(
                img,
                [
                    (x - 2, ey - 2),
                    (x + 2, ey - 2),
                    (x + 2, ey + b_ax * 0.45),
                    (x - 2, ey + b_ax * 0.45),
                ],
                hair * 0.8,
            )
    if attrs["Double_Chin"]:
        _ellipse(img, (fx, cy + b_ax * 0.93), (a_ax * 0.45, b_ax * 0.12), dark, 1, 0, 20, 160)
    if not attrs["Young"]:
        for k in range(3):
            y = cy - b_ax * (0.5 - 0.08 * k)
            _ellipse(img, (fx + feat_dx * 0.5, y), (a_ax * 0.45, 3), dark, 1, 0, 200, 340)

    # Eyes: the far eye shrinks as the head turns; `eye_size` drives Attractive.
    eye_r = a_ax * 0.14 * (1 + 0.3 * attrs["eye_size"])
    eye_h = eye_r * (0.45 if attrs["Narrow_Eyes"] else 0.8)
    half_sep = a_ax * 0.42 * (1 - 0.12 * abs(yaw))
    eyes = []
    for side in (-1, 1):
        ex = cx + feat_dx + side * half_sep
        ew = eye_r * (1 - 0.3 * max(0.0, side * -yaw))
        eyes.append((ex, ey))
        if attrs["Heavy_Makeup"]:
            _ellipse(img, (ex, ey - eye_h * 0.6), (ew * 1.2, eye_h * 1.1), (150, 70, 110))
        _ellipse(img, (ex, ey), (ew, eye_h), (245, 245, 245))
        _ellipse(img, (ex + yaw * ew * 0.3, ey), (ew * 0.5, eye_h * 0.8), (50, 40, 30))
        _ellipse(img, (ex, ey), (ew, eye_h), (20, 20, 20), 1)
        if attrs["Bags_Under_Eyes"]:
            _ellipse(img, (ex, ey + eye_h * 1.2), (ew * 0.8, eye_h * 0.6), dark, 1, 0, 20, 160)
        brow_y = ey - eye_h - eye_r * 0.8
        thick = 2.5 if attrs["Bushy_Eyebrows"] else 1.0
        if attrs["Arched_Eyebrows"]:
            _ellipse(
                img,
                (ex, brow_y + eye_r * 0.5),
                (ew * 1.1, eye_r * 0.7),
                hair * 0.6,
                round(thick),
                0,
                200,
                340,
            )
        else:
            _lines(img, [(ex - ew * 1.1, brow_y), (ex + ew * 1.1, brow_y)], hair * 0.6, thick)
        if not attrs["Young"]:
            x0 = ex + side * ew * 1.3
            _lines(img, [(x0, ey - 2), (x0 + side * 3, ey - 3)], dark)
            _lines(img, [(x0, ey + 2), (x0 + side * 3, ey + 3)], dark)
    if attrs["Rosy_Cheeks"] or attrs["High_Cheekbones"]:
        cheeks = np.zeros((h, w), np.uint8)
        for side in (-1, 1):
            _ellipse(
                cheeks,
                (cx + feat_dx * 0.8 + side * a_ax * 0.55, cy + b_ax * 0.15),
                (a_ax * 0.18, b_ax * 0.1),
                255,
            )
        if attrs["Rosy_Cheeks"]:
            _blend(img, cheeks, (120, 110, 240), 0.6)
        if attrs["High_Cheekbones"]:
            for side in (-1, 1):
                x = cx + feat_dx * 0.8 + side * a_ax * 0.62
                _lines(img, [(x - side * 3, cy + b_ax * 0.02), (x, cy + b_ax * 0.22)], dark, 1)

    # Nose: its tip leads the turn, so nose-versus-eyes gives the orientation.
    nose = (cx + feat_dx + yaw * a_ax * 0.22, cy + b_ax * 0.18)
    nose_w = a_ax * (0.2 if attrs["Big_Nose"] else 0.12)
    nose_top = ey + (eye_h if attrs["Pointy_Nose"] else eye_h * 2)
    bridge_x = cx + feat_dx
    _lines(
        img,
        [(bridge_x, nose_top), nose, (nose[0] - nose_w * np.sign(yaw or 1), nose[1] - 1)],
        dark,
        1.5 if attrs["Big_Nose"] else 1,
    )
    if attrs["Big_Nose"]:
        _ellipse(img, nose, (nose_w, nose_w * 0.6), skin * 0.75)

    # Mouth: a smile is an upward curve with raised corners.
    mx = cx + feat_dx * 0.9
    mw = a_ax * 0.34 * (1.15 if attrs["Big_Lips"] else 1.0) * (1 - 0.15 * abs(yaw))
    lips = (60, 40, 200) if attrs["Wearing_Lipstick"] else (90, 90, 160)
    lip_t = 2.5 if attrs["Big_Lips"] or attrs["Wearing_Lipstick"] else 1.5
    if attrs["Smiling"]:
        curve = b_ax * 0.13
        corners_y = mouth_y - curve
        if attrs["Mouth_Slightly_Open"]:
            _ellipse(img, (mx, corners_y), (mw, curve), (50, 30, 60), -1, 0, 0, 180)
        _ellipse(img, (mx, corners_y), (mw, curve), lips, round(lip_t), 0, 0, 180)
    else:
        corners_y = mouth_y
        if attrs["Mouth_Slightly_Open"]:
            _ellipse(img, (mx, mouth_y), (mw * 0.8, b_ax * 0.05), (50, 30, 60))
        _lines(img, [(mx - mw, mouth_y), (mx + mw, mouth_y)], lips, lip_t)
    mouth = [(mx - mw, corners_y), (mx + mw, corners_y)]
    if attrs["Mustache"]:
        _lines(
            img,
            [(mx - mw * 0.9, mouth_y - b_ax * 0.14), (mx + mw * 0.9, mouth_y - b_ax * 0.14)],
            hair * 0.5,
            2.5,
        )
    if attrs["Goatee"]:
        _ellipse(img, (mx, mouth_y + b_ax * 0.3), (mw * 0.45, b_ax * 0.13), hair * 0.6)

    if attrs["Eyeglasses"]:
        for ex, ey_ in eyes:
            _ellipse(img, (ex, ey_), (eye_r * 1.6, eye_r * 1.35), (20, 20, 20), 1)
        (lx, ly), (rx, ry) = eyes
        _lines(img, [(lx + eye_r * 1.6, ly), (rx - eye_r * 1.6, ry)], (20, 20, 20))
    if attrs["Wearing_Hat"]:
        hat = rng.uniform(20, 200, 3)
        top = cy - b_ax * 1.25
        brim = cy - b_ax * 0.55
        _poly(
            img,
            [
                (hx - a_ax * 0.9, top),
                (hx + a_ax * 0.9, top),
                (hx + a_ax * 1.0, brim),
                (hx - a_ax * 1.0, brim),
            ],
            hat,
        )
        _ellipse(img, (hx, brim), (a_ax * 1.45, b_ax * 0.1), hat * 0.8)

    # Light: one gradient across the image, brighter on the lit side.
    img = img.astype(np.float32)
    gain = 1.0 + 0.55 * light * (cx - np.arange(w, dtype=np.float32)) / (w / 2)
    img *= gain[None, :, None] * rng.uniform(0.85, 1.1)
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if attrs["Blurry"]:
        img = cv2.GaussianBlur(img, (0, 0), 1.3)
    landmarks = [eyes[0], eyes[1], nose, mouth[0], mouth[1]]
    return img, landmarks


def _gen_celeba(out, rng, scale):
    n = _COUNTS[scale]["celeba"]
    img_dir = out / "img_align_celeba"
    img_dir.mkdir()
    attr_rows, part_rows, mark_rows = [], [], []
    n_train, n_val = round(n * 0.7), round(n * 0.15)
    for i in range(n):
        fname = f"{i + 1:06d}.jpg"
        attrs = _sample_face_attributes(rng)
        yaw = rng.uniform(-1, 1)
        light = rng.choice([-1.0, 0.0, 1.0]) * rng.uniform(0.5, 1.0)
        img, marks = _draw_face(rng, attrs, yaw, light)
        _write_jpg(img_dir / fname, img)
        values = "".join(f" {1 if attrs[k] else -1:2d}" for k in CELEBA_ATTRIBUTES)
        attr_rows.append(fname + values)
        part_rows.append(f"{fname} {0 if i < n_train else (1 if i < n_train + n_val else 2)}")
        coords = [int(round(v)) for xy in marks for v in xy]
        mark_rows.append(fname + "".join(f" {v:4d}" for v in coords))
    _write_lines(out / "list_attr_celeba.txt", [str(n), " ".join(CELEBA_ATTRIBUTES), *attr_rows])
    _write_lines(out / "list_eval_partition.txt", part_rows)
    _write_lines(
        out / "list_landmarks_align_celeba.txt", [str(n), " ".join(CELEBA_LANDMARKS), *mark_rows]
    )
    return (
        "Official CelebA layout with cartoon faces (89x109). Partition 0/1/2 = "
        f"{n_train}/{n_val}/{n - n_train - n_val} images.\n"
        "Attributes are drawn visibly. Attractive ~ Bernoulli(sigmoid(logit)) with\n"
        "  logit = 2.5*e + 1.5*Young - 1.5*Male + 1.2*Smiling + 1.2*High_Cheekbones - 1.2,\n"
        "attributes as 0/1 and e in [-1, 1] drawn as the eye size (radius x (1 + 0.3 e)).\n"
        "Landmarks are in the pixels of these 89x109 images (the official file: 178x218)."
    )


def _gen_face_folders(out, rng, scale, task):
    per_class = _COUNTS[scale]["faces_per_class"]
    classes = ORIENTATION_CLASSES if task == "orientation" else LIGHT_CLASSES
    # Classes sit apart but not far apart, so a model has to look closely.
    ranges = ((-1.0, -0.4), (-0.2, 0.2), (0.4, 1.0))
    k = 0
    for split, count in zip(("train", "val", "test"), per_class, strict=True):
        for c, cls in enumerate(classes):
            folder = out / split / cls
            folder.mkdir(parents=True)
            for _ in range(count):
                k += 1
                attrs = _sample_face_attributes(rng)
                label = rng.uniform(*ranges[c])
                if task == "orientation":
                    yaw, light = label, rng.uniform(-0.4, 0.4)
                else:
                    yaw, light = rng.uniform(-1, 1), label
                img, _ = _draw_face(rng, attrs, yaw, light)
                _write_jpg(folder / f"{k:06d}.jpg", img)
    what = "head turned to the image's" if task == "orientation" else "light from the image's"
    return (
        f"Class folders train/val/test/<class>/ of 89x109 cartoon faces, {per_class} images "
        f"per class and split.\nClasses {', '.join(classes)}: {what} left / centre / right."
    )


# ----------------------------------------------------------------------------
# MNIST from scikit-learn's bundled 8x8 digits
# ----------------------------------------------------------------------------


def _gen_mnist(out, rng, scale):
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = rng.permutation(len(digits.target))
    n_src_train = int(len(order) * 0.67)
    pools = {"train": order[:n_src_train], "t10k": order[n_src_train:]}
    n_train, n_test = _COUNTS[scale]["mnist"]
    for prefix, count in (("train", n_train), ("t10k", n_test)):
        pool = pools[prefix]
        picks = np.concatenate([rng.permutation(pool) for _ in range(count // len(pool) + 1)])
        picks = picks[:count]
        images = np.empty((count, 28, 28), np.uint8)
        for i, src in enumerate(picks):
            images[i] = _mnist_digit(rng, digits.images[src])
        labels = digits.target[picks].astype(np.uint8)
        header = struct.pack(">IIII", 2051, count, 28, 28)
        _write_gz(out / f"{prefix}-images-idx3-ubyte.gz", header + images.tobytes())
        _write_gz(
            out / f"{prefix}-labels-idx1-ubyte.gz",
            struct.pack(">II", 2049, count) + labels.tobytes(),
        )
    return (
        "MNIST IDX files (gzipped) with 28x28 digits: scikit-learn's bundled 8x8 digits\n"
        "(load_digits, no download) upsampled to 20x20, centred in 28x28, randomly shifted\n"
        f"and rotated a little. {n_train} train / {n_test} test; train and test digits come\n"
        "from disjoint source digits."
    )


def _mnist_digit(rng, src8):
    d = cv2.resize(src8.astype(np.float32) / 16.0, (20, 20), interpolation=cv2.INTER_CUBIC)
    d = np.clip(d * 1.4 - 0.1, 0, 1)  # MNIST strokes are saturated, the background black
    angle = rng.uniform(-8, 8)
    zoom = rng.uniform(0.9, 1.1)
    m = cv2.getRotationMatrix2D((9.5, 9.5), angle, zoom)
    m[:, 2] += (14 - 9.5 + rng.uniform(-1.5, 1.5), 14 - 9.5 + rng.uniform(-1.5, 1.5))
    out = cv2.warpAffine(d, m, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.clip(out * 255, 0, 255).astype(np.uint8)


def _write_gz(path, data):
    # mtime=0 and no file name in the header keep the bytes reproducible.
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as f,
    ):
        f.write(data)


# ----------------------------------------------------------------------------
# Glyphs: shapes in unit box coordinates, drawn in several styles
# ----------------------------------------------------------------------------
# A glyph is a list of parts: ("poly", colour, points), ("ell", colour, centre,
# radii) or ("line", colour, points, width as a fraction of the box). Colours
# are BGR; None means the dark outline colour.


def _rect(u0, v0, u1, v1):
    return [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]


def _wheels(centres, r, color=(30, 30, 30)):
    return [("ell", color, c, r) for c in centres]


_GLYPHS = {
    "aeroplane": [
        ("poly", (175, 175, 180), [(0.45, 0.5), (0.6, 0.5), (0.4, 0.04), (0.3, 0.04)]),
        ("poly", (175, 175, 180), [(0.45, 0.5), (0.6, 0.5), (0.4, 0.96), (0.3, 0.96)]),
        ("poly", (150, 150, 160), [(0.0, 0.5), (0.13, 0.5), (0.07, 0.18), (0.0, 0.18)]),
        ("ell", (205, 205, 210), (0.5, 0.5), (0.48, 0.09)),
        ("ell", (200, 120, 40), (0.86, 0.47), (0.06, 0.04)),
    ],
    "bicycle": [
        (
            "line",
            (20, 20, 20),
            _ellipse_pts((0.22, 0.68), (0.21, 0.3), 24).tolist() + [(0.43, 0.68)],
            0.06,
        ),
        (
            "line",
            (20, 20, 20),
            _ellipse_pts((0.78, 0.68), (0.21, 0.3), 24).tolist() + [(0.99, 0.68)],
            0.06,
        ),
        ("line", (160, 140, 20), [(0.22, 0.68), (0.42, 0.3), (0.72, 0.3), (0.78, 0.68)], 0.06),
        ("line", (160, 140, 20), [(0.42, 0.3), (0.5, 0.68), (0.72, 0.3)], 0.06),
        ("line", (20, 20, 20), [(0.68, 0.1), (0.72, 0.3)], 0.05),
        ("line", (20, 20, 20), [(0.6, 0.1), (0.78, 0.08)], 0.05),
    ],
    "bird": [
        ("poly", (20, 150, 200), [(0.0, 0.45), (0.2, 0.55), (0.05, 0.72)]),
        ("ell", (30, 210, 240), (0.45, 0.58), (0.33, 0.24)),
        ("ell", (20, 170, 210), (0.4, 0.55), (0.18, 0.12)),
        ("ell", (30, 210, 240), (0.76, 0.32), (0.16, 0.2)),
        ("poly", (20, 120, 240), [(0.88, 0.26), (1.0, 0.36), (0.88, 0.42)]),
        ("ell", (10, 10, 10), (0.8, 0.28), (0.03, 0.04)),
    ],
    "boat": [
        ("line", (60, 60, 60), [(0.5, 0.68), (0.5, 0.02)], 0.04),
        ("poly", (245, 245, 245), [(0.53, 0.06), (0.53, 0.62), (0.92, 0.62)]),
        ("poly", (235, 235, 240), [(0.47, 0.15), (0.47, 0.62), (0.2, 0.62)]),
        ("poly", (30, 60, 120), [(0.0, 0.66), (1.0, 0.66), (0.82, 0.98), (0.18, 0.98)]),
    ],
    "bottle": [
        ("poly", (40, 130, 30), _rect(0.42, 0.02, 0.58, 0.32)),
        ("poly", (40, 130, 30), [(0.42, 0.28), (0.58, 0.28), (0.75, 0.42), (0.25, 0.42)]),
        ("poly", (40, 130, 30), _rect(0.25, 0.4, 0.75, 1.0)),
        ("poly", (230, 235, 240), _rect(0.25, 0.55, 0.75, 0.78)),
    ],
    "bus": [
        ("poly", (30, 200, 240), _rect(0.0, 0.1, 1.0, 0.85)),
        *[
            ("poly", (170, 110, 40), _rect(0.05 + 0.19 * k, 0.2, 0.19 + 0.19 * k, 0.45))
            for k in range(5)
        ],
        ("poly", (30, 30, 200), _rect(0.0, 0.55, 1.0, 0.6)),
        *_wheels([(0.2, 0.86), (0.8, 0.86)], (0.08, 0.14)),
    ],
    "car": [
        ("poly", (40, 40, 210), [(0.2, 0.45), (0.3, 0.12), (0.7, 0.12), (0.82, 0.45)]),
        ("poly", (230, 200, 150), [(0.28, 0.43), (0.35, 0.2), (0.49, 0.2), (0.49, 0.43)]),
        ("poly", (230, 200, 150), [(0.53, 0.43), (0.53, 0.2), (0.66, 0.2), (0.74, 0.43)]),
        ("poly", (40, 40, 210), _rect(0.0, 0.42, 1.0, 0.8)),
        ("ell", (120, 230, 250), (0.96, 0.52), (0.03, 0.05)),
        *_wheels([(0.22, 0.8), (0.78, 0.8)], (0.12, 0.19)),
    ],
    "cat": [
        ("poly", (40, 140, 235), [(0.08, 0.4), (0.18, 0.0), (0.42, 0.22)]),
        ("poly", (40, 140, 235), [(0.92, 0.4), (0.82, 0.0), (0.58, 0.22)]),
        ("ell", (40, 140, 235), (0.5, 0.57), (0.44, 0.42)),
        ("line", (20, 90, 170), [(0.42, 0.18), (0.45, 0.32)], 0.04),
        ("line", (20, 90, 170), [(0.58, 0.18), (0.55, 0.32)], 0.04),
        ("ell", (60, 200, 60), (0.33, 0.5), (0.08, 0.07)),
        ("ell", (60, 200, 60), (0.67, 0.5), (0.08, 0.07)),
        ("poly", (150, 130, 240), [(0.45, 0.64), (0.55, 0.64), (0.5, 0.71)]),
        ("line", (30, 30, 30), [(0.05, 0.66), (0.35, 0.7)], 0.02),
        ("line", (30, 30, 30), [(0.95, 0.66), (0.65, 0.7)], 0.02),
    ],
    "chair": [
        ("poly", (30, 80, 140), _rect(0.15, 0.0, 0.32, 0.6)),
        ("poly", (40, 95, 160), _rect(0.15, 0.52, 0.88, 0.64)),
        ("line", (30, 70, 120), [(0.2, 0.6), (0.2, 1.0)], 0.07),
        ("line", (30, 70, 120), [(0.83, 0.6), (0.83, 1.0)], 0.07),
        ("line", (30, 70, 120), [(0.15, 0.2), (0.32, 0.2)], 0.04),
    ],
    "cow": [
        *[("line", (40, 40, 40), [(u, 0.6), (u, 1.0)], 0.08) for u in (0.15, 0.3, 0.55, 0.7)],
        ("ell", (240, 240, 240), (0.43, 0.5), (0.38, 0.25)),
        ("ell", (20, 20, 20), (0.3, 0.42), (0.1, 0.08)),
        ("ell", (20, 20, 20), (0.55, 0.58), (0.09, 0.1)),
        ("ell", (230, 230, 230), (0.87, 0.35), (0.12, 0.15)),
        ("ell", (170, 160, 240), (0.9, 0.46), (0.08, 0.06)),
        ("line", (200, 220, 230), [(0.8, 0.2), (0.76, 0.08)], 0.04),
        ("line", (200, 220, 230), [(0.94, 0.2), (0.98, 0.08)], 0.04),
    ],
    "diningtable": [
        ("line", (30, 60, 110), [(0.08, 0.4), (0.08, 1.0)], 0.08),
        ("line", (30, 60, 110), [(0.92, 0.4), (0.92, 1.0)], 0.08),
        ("poly", (40, 80, 140), [(0.0, 0.3), (1.0, 0.3), (0.95, 0.45), (0.05, 0.45)]),
        ("ell", (250, 250, 250), (0.35, 0.27), (0.12, 0.06)),
        ("ell", (250, 250, 250), (0.68, 0.27), (0.12, 0.06)),
    ],
    "dog": [
        *[("line", (40, 80, 130), [(u, 0.6), (u, 1.0)], 0.08) for u in (0.2, 0.32, 0.55, 0.67)],
        ("line", (40, 80, 130), [(0.12, 0.5), (0.0, 0.25)], 0.06),
        ("ell", (60, 110, 170), (0.43, 0.55), (0.33, 0.2)),
        ("ell", (60, 110, 170), (0.8, 0.33), (0.16, 0.19)),
        ("ell", (30, 50, 80), (0.7, 0.4), (0.06, 0.16)),
        ("ell", (10, 10, 10), (0.95, 0.35), (0.04, 0.04)),
    ],
    "horse": [
        *[("line", (20, 40, 80), [(u, 0.5), (u, 1.0)], 0.06) for u in (0.18, 0.28, 0.58, 0.68)],
        ("ell", (30, 60, 110), (0.42, 0.45), (0.32, 0.17)),
        ("poly", (30, 60, 110), [(0.6, 0.4), (0.72, 0.1), (0.84, 0.14), (0.76, 0.45)]),
        ("ell", (30, 60, 110), (0.86, 0.15), (0.13, 0.07), 25),
        ("line", (15, 15, 20), [(0.7, 0.1), (0.62, 0.35)], 0.05),
        ("line", (15, 15, 20), [(0.1, 0.38), (0.02, 0.7)], 0.06),
    ],
    "motorbike": [
        (
            "line",
            (20, 20, 20),
            _ellipse_pts((0.2, 0.7), (0.18, 0.27), 24).tolist() + [(0.38, 0.7)],
            0.1,
        ),
        (
            "line",
            (20, 20, 20),
            _ellipse_pts((0.8, 0.7), (0.18, 0.27), 24).tolist() + [(0.98, 0.7)],
            0.1,
        ),
        (
            "poly",
            (30, 30, 190),
            [(0.25, 0.45), (0.45, 0.3), (0.7, 0.32), (0.75, 0.55), (0.35, 0.62)],
        ),
        ("poly", (25, 25, 25), _rect(0.22, 0.36, 0.45, 0.44)),
        ("line", (150, 150, 150), [(0.7, 0.32), (0.8, 0.7)], 0.05),
        ("line", (30, 30, 30), [(0.68, 0.08), (0.72, 0.32)], 0.05),
    ],
    "person": [
        ("poly", (90, 50, 40), _rect(0.3, 0.58, 0.48, 1.0)),
        ("poly", (90, 50, 40), _rect(0.52, 0.58, 0.7, 1.0)),
        ("line", (120, 160, 215), [(0.3, 0.3), (0.08, 0.58)], 0.08),
        ("line", (120, 160, 215), [(0.7, 0.3), (0.92, 0.58)], 0.08),
        ("poly", (190, 90, 30), _rect(0.28, 0.24, 0.72, 0.62)),
        ("ell", (120, 160, 215), (0.5, 0.12), (0.14, 0.11)),
        ("ell", (30, 40, 60), (0.5, 0.05), (0.14, 0.05)),
    ],
    "pottedplant": [
        ("ell", (40, 160, 40), (0.5, 0.3), (0.3, 0.28)),
        ("ell", (30, 130, 30), (0.28, 0.45), (0.2, 0.15)),
        ("ell", (30, 130, 30), (0.72, 0.45), (0.2, 0.15)),
        ("ell", (60, 180, 60), (0.5, 0.12), (0.14, 0.12)),
        ("poly", (50, 90, 190), [(0.25, 0.62), (0.75, 0.62), (0.66, 1.0), (0.34, 1.0)]),
    ],
    "sheep": [
        *[("line", (25, 25, 25), [(u, 0.6), (u, 1.0)], 0.06) for u in (0.22, 0.35, 0.55, 0.68)],
        *[
            ("ell", (225, 230, 235), (0.2 + 0.15 * k, 0.4 + 0.12 * (k % 2)), (0.16, 0.16))
            for k in range(5)
        ],
        ("ell", (35, 35, 40), (0.9, 0.38), (0.1, 0.13)),
    ],
    "sofa": [
        ("poly", (120, 40, 110), _rect(0.06, 0.15, 0.94, 0.6)),
        ("poly", (140, 60, 130), _rect(0.06, 0.52, 0.94, 0.85)),
        ("ell", (110, 30, 100), (0.07, 0.58), (0.07, 0.28)),
        ("ell", (110, 30, 100), (0.93, 0.58), (0.07, 0.28)),
        ("line", (90, 20, 80), [(0.5, 0.2), (0.5, 0.8)], 0.03),
        ("line", (30, 30, 30), [(0.12, 0.85), (0.12, 1.0)], 0.05),
        ("line", (30, 30, 30), [(0.88, 0.85), (0.88, 1.0)], 0.05),
    ],
    "train": [
        ("poly", (130, 90, 50), [(0.0, 0.15), (0.85, 0.15), (1.0, 0.45), (1.0, 0.85), (0.0, 0.85)]),
        *[
            ("poly", (120, 220, 240), _rect(0.05 + 0.16 * k, 0.25, 0.16 + 0.16 * k, 0.45))
            for k in range(5)
        ],
        ("poly", (40, 40, 200), _rect(0.0, 0.55, 1.0, 0.62)),
        *_wheels([(0.1 + 0.16 * k, 0.88) for k in range(6)], (0.06, 0.1)),
        ("line", (90, 90, 90), [(0.0, 0.98), (1.0, 0.98)], 0.04),
    ],
    "tvmonitor": [
        ("poly", (30, 30, 30), [(0.42, 0.78), (0.58, 0.78), (0.7, 1.0), (0.3, 1.0)]),
        ("poly", (25, 25, 25), _rect(0.0, 0.0, 1.0, 0.8)),
        ("poly", (240, 170, 90), _rect(0.08, 0.08, 0.92, 0.72)),
        ("line", (250, 230, 200), [(0.2, 0.6), (0.45, 0.18)], 0.04),
    ],
    "house": [
        ("poly", (170, 210, 230), _rect(0.15, 0.45, 0.85, 0.97)),
        ("poly", (40, 40, 180), [(0.05, 0.48), (0.5, 0.06), (0.95, 0.48)]),
        ("poly", (40, 70, 110), _rect(0.43, 0.66, 0.57, 0.97)),
        ("poly", (220, 170, 90), _rect(0.22, 0.55, 0.36, 0.69)),
        ("poly", (220, 170, 90), _rect(0.64, 0.55, 0.78, 0.69)),
    ],
    "tree": [
        ("poly", (30, 70, 110), _rect(0.43, 0.5, 0.57, 1.0)),
        ("ell", (40, 150, 40), (0.3, 0.45), (0.22, 0.18)),
        ("ell", (40, 150, 40), (0.7, 0.45), (0.22, 0.18)),
        ("ell", (50, 170, 50), (0.5, 0.3), (0.35, 0.28)),
    ],
    "sun": [
        *[
            (
                "line",
                (20, 150, 250),
                [
                    (0.5 + 0.33 * math.cos(t), 0.5 + 0.33 * math.sin(t)),
                    (0.5 + 0.48 * math.cos(t), 0.5 + 0.48 * math.sin(t)),
                ],
                0.06,
            )
            for t in np.linspace(0, 2 * math.pi, 10, endpoint=False)
        ],
        ("ell", (40, 210, 250), (0.5, 0.5), (0.26, 0.26)),
    ],
}
# Box aspect ratio (width / height) of each VOC glyph.
_ASPECT = {
    "aeroplane": 1.6,
    "bicycle": 1.4,
    "bird": 1.2,
    "boat": 1.1,
    "bottle": 0.45,
    "bus": 1.8,
    "car": 1.6,
    "cat": 1.0,
    "chair": 0.75,
    "cow": 1.5,
    "diningtable": 1.7,
    "dog": 1.3,
    "horse": 1.2,
    "motorbike": 1.4,
    "person": 0.6,
    "pottedplant": 0.8,
    "sheep": 1.3,
    "sofa": 1.9,
    "train": 2.2,
    "tvmonitor": 1.25,
}


def _draw_glyph(img, rng, parts, box, style, angle=0.0, flip=False):
    """Draws `parts` into `box` (x0, y0, x1, y1) in one style.

    Styles: "flat" (flat colours, thin outline), "cartoon" (flat, thick
    outline), "photo" (shaded and textured, no outline), "sketch" (jittered
    black outlines only).
    """
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    h, w = img.shape[:2]
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    tint = rng.uniform(-25, 25, 3)

    def to_px(pts):
        p = np.asarray(pts, np.float64).reshape(-1, 2).copy()
        if flip:
            p[:, 0] = 1 - p[:, 0]
        p = np.stack([x0 + p[:, 0] * bw, y0 + p[:, 1] * bh], 1)
        return (p - centre) @ rot.T + centre

    outline_t = {"flat": 1, "cartoon": max(2, round(min(bw, bh) / 22)), "photo": 0, "sketch": 1}[
        style
    ]
    for part in parts:
        kind, color = part[0], np.asarray(part[1], np.float64) + tint
        if kind == "line":
            pts = to_px(part[2])
            thick = max(1.0, part[3] * min(bw, bh))
            if style == "sketch":
                _sketch_stroke(img, rng, pts, thick > 2.5, closed=False)
            else:
                _lines(img, pts, color * (0.8 if style == "photo" else 1.0), thick)
            continue
        if kind == "ell":
            angle_deg = part[4] if len(part) > 4 else 0.0
            pts = _ellipse_pts(part[2], part[3], 36)
            if angle_deg:
                c = np.asarray(part[2])
                t = math.radians(angle_deg)
                pts = (pts - c) @ np.array(
                    [[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]]
                ) + c
            pts = to_px(pts)
        else:
            pts = to_px(part[2])
        if style == "sketch":
            _sketch_stroke(img, rng, pts, False, closed=True)
            continue
        mask = np.zeros((h, w), np.uint8)
        _poly(mask, pts, 255)
        if style == "photo":
            lo, hi = pts[:, 1].min(), pts[:, 1].max()
            shade = 1.2 - 0.45 * np.clip((np.arange(h) - lo) / max(hi - lo, 1), 0, 1)
            layer = color[None, None, :] * shade[:, None, None]
            layer = (
                layer + rng.normal(0, 10, (h, w, 1)) + _smooth_noise(rng, h, w, 6, 12)[..., None]
            )
            a = (mask.astype(np.float32) / 255.0)[..., None]
            img[:] = np.clip(img * (1 - a) + layer * a, 0, 255).astype(np.uint8)
        else:
            _blend(img, mask, color)
            if outline_t:
                _lines(img, pts, (15, 15, 15), outline_t, closed=True)


def _sketch_stroke(img, rng, pts, bold, closed):
    """A hand-drawn line: resampled, wobbly, sometimes traced twice."""
    if closed:
        pts = np.vstack([pts, pts[:1]])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    t = np.concatenate([[0], np.cumsum(seg)])
    n = max(4, int(t[-1] / 3))
    ts = np.linspace(0, t[-1], n)
    path = np.stack([np.interp(ts, t, pts[:, 0]), np.interp(ts, t, pts[:, 1])], 1)
    for _ in range(2 if bold or rng.random() < 0.4 else 1):
        wobble = cv2.GaussianBlur(rng.normal(0, 1.2, (n, 2)).astype(np.float32), (1, 5), 0)
        _lines(img, path + wobble, (20, 20, 20), 1)


# ----------------------------------------------------------------------------
# VOC and domains
# ----------------------------------------------------------------------------


def _textured_background(rng, h, w):
    top, bottom = rng.uniform(90, 230, 3), rng.uniform(50, 200, 3)
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = top * (1 - ramp) + bottom * ramp + np.zeros((h, w, 3), np.float32)
    img += _smooth_noise(rng, h, w, 5, 18)[..., None] + rng.normal(0, 6, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _gen_voc(out, rng, scale):
    n = _COUNTS[scale]["voc"]
    w, h = 160, 120
    root = out / "VOC2012"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    weights = _normalised([4.0 if c in VOC_FREQUENT else 1.0 for c in VOC_CLASSES])
    ids, present = [], []
    for i in range(n):
        image_id = f"2012_{i + 1:06d}"
        img = _textured_background(rng, h, w)
        boxes = []
        for _ in range(int(rng.integers(1, 4))):
            cls = str(rng.choice(VOC_CLASSES, p=weights))
            for _try in range(30):
                s = rng.uniform(40, 90)
                bw = min(s * math.sqrt(_ASPECT[cls]), w - 2)
                bh = min(s / math.sqrt(_ASPECT[cls]), h - 2)
                bx, by = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
                box = (bx, by, bx + bw, by + bh)
                if all(_iou(box, b) < 0.2 for b, _ in boxes):
                    boxes.append((box, cls))
                    break
        for box, cls in boxes:
            _draw_glyph(img, rng, _GLYPHS[cls], box, "flat", flip=bool(rng.random() < 0.5))
        _write_jpg(root / "JPEGImages" / f"{image_id}.jpg", img)
        _write_voc_xml(root / "Annotations" / f"{image_id}.xml", image_id, w, h, boxes)
        ids.append(image_id)
        present.append({cls for _, cls in boxes})
    n_train = max(1, round(n * 0.7))
    splits = {"train": range(n_train), "val": range(n_train, n), "trainval": range(n)}
    main = root / "ImageSets" / "Main"
    for split, idx in splits.items():
        _write_lines(main / f"{split}.txt", [ids[k] for k in idx])
        for cls in VOC_CLASSES:
            rows = [f"{ids[k]} {1 if cls in present[k] else -1:2d}" for k in idx]
            _write_lines(main / f"{cls}_{split}.txt", rows)
    return (
        f"VOCdevkit-style tree VOC2012/ with {n} images of 160x120 holding 1-3 drawn glyphs of\n"
        "the 20 VOC classes (each class its own shape and colours); frequent classes:\n"
        f"{', '.join(VOC_FREQUENT)}. Splits: train {n_train}, val {n - n_train}. Boxes are\n"
        "1-based pixel coordinates as in VOC."
    )


def _write_voc_xml(path, image_id, w, h, boxes):
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "VOC2012"
    ET.SubElement(ann, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(ann, "source")
    ET.SubElement(source, "database").text = "hybridvision SYNTHETIC demo data"
    size = ET.SubElement(ann, "size")
    for tag, v in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(ann, "segmented").text = "0"
    for (x0, y0, x1, y1), cls in boxes:
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = cls
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bb = ET.SubElement(obj, "bndbox")
        # VOC boxes are 1-based and inclusive: pixel column x is coordinate x + 1.
        coords = (
            ("xmin", max(1, math.floor(x0) + 1)),
            ("ymin", max(1, math.floor(y0) + 1)),
            ("xmax", min(w, math.ceil(x1))),
            ("ymax", min(h, math.ceil(y1))),
        )
        for tag, v in coords:
            ET.SubElement(bb, tag).text = str(v)
    ET.indent(ann, space="\t")
    ET.ElementTree(ann).write(path, encoding="utf-8")


def _gen_domains(out, rng, scale):
    per_class = _COUNTS[scale]["domains_per_class"]
    size = 64
    for modality in DOMAIN_MODALITIES:
        for cls in DOMAIN_CLASSES:
            folder = out / modality / cls
            folder.mkdir(parents=True)
            for k in range(per_class):
                if modality == "photo":
                    img = _textured_background(rng, size, size)
                elif modality == "cartoon":
                    img = np.empty((size, size, 3), np.uint8)
                    img[:] = _col(rng.uniform(150, 250, 3))
                else:
                    img = np.full((size, size, 3), int(rng.integers(238, 256)), np.uint8)
                s = rng.uniform(0.6, 0.9) * size
                x0, y0 = rng.uniform(0, size - s, 2)
                angle = math.radians(rng.uniform(-10, 10))
                _draw_glyph(
                    img,
                    rng,
                    _GLYPHS[cls],
                    (x0, y0, x0 + s, y0 + s),
                    modality,
                    angle,
                    flip=bool(rng.random() < 0.5),
                )
                if modality == "photo":
                    img = cv2.GaussianBlur(img, (0, 0), 0.6)
                    noise = rng.normal(0, 5, img.shape)
                    img = np.clip(img + noise, 0, 255).astype(np.uint8)
                _write_jpg(folder / f"{cls}_{k + 1:04d}.jpg", img)
    return (
        f"PACS-like <modality>/<class>/*.jpg, 64x64, {per_class} images per class and modality.\n"
        f"Modalities: photo (shaded, textured, noisy), cartoon (flat colours, thick outlines),\n"
        f"sketch (thin jittered strokes on white). Classes: {', '.join(DOMAIN_CLASSES)}."
    )


# ----------------------------------------------------------------------------
# Cache management and public API
# ----------------------------------------------------------------------------

_GENERATORS = {
    "celeba": _gen_celeba,
    "orientation": lambda out, rng, scale: _gen_face_folders(out, rng, scale, "orientation"),
    "light": lambda out, rng, scale: _gen_face_folders(out, rng, scale, "light"),
    "mnist": _gen_mnist,
    "voc": _gen_voc,
    "domains": _gen_domains,
}


def _write_lines(path, lines):
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _check_name(name):
    if name not in NAMES:
        raise ValueError(f"unknown demo dataset {name!r}: use one of {', '.join(NAMES)}")


def default_base_dir():
    """`$HYBRIDVISION_DEMO_DIR`, else `<repo>/.cache/demo_data` (git-ignored).

    An installed copy (no `setup.cfg` beside the package) uses
    `~/.cache/hybridvision/demo_data` instead of writing into site-packages.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "setup.cfg").is_file():
        return repo / ".cache" / "demo_data"
    return Path.home() / ".cache" / "hybridvision" / "demo_data"


def _stamp_text(name, scale, seed):
    return (
        f"hybridvision demo data: name={name} version={GENERATOR_VERSION} "
        f"scale={scale} seed={seed}\n"
    )


def is_complete(out_dir, name, scale="demo", seed=0):
    """True when `out_dir` holds a finished generation of this exact version."""
    stamp = Path(out_dir) / STAMP
    try:
        return stamp.read_text(encoding="utf-8") == _stamp_text(name, scale, seed)
    except OSError:
        return False


@contextlib.contextmanager
def _lock(out_dir):
    """Serialises generation of one folder across processes (where fcntl exists)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock, generation is still stamped last
        yield
        return
    lock_path = out_dir.parent / f".{out_dir.name}.lock"
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _clear(out_dir):
    """Empties a stale demo folder, refusing to touch one we did not write."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ValueError(f"demo data path {out_dir} is a file: pass a folder path")
    entries = list(out_dir.iterdir())
    if not entries:
        return
    readme = out_dir / README
    ours = readme.is_file() and _README_MARK in readme.read_text(encoding="utf-8", errors="replace")
    if not ours:
        raise ValueError(
            f"{out_dir} is not empty and holds no demo data ({README} missing): "
            "pass an empty or new folder as the output"
        )
    # The stamp goes first: a clear cut short must never leave a "complete" folder.
    (out_dir / STAMP).unlink(missing_ok=True)
    for entry in entries:
        if entry.name == STAMP:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def generate(name, out_dir=None, scale="demo", seed=0, force=False):
    """Generates dataset `name` into `out_dir` (its own folder) unless already there.

    Args:
        name: one of `NAMES`.
        out_dir: the dataset's folder; default `default_base_dir() / name`.
        scale: "demo" (a few hundred images, trains in seconds) or "tiny"
            (a handful per class, for tests).
        seed: the random seed; the same seed gives the same bytes.
        force: regenerate even when a complete stamp is present.

    Returns:
        The dataset folder as a `pathlib.Path`.
    """
    _check_name(name)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: use one of {', '.join(SCALES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir) if out_dir is not None else default_base_dir() / name
    if not force and is_complete(out_dir, name, scale, seed):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _lock(out_dir):
        if not force and is_complete(out_dir, name, scale, seed):
            return out_dir  # another process finished it while we waited
        _clear(out_dir)
        out_dir.mkdir(exist_ok=True)
        # The README goes first so that a half-written folder is still known as ours.
        (out_dir / README).write_text(_readme_header(name, scale, seed), encoding="utf-8")
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        description = _GENERATORS[name](out_dir, rng, scale)
        with open(out_dir / README, "a", encoding="utf-8") as f:
            f.write(description + "\n")
        (out_dir / STAMP).write_text(_stamp_text(name, scale, seed), encoding="utf-8")
    return out_dir


def _readme_header(name, scale, seed):
    return (
        f"{_README_MARK} -- NOT real data.\n\n"
        f"Dataset '{name}', drawn by hybridvision's data_prep/demo_data.py "
        f"(generator version {GENERATOR_VERSION}, scale {scale}, seed {seed}).\n"
        "It lets the demos run offline in seconds; accuracies measured on it say nothing\n"
        "about real data. Delete this folder at any time: it is regenerated on demand.\n\n"
    )


def demo_dir(name, base_dir=None, scale="demo", seed=0):
    """The folder of demo dataset `name`, generated first if needed.

    `base_dir` defaults to `$HYBRIDVISION_DEMO_DIR` or `<repo>/.cache/demo_data`.
    """
    _check_name(name)
    base = Path(base_dir) if base_dir is not None else default_base_dir()
    return generate(name, base / name, scale=scale, seed=seed)


def demo_root(name, base_dir=None, scale="demo", seed=0):
    """The path to hand the dataset's reader (`voc`: the `VOC2012` folder inside)."""
    path = demo_dir(name, base_dir, scale, seed)
    return path / "VOC2012" if name == "voc" else path


def generate_all(base_dir=None, scale="demo", seed=0):
    """Generates every dataset if needed; returns {name: folder}."""
    return {name: demo_dir(name, base_dir, scale, seed) for name in NAMES}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.demo_data",
        description="Generate the synthetic demo datasets (seconds, no download).",
    )
    parser.add_argument("names", nargs="*", help=f"datasets (default: all of {', '.join(NAMES)})")
    parser.add_argument(
        "--out", help=f"base folder (default: ${ENV_VAR} or <repo>/.cache/demo_data)"
    )
    parser.add_argument("--scale", choices=SCALES, default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="regenerate even if up to date")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in NAMES:
            parser.error(f"unknown dataset {name!r}: use one of {', '.join(NAMES)}")
    base = Path(args.out) if args.out else default_base_dir()
    for name in args.names or NAMES:
        path = generate(name, base / name, scale=args.scale, seed=args.seed, force=args.force)
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    from common.cli import main_entry

    main_entry(main)
