"""A VOCdevkit-style tree of drawn glyphs: the `voc` demo dataset."""

import math
import xml.etree.ElementTree as ET

from hybridvision.common.data.demo.glyphs import ASPECT, GLYPHS, draw_glyph
from hybridvision.common.data.demo.primitives import COUNTS, normalised, textured_background, write_jpg, write_lines
from hybridvision.common.data.names import VOC_CLASSES

VOC_FREQUENT = ("aeroplane", "bird", "car", "cat", "dog", "person", "pottedplant", "tvmonitor")


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def generate_voc(out, rng, scale):
    n = COUNTS[scale]["voc"]
    w, h = 160, 120
    root = out / "VOC2012"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    weights = normalised([4.0 if c in VOC_FREQUENT else 1.0 for c in VOC_CLASSES])
    ids, present = [], []
    for i in range(n):
        image_id = f"2012_{i + 1:06d}"
        img = textured_background(rng, h, w)
        boxes = []
        for _ in range(int(rng.integers(1, 4))):
            cls = str(rng.choice(VOC_CLASSES, p=weights))
            for _try in range(30):
                s = rng.uniform(40, 90)
                bw = min(s * math.sqrt(ASPECT[cls]), w - 2)
                bh = min(s / math.sqrt(ASPECT[cls]), h - 2)
                bx, by = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
                box = (bx, by, bx + bw, by + bh)
                if all(_iou(box, b) < 0.2 for b, _ in boxes):
                    boxes.append((box, cls))
                    break
        for box, cls in boxes:
            draw_glyph(img, rng, GLYPHS[cls], box, "flat", flip=bool(rng.random() < 0.5))
        write_jpg(root / "JPEGImages" / f"{image_id}.jpg", img)
        _write_voc_xml(root / "Annotations" / f"{image_id}.xml", image_id, w, h, boxes)
        ids.append(image_id)
        present.append({cls for _, cls in boxes})
    n_train = max(1, round(n * 0.7))
    splits = {"train": range(n_train), "val": range(n_train, n), "trainval": range(n)}
    main = root / "ImageSets" / "Main"
    for split, idx in splits.items():
        write_lines(main / f"{split}.txt", [ids[k] for k in idx])
        for cls in VOC_CLASSES:
            rows = [f"{ids[k]} {1 if cls in present[k] else -1:2d}" for k in idx]
            write_lines(main / f"{cls}_{split}.txt", rows)
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
