"""PACS-like photo / cartoon / sketch folders of drawn glyphs: the `domains` demo dataset."""

import math

import cv2
import numpy as np

from hybridvision.common.data.demo.glyphs import GLYPHS, draw_glyph
from hybridvision.common.data.demo.primitives import COUNTS, bgr, textured_background, write_jpg

DOMAIN_MODALITIES = ("photo", "cartoon", "sketch")
DOMAIN_CLASSES = ("house", "tree", "sun", "car", "boat")


def generate_domains(out, rng, scale):
    per_class = COUNTS[scale]["domains_per_class"]
    size = 64
    for modality in DOMAIN_MODALITIES:
        for cls in DOMAIN_CLASSES:
            folder = out / modality / cls
            folder.mkdir(parents=True)
            for k in range(per_class):
                if modality == "photo":
                    img = textured_background(rng, size, size)
                elif modality == "cartoon":
                    img = np.empty((size, size, 3), np.uint8)
                    img[:] = bgr(rng.uniform(150, 250, 3))
                else:
                    img = np.full((size, size, 3), int(rng.integers(238, 256)), np.uint8)
                s = rng.uniform(0.6, 0.9) * size
                x0, y0 = rng.uniform(0, size - s, 2)
                angle = math.radians(rng.uniform(-10, 10))
                draw_glyph(
                    img,
                    rng,
                    GLYPHS[cls],
                    (x0, y0, x0 + s, y0 + s),
                    modality,
                    angle,
                    flip=bool(rng.random() < 0.5),
                )
                if modality == "photo":
                    img = cv2.GaussianBlur(img, (0, 0), 0.6)
                    noise = rng.normal(0, 5, img.shape)
                    img = np.clip(img + noise, 0, 255).astype(np.uint8)
                write_jpg(folder / f"{cls}_{k + 1:04d}.jpg", img)
    return (
        f"PACS-like <modality>/<class>/*.jpg, 64x64, {per_class} images per class and modality.\n"
        f"Modalities: photo (shaded, textured, noisy), cartoon (flat colours, thick outlines),\n"
        f"sketch (thin jittered strokes on white). Classes: {', '.join(DOMAIN_CLASSES)}."
    )

