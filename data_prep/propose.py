"""Propose a label and a confidence for every image, to label faster.

    hybridvision propose --task light --images faces/ --out light.csv
    hybridvision propose --task orientation --images img_align_celeba/ --out orient.csv

Light direction: where the bright mass of the thresholded face lies. In the
face box (aligned faces: the face sits in the middle of the image) count the
pixels above `--threshold` in the left and the right half;
`bright_balance = (right - left) / (right + left)`, below
`-side_threshold` -> `left_light`, above -> `right_light`, else
`center_light`.

Orientation (`--method`):
- `landmarks`: the official CelebA `list_landmarks_align_celeba.txt`
  (next to the image folder, in `../Anno/`, or `--landmarks FILE`);
  `nose_offset = (nose_x - eyes' midpoint x) / inter-eye distance`.
- `mtcnn`: the same offset from the optional `mtcnn` package's landmarks
  (`pip install mtcnn`; it ships its weights, no download at run time).
- `symmetry`: a landmark-free HEURISTIC, much weaker: on aligned faces the
  eyes stay put and a turned head shows more cheek on the side away from the
  nose, so the skin mass (pixels coloured like the nose patch) shifts
  opposite to the nose. `skin_offset` is that shift over half the width.
- `auto` (default): `landmarks` when the file is found, else `mtcnn` when
  installed, else an error that says how to get either.

"left" is always the image's left. Confidence is the distance of the
measured value from the nearest decision threshold, over the threshold,
capped at 1: 0 = on the fence, 1 = clear. The CSV has `file` (relative to
`--images`), `proposal`, `confidence`, `method` and the measured values;
images the method cannot measure (no face found, no landmark row) get an
empty proposal and confidence 0; unreadable images are skipped and counted.
"""

import functools
import importlib
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from hybridvision.common.cli import UserError
from hybridvision.common.config import OneLineErrorParser
from hybridvision.common.data.celeba_files import LANDMARK_FILE as LANDMARKS_FILENAME
from hybridvision.common.data.celeba_files import read_landmarks
from hybridvision.common.data.names import CELEBA_LANDMARKS as LANDMARK_COLUMNS
from hybridvision.common.data.names import LIGHT_CLASSES, ORIENTATION_CLASSES, TASK_CLASSES  # noqa: F401 (part of this module's API)
from hybridvision.data_prep import agreement, image_views

# Chosen on the train half of ../shared/data/faces_orient_light (see data_prep/README.md).
DEFAULT_SIDE_THRESHOLDS = {"light": 0.15, "landmarks": 0.1, "mtcnn": 0.1, "symmetry": 0.07}
DEFAULT_FACE_BOX = (0.25, 0.3, 0.75, 0.85)
# Below this share of bright pixels in the face the balance means little.
MIN_BRIGHT_FRACTION = 0.05
MTCNN_MISSING = (
    "orientation needs face landmarks: put {name} next to the image folder, pass "
    "--landmarks FILE, or `pip install mtcnn` (ships its weights); "
    "--method symmetry gives a weaker landmark-free heuristic"
)


def decide(value, side_threshold, classes):
    """(label, confidence) for a signed value: below -t -> classes[0], above t -> classes[2]."""
    if value is None or not np.isfinite(value):
        return "", 0.0
    if value < -side_threshold:
        label = classes[0]
    elif value > side_threshold:
        label = classes[2]
    else:
        label = classes[1]
    confidence = min(1.0, abs(abs(value) - side_threshold) / side_threshold)
    return label, round(float(confidence), 4)


def measure_light(bgr, channel="v", threshold=170, face_box=DEFAULT_FACE_BOX):
    """Shares of bright pixels in the left and right half of the face box, and their balance."""
    mask = image_views.threshold_mask(bgr, channel, threshold)
    rows, cols = image_views.box_slices(mask.shape, face_box)
    face = mask[rows, cols] > 0
    half = face.shape[1] // 2
    left = float(face[:, :half].mean()) if half else 0.0
    right = float(face[:, face.shape[1] - half :].mean()) if half else 0.0
    balance = (right - left) / (right + left) if right + left > 0 else 0.0
    return {
        "bright_left": round(left, 4),
        "bright_right": round(right, 4),
        "bright_balance": round(balance, 4),
        "bright_fraction": round(float(face.mean()), 4),
    }


