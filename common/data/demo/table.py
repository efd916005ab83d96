"""A table of images and covariates (labels.csv): a numeric, a categorical and missing covariates, three classes."""

import cv2
import numpy as np

from hybridvision.common.data.demo.primitives import COUNTS, textured_background, write_jpg, write_lines

CLASSES = ("low", "mid", "high")
SITES = ("arm", "leg", "trunk", "face")
# P(site | class): the site tells the class apart a little, as does age.
_SITE_GIVEN_CLASS = np.array([[0.5, 0.3, 0.1, 0.1], [0.2, 0.3, 0.3, 0.2], [0.1, 0.1, 0.3, 0.5]])
_SIZE = 48


def generate_table(out, rng, scale):
    n = COUNTS[scale]["table"]
    (out / "images").mkdir()
    rows = ["image,grade,age,site"]
    for i in range(n):
        k = i % len(CLASSES)  # balanced classes
        img = textured_background(rng, _SIZE, _SIZE)
        # The lesion's radius grows with the class, with an overlap between neighbours.
        radius = 7 + 4 * k + rng.uniform(-3, 3)
        centre = rng.uniform(18, 30, 2)
        colour = tuple(int(v) for v in rng.uniform(20, 90, 3))
        cv2.circle(img, (int(centre[0]), int(centre[1])), int(round(radius)), colour, -1, cv2.LINE_AA)
        name = f"images/{i + 1:04d}.jpg"
        write_jpg(out / name, img)
        age = "" if rng.random() < 0.1 else f"{40 + 10 * k + rng.normal(0, 12):.0f}"
        site = "" if rng.random() < 0.1 else SITES[rng.choice(len(SITES), p=_SITE_GIVEN_CLASS[k])]
        rows.append(f"{name},{CLASSES[k]},{age},{site}")
    write_lines(out / "labels.csv", rows)
    return (
        f"A table of {n} images and covariates: labels.csv with image, grade ({'/'.join(CLASSES)}, balanced), age\n"
        f"(a number; about 10% empty) and site ({'/'.join(SITES)}; about 10% empty). The grade shows as the size of\n"
        "a dark disk (radius 7 + 4 x class +- 3 px on 48x48 images); age (40 + 10 x class + N(0, 12)) and site\n"
        "(a class-dependent mix) tell it apart a little too. No split column: the app splits it (seeded, stratified)."
    )
