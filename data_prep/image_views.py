"""HSV and threshold views of an image, shared by `views`, `propose` and `label`.

Everything here works on whole arrays with OpenCV (no Python loop over
pixels), and `map_with_progress` runs a function over many files in
parallel processes while printing progress to stderr.
"""

import concurrent.futures
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# "h" is the full-range hue (0..255, OpenCV's *_FULL conversion) so that every
# channel takes thresholds on the same 0..255 scale.
CHANNELS = ("h", "s", "v", "gray")
MASK_STYLES = ("binary", "keep")


def list_images(folder):
    """Image files under `folder` (recursive), as sorted POSIX paths relative to it.

    Files whose real path lies outside `folder` (a symlink pointing elsewhere)
    are left out, so nothing outside the folder is ever read or served.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a folder")
    real_root = root.resolve()
    found, undecodable = [], []
    for dirpath, _, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = Path(dirpath) / name
            try:
                os.fspath(path).encode("utf-8")
            except UnicodeEncodeError:  # not valid UTF-8: cannot go into the journal, a CSV or a URL
                undecodable.append(repr(os.fsencode(path.relative_to(root))))
                continue
            if not path.resolve().is_relative_to(real_root):
                continue
            found.append(path.relative_to(root).as_posix())
    if undecodable:
        logging.getLogger("hybridvision").warning(
            "skipped %d file(s) whose names are not valid UTF-8 (rename them): %s%s", len(undecodable),
            ", ".join(sorted(undecodable)[:5]), " ..." if len(undecodable) > 5 else "")
    return sorted(found)


def read_image(path):
    """The image as a BGR uint8 array, or None when the file cannot be decoded."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image


def check_channel(channel, threshold):
    if channel not in CHANNELS:
        raise ValueError(f"--channel {channel!r} is not one of {', '.join(CHANNELS)}")
    if not 0 <= threshold <= 255:
        raise ValueError(f"--threshold {threshold} must lie in 0..255")


def channel_values(bgr, channel="v"):
    """One 0..255 uint8 plane of the image: HSV's h, s or v, or gray."""
    check_channel(channel, 0)
    if channel == "gray":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV_FULL)
    return hsv[..., "hsv".index(channel)]


def hsv_rendering(bgr):
    """HSV in false colour like `plt.imshow(hsv)`: red = hue, green = saturation, blue = value."""
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV_FULL)
    # The HSV planes are written as R, G, B; reversing them gives OpenCV's BGR order.
    return np.ascontiguousarray(hsv[..., ::-1])


def threshold_mask(bgr, channel="v", threshold=170):
    """uint8 mask, 255 where the channel is strictly above `threshold`, else 0."""
    check_channel(channel, threshold)
    _, mask = cv2.threshold(channel_values(bgr, channel), threshold, 255, cv2.THRESH_BINARY)
    return mask


def mask_rendering(bgr, mask, style="binary"):
    """The mask as a 3-channel image: white on black, or the original pixels kept on black."""
    if style not in MASK_STYLES:
        raise ValueError(f"--mask-style {style!r} is not one of {', '.join(MASK_STYLES)}")
    if style == "keep":
        return cv2.bitwise_and(bgr, bgr, mask=mask)
    return cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR)


def views_panel(bgr, channel="v", threshold=170, mask_style="binary", gap=4):
    """original | HSV rendering | threshold mask, side by side with a gray gap."""
    mask = threshold_mask(bgr, channel, threshold)
    spacer = np.full((bgr.shape[0], gap, 3), 128, np.uint8)
    parts = [bgr, spacer, hsv_rendering(bgr), spacer, mask_rendering(bgr, mask, mask_style)]
    return np.hstack(parts)


def box_slices(shape, box):
    """Row and column slices of a box given as fractions (x0, y0, x1, y1) of the image size."""
    height, width = shape[:2]
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ValueError(f"--face-box {box} must be fractions x0,y0,x1,y1 with 0 <= x0 < x1 <= 1")
    rows = slice(round(y0 * height), max(round(y1 * height), round(y0 * height) + 1))
    cols = slice(round(x0 * width), max(round(x1 * width), round(x0 * width) + 1))
    return rows, cols


def encode_png(image):
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return buffer.tobytes()


def parse_box(text):
    """'0.2,0.3,0.8,0.85' -> a checked (x0, y0, x1, y1) tuple."""
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise ValueError(f"--face-box {text!r} must be four comma-separated fractions x0,y0,x1,y1")
    box_slices((2, 2), box)
    return box


class _Progress:
    """A one-line progress counter on stderr, redrawn at most a few times a second."""

    def __init__(self, total, label, stream=None):
        self.total, self.label = total, label
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = self.last = time.monotonic()
        self.tty = getattr(self.stream, "isatty", lambda: False)()

    def update(self, count=1):
        self.done += count
        now = time.monotonic()
        # Without a terminal print every tenth, so logs stay short.
        step = max(1, self.total // 10)
        if (self.tty and now - self.last > 0.2) or (not self.tty and self.done % step == 0):
            self._write(end="\r" if self.tty else "\n")
            self.last = now
            self.written = self.done

    def close(self):
        if self.tty or getattr(self, "written", None) != self.done:
            self._write(end="\n")

    def _write(self, end):
        rate = self.done / max(time.monotonic() - self.start, 1e-9)
        self.stream.write(f"{self.label}: {self.done}/{self.total} ({rate:.0f}/s){end}")
        self.stream.flush()


def _init_worker():
    # One OpenCV thread per process: the processes already use every core.
    cv2.setNumThreads(1)


def map_with_progress(function, items, workers=None, label="progress", sizes=None):
    """`[function(item) for item in items]`, over `workers` processes, with progress.

    `function` must be picklable (a module-level function or a
    functools.partial of one). `workers` <= 1 runs in this process. `sizes`
    gives how many files each item stands for (for progress), default 1.
    """
    items = list(items)
    sizes = list(sizes) if sizes is not None else [1] * len(items)
    if workers is None:
        workers = os.cpu_count() or 1
    workers = max(1, min(workers, len(items)))
    progress = _Progress(sum(sizes), label)
    results = []
    if workers == 1:
        for item, size in zip(items, sizes):
            results.append(function(item))
            progress.update(size)
    else:
        # spawn, not fork: the parent may hold TensorFlow's threads, which fork copies badly.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker
        ) as pool:
            chunksize = max(1, len(items) // (workers * 8))
            for result, size in zip(pool.map(function, items, chunksize=chunksize), sizes):
                results.append(result)
                progress.update(size)
    progress.close()
    return results
