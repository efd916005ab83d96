"""Cartoon faces with drawn CelebA attributes: the `celeba`, `orientation` and `light` demo datasets."""

import math

import cv2
import numpy as np

from hybridvision.common.data.demo.primitives import (
    COUNTS,
    blend,
    draw_ellipse,
    draw_lines,
    ellipse_points,
    fill_poly,
    normalised,
    smooth_noise,
    write_jpg,
    write_lines,
)
from hybridvision.common.data.names import CELEBA_ATTRIBUTE_NAMES, CELEBA_LANDMARKS, LIGHT_CLASSES, ORIENTATION_CLASSES

_FACE_SIZE = (89, 109)  # width, height: the shared real CelebA sample's size
# celeba draws e (which drives Attractive) twice: as the eye size and as the clothes' colour, blue (e = -1)
# to red (e = +1), a large area the small demo net sees within a few epochs at 48 px (the eyes are 1-3 px).
_CLOTHES_BY_E = (np.array((200.0, 70.0, 40.0)), np.array((40.0, 40.0, 200.0)))  # BGR blue, red


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
        p=normalised([0.3, 0.25, 0.05 if male else 0.25, 0.02 if young else 0.5, 0.08]),
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
    # The eye-size effect flips sign with Male: what the pixels mean depends on a covariate, so
    # fusing it into a conv's kernel (HybridConv2D) is the right inductive bias; neither the
    # covariates alone nor pixels plus covariates added late (a linear head) can express it.
    logit = (
        3.0 * a["eye_size"] * (-1.0 if male else 1.0)
        + 0.8 * young
        - 0.8 * male
        + 0.8 * smiling
        + 0.8 * a["High_Cheekbones"]
        - 0.8
    )
    a["Attractive"] = r() < 1.0 / (1.0 + math.exp(-logit))
    return a