def measure_skin_symmetry(
    bgr, tolerance=12.0, band=(0.1, 0.4, 0.9, 0.8), reference=(0.42, 0.52, 0.58, 0.66)
):
    """Horizontal shift of the skin mass in the face band, over half the band's width.

    Skin = pixels whose Lab colour (lightness weighted 0.3, so shading
    matters less) lies within `tolerance` of the median colour of the nose
    patch `reference`; both boxes are fractions of an aligned face image.
    """
    lab = cv2.cvtColor(cv2.GaussianBlur(bgr, (3, 3), 0), cv2.COLOR_BGR2Lab).astype(np.float32)
    ref_rows, ref_cols = image_views.box_slices(lab.shape, reference)
    skin_colour = np.median(lab[ref_rows, ref_cols].reshape(-1, 3), axis=0)
    difference = lab - skin_colour
    distance = np.sqrt(
        0.3 * difference[..., 0] ** 2 + difference[..., 1] ** 2 + difference[..., 2] ** 2
    )
    rows, cols = image_views.box_slices(lab.shape, band)
    raw = (distance[rows, cols] < tolerance).astype(np.uint8)
    # Opening drops specks; a face with only specks keeps them rather than nothing.
    skin = cv2.morphologyEx(raw, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    skin = skin if skin.any() else raw
    xs = np.nonzero(skin)[1]
    width = skin.shape[1]
    offset = (xs.mean() - (width - 1) / 2) / (width / 2) if xs.size else float("nan")
    return {"skin_offset": round(float(offset), 4), "skin_fraction": round(float(skin.mean()), 4)}


def nose_offset(eye_a_x, eye_b_x, nose_x):
    """(nose x - eyes' midpoint x) / inter-eye distance; negative = nose to the image's left."""
    distance = abs(eye_b_x - eye_a_x)
    if distance == 0:
        return float("nan"), 0.0
    return (nose_x - (eye_a_x + eye_b_x) / 2) / distance, float(distance)


def read_celeba_landmarks(path):
    """{file name: {column: value}} from the official aligned-landmarks file (`hybridvision.common.data.celeba_files`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--landmarks {path} does not exist")
    table = read_landmarks(path)
    missing = [name for name in LANDMARK_COLUMNS if name not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}; the header line must name {' '.join(LANDMARK_COLUMNS)}")
    values = table[list(LANDMARK_COLUMNS)].astype(float).to_dict("records")
    return dict(zip(table["file"], values))


def find_landmarks_file(images_dir):
    """The official landmarks file next to the image folder (CelebA layouts), or None."""
    images_dir = Path(images_dir).resolve()
    for folder in (
        images_dir,
        images_dir.parent,
        images_dir.parent / "Anno",
        images_dir.parent.parent / "Anno",
    ):
        candidate = folder / LANDMARKS_FILENAME
        if candidate.is_file():
            return candidate
    return None


def load_mtcnn():
    """The optional mtcnn detector, imported only when asked for."""
    try:
        module = importlib.import_module("mtcnn")
    except ImportError:
        return None
    return module.MTCNN()


def _measure_file(path, task, method, channel, threshold, face_box):
    image = image_views.read_image(path)
    if image is None:
        return None
    if task == "light":
        return measure_light(image, channel, threshold, face_box)
    if method == "symmetry":
        return measure_skin_symmetry(image)
    raise ValueError(f"method {method} is not measured per file")


def _landmark_row(table, file):
    values = table.get(Path(file).name)
    if values is None:
        return {"nose_offset": float("nan"), "eye_distance": float("nan")}
    offset, distance = nose_offset(values["lefteye_x"], values["righteye_x"], values["nose_x"])
    return {"nose_offset": round(offset, 4), "eye_distance": distance}


def _mtcnn_row(detector, path):
    image = image_views.read_image(path)
    if image is None:
        return None
    faces = detector.detect_faces(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if not faces:
        return {"nose_offset": float("nan"), "eye_distance": float("nan"), "face_score": 0.0}
    face = max(faces, key=lambda f: f["confidence"])
    points = face["keypoints"]
    offset, distance = nose_offset(points["left_eye"][0], points["right_eye"][0], points["nose"][0])
    return {
        "nose_offset": round(offset, 4),
        "eye_distance": round(distance, 2),
        "face_score": round(float(face["confidence"]), 4),
    }


def resolve_method(task, method, images_dir, landmarks=None):
    """The method that will run ('light' for the light task) and the landmarks file if any."""
    if task == "light":
        return "light", None
    if method in ("auto", "landmarks"):
        path = Path(landmarks) if landmarks else find_landmarks_file(images_dir)
        if path is not None:
            return "landmarks", path
        if method == "landmarks":
            raise FileNotFoundError(
                f"no {LANDMARKS_FILENAME} next to {images_dir}: pass --landmarks FILE"
            )
    if method in ("auto", "mtcnn"):
        if importlib.util.find_spec("mtcnn") is None:
            raise ImportError(MTCNN_MISSING.format(name=LANDMARKS_FILENAME))
        return "mtcnn", None
    return "symmetry", None


def propose(
    images_dir,
    task,
    method="auto",
    landmarks=None,
    side_threshold=None,
    channel="v",
    threshold=170,
    face_box=DEFAULT_FACE_BOX,
    workers=None,
    limit=None,
):
    """A DataFrame of proposals for the images under `images_dir`, and the unreadable files.

    Returns:
        (table, skipped): table with columns file, proposal, confidence,
        method and the measured values; skipped = unreadable files.
    """
    if task not in TASK_CLASSES:
        raise ValueError(f"--task {task!r} must be one of {', '.join(TASK_CLASSES)}")
    image_views.check_channel(channel, threshold)
    images_dir = Path(images_dir)
    files = image_views.list_images(images_dir)[:limit]
    if not files:
        raise FileNotFoundError(f"no images in {images_dir}")
    method, landmarks_path = resolve_method(task, method, images_dir, landmarks)
    if side_threshold is None:
        side_threshold = DEFAULT_SIDE_THRESHOLDS[method]
    if side_threshold <= 0:
        raise ValueError(f"--side-threshold {side_threshold} must be > 0")

    if method == "landmarks":
        table = read_celeba_landmarks(landmarks_path)
        measured = [_landmark_row(table, f) for f in files]
    elif method == "mtcnn":
        detector = load_mtcnn()
        measured = []
        progress = image_views._Progress(len(files), "mtcnn")
        for file in files:
            measured.append(_mtcnn_row(detector, images_dir / file))
            progress.update()
        progress.close()
    else:
        worker = functools.partial(
            _measure_file,
            task=task,
            method=method,
            channel=channel,
            threshold=threshold,
            face_box=face_box,
        )
        measured = image_views.map_with_progress(
            worker, [images_dir / f for f in files], workers, f"propose {task}"
        )

    value_column = {"light": "bright_balance", "symmetry": "skin_offset"}.get(method, "nose_offset")
    # The skin mass moves away from the nose, so its shift votes the other way.
    sign = -1.0 if method == "symmetry" else 1.0
    rows, skipped = [], []
    for file, values in zip(files, measured):
        if values is None:
            skipped.append(file)
            continue
        label, confidence = decide(sign * values[value_column], side_threshold, TASK_CLASSES[task])
        if method == "light" and values["bright_fraction"] < MIN_BRIGHT_FRACTION:
            confidence = round(confidence * values["bright_fraction"] / MIN_BRIGHT_FRACTION, 4)
        rows.append(
            {"file": file, "proposal": label, "confidence": confidence, "method": method, **values}
        )
    if not rows:
        return pd.DataFrame(columns=["file", "proposal", "confidence", "method"]), skipped
    return pd.DataFrame(rows), skipped


def build_parser():
    parser = OneLineErrorParser(
        prog="hybridvision propose",
        description="Propose a label and a confidence for every image (light direction or face "
        "orientation) and write them to a CSV.",
        epilog="Orientation methods: landmarks (official CelebA landmark file), mtcnn (optional "
        "package: pip install mtcnn), symmetry (landmark-free heuristic, weaker), auto.",
    )
    parser.add_argument("--task", required=True, choices=sorted(TASK_CLASSES))
    parser.add_argument("--images", required=True, help="folder of images (recursive)")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument(
        "--method",
        default="auto",
        choices=("auto", "landmarks", "mtcnn", "symmetry"),
        help="orientation only (default auto: landmarks file, else mtcnn)",
    )
    parser.add_argument(
        "--landmarks",
        default=None,
        help=f"path of {LANDMARKS_FILENAME} (default: looked up next to --images)",
    )
    parser.add_argument(
        "--side-threshold",
        type=float,
        default=None,
        help="|value| above this proposes left/right; defaults: "
        + ", ".join(f"{k} {v}" for k, v in DEFAULT_SIDE_THRESHOLDS.items()),
    )
    parser.add_argument(
        "--channel",
        default="v",
        choices=image_views.CHANNELS,
        help="light: channel to threshold (default v)",
    )
    parser.add_argument(
        "--threshold",
        type=int,
        default=170,
        help="light: bright = channel above this (default 170)",
    )
    parser.add_argument(
        "--face-box",
        default=",".join(map(str, DEFAULT_FACE_BOX)),
        help="light: face box as fractions x0,y0,x1,y1 (default %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default all cores)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument(
        "--labels-dir",
        default=None,
        help="also print agreement with the labels in these class folders",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    table, skipped = propose(
        args.images,
        args.task,
        args.method,
        args.landmarks,
        args.side_threshold,
        args.channel,
        args.threshold,
        image_views.parse_box(args.face_box),
        args.workers,
        args.limit,
    )
    if skipped and table.empty:
        shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        raise UserError(f"none of the {len(skipped)} image(s) under {args.images} could be read ({shown}); "
                        "nothing written")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    unmeasured = int((table["proposal"] == "").sum())
    counts = table["proposal"].replace("", "(none)").value_counts().to_dict()
    method = table["method"].iloc[0] if len(table) else "-"
    print(f"wrote {len(table)} proposals to {out} ({method}): {counts}")
    if unmeasured:
        print(f"{unmeasured} image(s) could not be measured (empty proposal)", file=sys.stderr)
    if skipped:
        shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        print(f"skipped {len(skipped)} unreadable image(s): {shown}", file=sys.stderr)
    if args.labels_dir:
        print(agreement.report(table, args.labels_dir, TASK_CLASSES[args.task]))
    return 0


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main, expected=(ImportError,))