def _draw_face(rng, attrs, yaw, light, size=_FACE_SIZE, eye_gain=0.3, clothes_by_e=False):
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
    img += smooth_noise(rng, h, w, 4, 10)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)

    # Shoulders, neck and what is worn on them.
    clothes = rng.uniform(30, 220, 3)
    if clothes_by_e:  # e's colour, a little of the random one kept
        t = (attrs["eye_size"] + 1) / 2
        clothes = (1 - t) * _CLOTHES_BY_E[0] + t * _CLOTHES_BY_E[1] + 0.15 * (clothes - 125)
    draw_ellipse(img, (cx, h * 1.04), (u * 0.55, h * 0.2), clothes)
    fill_poly(
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
        fill_poly(img, [(cx - 3, ty), (cx + 3, ty), (cx + 4.5, h), (cx - 4.5, h)], (40, 30, 170))
    if attrs["Wearing_Necklace"]:
        pts = ellipse_points((cx, cy + b_ax * 0.85), (a_ax * 0.5, b_ax * 0.3), 9, 20, 160)
        for x, y in pts:
            draw_ellipse(img, (x, y), (1.1, 1.1), (220, 230, 240))

    # Hair behind the head: long for women, short for men, none when bald.
    hx, hy = cx + hair_dx, cy - b_ax * 0.12
    if not attrs["Bald"]:
        if attrs["Male"]:
            outline = ellipse_points((hx, hy), (a_ax * 1.1, b_ax * 1.0), 40)
            outline = outline[outline[:, 1] <= cy + b_ax * 0.15]
        else:
            top = ellipse_points((hx, hy), (a_ax * 1.22, b_ax * 1.02), 30, 180, 360)
            bottom = cy + b_ax * (1.05 + rng.uniform(0, 0.25))
            outline = np.vstack([[(hx - a_ax * 1.22, bottom)], top, [(hx + a_ax * 1.22, bottom)]])
        if attrs["Wavy_Hair"]:
            centre = np.array([hx, hy])
            d = outline - centre
            ang = np.arctan2(d[:, 1], d[:, 0])
            outline = centre + d * (1 + 0.06 * np.sin(ang * 9))[:, None]
        fill_poly(img, outline, hair)
        if attrs["Straight_Hair"]:
            for k in np.linspace(-0.9, 0.9, 7):
                x = hx + k * a_ax * 1.1
                draw_lines(img, [(x, hy - b_ax * 0.6), (x, outline[:, 1].max() - 2)], hair * 0.7)

    # Ears and earrings.
    ey = cy - b_ax * 0.15
    for side in (-1, 1):
        ex = cx + side * a_ax * (0.97 - 0.1 * side * yaw)
        draw_ellipse(img, (ex, ey + b_ax * 0.1), (a_ax * 0.13, b_ax * 0.17), skin * 0.85)
        if attrs["Wearing_Earrings"]:
            draw_ellipse(img, (ex, ey + b_ax * 0.3), (1.6, 1.6), (40, 200, 230))

    # The face, then what covers it.
    fx = cx + yaw * a_ax * 0.05
    face = np.zeros((h, w), np.uint8)
    draw_ellipse(face, (fx, cy), (a_ax, b_ax), 255)
    blend(img, face, skin)
    rows = np.arange(h, dtype=np.float32)[:, None]
    if not attrs["Bald"]:
        # A slightly larger cap than the face, so no skin-coloured seam shows.
        cap = np.zeros((h, w), np.uint8)
        draw_ellipse(cap, (fx, cy), (a_ax + 0.7, b_ax + 0.7), 255)
        line = 0.55 if attrs["Receding_Hairline"] else (0.2 if attrs["Bangs"] else 0.42)
        hairline = cy - b_ax * line
        if attrs["Bangs"]:
            cols = np.arange(w, dtype=np.float32)[None, :]
            hairline = hairline + 2.0 * np.sin(cols * 1.3)
        blend(img, cap * (rows < hairline), hair)
    mouth_y = cy + b_ax * 0.5
    if not attrs["No_Beard"] and not attrs["Goatee"]:
        blend(img, face * (rows > mouth_y - b_ax * 0.18), hair * 0.8)
    if attrs["5_o_Clock_Shadow"]:
        stipple = (rng.random((h, w)) < 0.5) * (rows > mouth_y - b_ax * 0.15)
        blend(img, (face * stipple).astype(np.uint8), dark, 0.45)
    if attrs["Sideburns"]:
        for side in (-1, 1):
            x = fx + side * a_ax * 0.88
            fill_poly(
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
        draw_ellipse(img, (fx, cy + b_ax * 0.93), (a_ax * 0.45, b_ax * 0.12), dark, 1, 0, 20, 160)
    if not attrs["Young"]:
        for k in range(3):
            y = cy - b_ax * (0.5 - 0.08 * k)
            draw_ellipse(img, (fx + feat_dx * 0.5, y), (a_ax * 0.45, 3), dark, 1, 0, 200, 340)

    # Eyes: the far eye shrinks as the head turns; `eye_size` drives Attractive.
    eye_r = a_ax * 0.14 * (1 + eye_gain * attrs["eye_size"])
    eye_h = eye_r * (0.45 if attrs["Narrow_Eyes"] else 0.8)
    half_sep = a_ax * 0.42 * (1 - 0.12 * abs(yaw))
    eyes = []
    for side in (-1, 1):
        ex = cx + feat_dx + side * half_sep
        ew = eye_r * (1 - 0.3 * max(0.0, side * -yaw))
        eyes.append((ex, ey))
        if attrs["Heavy_Makeup"]:
            draw_ellipse(img, (ex, ey - eye_h * 0.6), (ew * 1.2, eye_h * 1.1), (150, 70, 110))
        draw_ellipse(img, (ex, ey), (ew, eye_h), (245, 245, 245))
        draw_ellipse(img, (ex + yaw * ew * 0.3, ey), (ew * 0.5, eye_h * 0.8), (50, 40, 30))
        draw_ellipse(img, (ex, ey), (ew, eye_h), (20, 20, 20), 1)
        if attrs["Bags_Under_Eyes"]:
            draw_ellipse(img, (ex, ey + eye_h * 1.2), (ew * 0.8, eye_h * 0.6), dark, 1, 0, 20, 160)
        brow_y = ey - eye_h - eye_r * 0.8
        thick = 2.5 if attrs["Bushy_Eyebrows"] else 1.0
        if attrs["Arched_Eyebrows"]:
            draw_ellipse(
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
            draw_lines(img, [(ex - ew * 1.1, brow_y), (ex + ew * 1.1, brow_y)], hair * 0.6, thick)
        if not attrs["Young"]:
            x0 = ex + side * ew * 1.3
            draw_lines(img, [(x0, ey - 2), (x0 + side * 3, ey - 3)], dark)
            draw_lines(img, [(x0, ey + 2), (x0 + side * 3, ey + 3)], dark)
    if attrs["Rosy_Cheeks"] or attrs["High_Cheekbones"]:
        cheeks = np.zeros((h, w), np.uint8)
        for side in (-1, 1):
            draw_ellipse(
                cheeks,
                (cx + feat_dx * 0.8 + side * a_ax * 0.55, cy + b_ax * 0.15),
                (a_ax * 0.18, b_ax * 0.1),
                255,
            )
        if attrs["Rosy_Cheeks"]:
            blend(img, cheeks, (120, 110, 240), 0.6)
        if attrs["High_Cheekbones"]:
            for side in (-1, 1):
                x = cx + feat_dx * 0.8 + side * a_ax * 0.62
                draw_lines(img, [(x - side * 3, cy + b_ax * 0.02), (x, cy + b_ax * 0.22)], dark, 1)

    # Nose: its tip leads the turn, so nose-versus-eyes gives the orientation.
    nose = (cx + feat_dx + yaw * a_ax * 0.22, cy + b_ax * 0.18)
    nose_w = a_ax * (0.2 if attrs["Big_Nose"] else 0.12)
    nose_top = ey + (eye_h if attrs["Pointy_Nose"] else eye_h * 2)
    bridge_x = cx + feat_dx
    draw_lines(
        img,
        [(bridge_x, nose_top), nose, (nose[0] - nose_w * np.sign(yaw or 1), nose[1] - 1)],
        dark,
        1.5 if attrs["Big_Nose"] else 1,
    )
    if attrs["Big_Nose"]:
        draw_ellipse(img, nose, (nose_w, nose_w * 0.6), skin * 0.75)

    # Mouth: a smile is an upward curve with raised corners.
    mx = cx + feat_dx * 0.9
    mw = a_ax * 0.34 * (1.15 if attrs["Big_Lips"] else 1.0) * (1 - 0.15 * abs(yaw))
    lips = (60, 40, 200) if attrs["Wearing_Lipstick"] else (90, 90, 160)
    lip_t = 2.5 if attrs["Big_Lips"] or attrs["Wearing_Lipstick"] else 1.5
    if attrs["Smiling"]:
        curve = b_ax * 0.13
        corners_y = mouth_y - curve
        if attrs["Mouth_Slightly_Open"]:
            draw_ellipse(img, (mx, corners_y), (mw, curve), (50, 30, 60), -1, 0, 0, 180)
        draw_ellipse(img, (mx, corners_y), (mw, curve), lips, round(lip_t), 0, 0, 180)
    else:
        corners_y = mouth_y
        if attrs["Mouth_Slightly_Open"]:
            draw_ellipse(img, (mx, mouth_y), (mw * 0.8, b_ax * 0.05), (50, 30, 60))
        draw_lines(img, [(mx - mw, mouth_y), (mx + mw, mouth_y)], lips, lip_t)
    mouth = [(mx - mw, corners_y), (mx + mw, corners_y)]
    if attrs["Mustache"]:
        draw_lines(
            img,
            [(mx - mw * 0.9, mouth_y - b_ax * 0.14), (mx + mw * 0.9, mouth_y - b_ax * 0.14)],
            hair * 0.5,
            2.5,
        )
    if attrs["Goatee"]:
        draw_ellipse(img, (mx, mouth_y + b_ax * 0.3), (mw * 0.45, b_ax * 0.13), hair * 0.6)

    if attrs["Eyeglasses"]:
        for ex, ey_ in eyes:
            draw_ellipse(img, (ex, ey_), (eye_r * 1.6, eye_r * 1.35), (20, 20, 20), 1)
        (lx, ly), (rx, ry) = eyes
        draw_lines(img, [(lx + eye_r * 1.6, ly), (rx - eye_r * 1.6, ry)], (20, 20, 20))
    if attrs["Wearing_Hat"]:
        hat = rng.uniform(20, 200, 3)
        top = cy - b_ax * 1.25
        brim = cy - b_ax * 0.55
        fill_poly(
            img,
            [
                (hx - a_ax * 0.9, top),
                (hx + a_ax * 0.9, top),
                (hx + a_ax * 1.0, brim),
                (hx - a_ax * 1.0, brim),
            ],
            hat,
        )
        draw_ellipse(img, (hx, brim), (a_ax * 1.45, b_ax * 0.1), hat * 0.8)

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


def generate_celeba(out, rng, scale):
    n = COUNTS[scale]["celeba"]
    img_dir = out / "img_align_celeba"
    img_dir.mkdir()
    attr_rows, part_rows, mark_rows = [], [], []
    n_train, n_val = round(n * 0.7), round(n * 0.15)
    for i in range(n):
        fname = f"{i + 1:06d}.jpg"
        attrs = _sample_face_attributes(rng)
        yaw = rng.uniform(-1, 1)
        light = rng.choice([-1.0, 0.0, 1.0]) * rng.uniform(0.5, 1.0)
        # celeba draws the eye size twice as strongly (radius x (1 + 0.6 e)) as the other face datasets,
        # and e once more as the clothes' colour; orientation and light keep their images.
        img, marks = _draw_face(rng, attrs, yaw, light, eye_gain=0.6, clothes_by_e=True)
        write_jpg(img_dir / fname, img)
        values = "".join(f" {1 if attrs[k] else -1:2d}" for k in CELEBA_ATTRIBUTE_NAMES)
        attr_rows.append(fname + values)
        part_rows.append(f"{fname} {0 if i < n_train else (1 if i < n_train + n_val else 2)}")
        coords = [int(round(v)) for xy in marks for v in xy]
        mark_rows.append(fname + "".join(f" {v:4d}" for v in coords))
    write_lines(out / "list_attr_celeba.txt", [str(n), " ".join(CELEBA_ATTRIBUTE_NAMES), *attr_rows])
    write_lines(out / "list_eval_partition.txt", part_rows)
    write_lines(
        out / "list_landmarks_align_celeba.txt", [str(n), " ".join(CELEBA_LANDMARKS), *mark_rows]
    )
    return (
        "Official CelebA layout with cartoon faces (89x109). Partition 0/1/2 = "
        f"{n_train}/{n_val}/{n - n_train - n_val} images.\n"
        "Attributes are drawn visibly. Attractive ~ Bernoulli(sigmoid(logit)) with\n"
        "  logit = 3*e*(1 - 2*Male) + 0.8*Young - 0.8*Male + 0.8*Smiling + 0.8*High_Cheekbones - 0.8,\n"
        "attributes as 0/1 and e in [-1, 1] drawn twice: as the eye size (radius x (1 + 0.6 e))\n"
        "and as the colour of the clothes (blue at e = -1 to red at e = +1, a little random colour kept).\n"
        "Landmarks are in the pixels of these 89x109 images (the official file: 178x218)."
    )


def generate_face_folders(out, rng, scale, task):
    per_class = COUNTS[scale]["faces_per_class"]
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
                write_jpg(folder / f"{k:06d}.jpg", img)
    what = "head turned to the image's" if task == "orientation" else "light from the image's"
    return (
        f"Class folders train/val/test/<class>/ of 89x109 cartoon faces, {per_class} images "
        f"per class and split.\nClasses {', '.join(classes)}: {what} left / centre / right."
    )

