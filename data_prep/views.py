"""Write original | HSV | threshold-mask views of a folder of images.

    hybridvision views --images faces/ --out views/
    hybridvision views --images faces/ --out sheets/ --per-sheet 24 --columns 3

One PNG per image (`<name>_views.png`, mirroring sub-folders), or contact
sheets of `--per-sheet` images each (`sheet_0001.png`, ... plus
`sheets.csv` saying which image is where). Unreadable images are skipped
and counted.
"""

import csv
import functools
import sys
from pathlib import Path

import cv2
import numpy as np

from hybridvision.common.config import OneLineErrorParser
from hybridvision.data_prep import image_views


def _panel(path, channel, threshold, mask_style):
    image = image_views.read_image(path)
    if image is None:
        return None
    return image_views.views_panel(image, channel, threshold, mask_style)


def _write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def render_one(job, channel="v", threshold=170, mask_style="binary"):
    """Writes one image's views; returns the source path when it was unreadable, else None."""
    source, target = job
    panel = _panel(source, channel, threshold, mask_style)
    if panel is None:
        return str(source)
    _write_png(Path(target), panel)
    return None


def _fit_tile(panel, tile_height, tile_width, caption):
    scale = tile_height / panel.shape[0]
    width = min(tile_width, max(1, round(panel.shape[1] * scale)))
    resized = cv2.resize(panel, (width, tile_height), interpolation=cv2.INTER_AREA)
    caption_height = 16
    tile = np.full((tile_height + caption_height, tile_width, 3), 255, np.uint8)
    tile[:tile_height, :width] = resized
    cv2.putText(
        tile, caption[-40:], (2, tile_height + 12), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1
    )
    return tile


def render_sheet(job, channel="v", threshold=170, mask_style="binary", columns=2, tile_height=128):
    """Writes one contact sheet; returns the list of unreadable source paths."""
    sources, captions, target = job
    panels, bad = [], []
    for source, caption in zip(sources, captions):
        panel = _panel(source, channel, threshold, mask_style)
        if panel is None:
            bad.append(str(source))
        else:
            panels.append((panel, caption))
    if not panels:
        return bad
    # Every tile gets the width of the widest panel at this height, so the grid lines up.
    tile_width = max(round(p.shape[1] * tile_height / p.shape[0]) for p, _ in panels)
    tiles = [_fit_tile(p, tile_height, tile_width, c) for p, c in panels]
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    _write_png(Path(target), np.vstack(rows))
    return bad


def build_parser():
    parser = OneLineErrorParser(
        prog="hybridvision views",
        description="Write original | HSV rendering | threshold mask side by side for every "
        "image of a folder, one PNG per image or as contact sheets. HSV is shown as false "
        "colour (red = hue, green = saturation, blue = value).",
    )
    parser.add_argument("--images", required=True, help="folder of images (searched recursively)")
    parser.add_argument("--out", required=True, help="output folder (not inside --images)")
    parser.add_argument(
        "--channel",
        default="v",
        choices=image_views.CHANNELS,
        help="channel to threshold: HSV h (0..255 full range), s, v, or gray (default v)",
    )
    parser.add_argument(
        "--threshold", type=int, default=170, help="keep pixels strictly above this (default 170)"
    )
    parser.add_argument(
        "--mask-style",
        default="binary",
        choices=image_views.MASK_STYLES,
        help="binary: white mask on black; keep: the original pixels above the threshold",
    )
    parser.add_argument(
        "--per-sheet",
        type=int,
        default=0,
        help="images per contact sheet; 0 (default) writes one PNG per image",
    )
    parser.add_argument("--columns", type=int, default=2, help="views per sheet row (default 2)")
    parser.add_argument(
        "--tile-height", type=int, default=128, help="height of one view on a sheet in px"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    image_views.check_channel(args.channel, args.threshold)
    images, out = Path(args.images), Path(args.out)
    files = image_views.list_images(images)[: args.limit]
    if not files:
        raise FileNotFoundError(
            f"no images ({', '.join(image_views.IMAGE_EXTENSIONS)}) in {images}"
        )
    if out.resolve().is_relative_to(images.resolve()):
        raise ValueError(f"--out {out} lies inside --images {images}: pick a folder outside it")
    if args.per_sheet < 0 or args.columns < 1 or args.tile_height < 8:
        raise ValueError("--per-sheet must be >= 0, --columns >= 1 and --tile-height >= 8")
    options = {"channel": args.channel, "threshold": args.threshold, "mask_style": args.mask_style}

    if args.per_sheet == 0:
        jobs = [(images / f, out / Path(f).with_name(Path(f).stem + "_views.png")) for f in files]
        worker = functools.partial(render_one, **options)
        results = image_views.map_with_progress(worker, jobs, args.workers, "views")
        bad = [r for r in results if r is not None]
        written = len(files) - len(bad)
    else:
        groups = [files[i : i + args.per_sheet] for i in range(0, len(files), args.per_sheet)]
        jobs = [
            ([images / f for f in group], group, out / f"sheet_{n:04d}.png")
            for n, group in enumerate(groups, start=1)
        ]
        worker = functools.partial(
            render_sheet, columns=args.columns, tile_height=args.tile_height, **options
        )
        results = image_views.map_with_progress(
            worker, jobs, args.workers, "views", sizes=[len(g) for g in groups]
        )
        bad = [path for result in results for path in result]
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "sheets.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "sheet", "position"])
            bad_set = set(bad)
            for sources, group, target in jobs:
                kept = [f for s, f in zip(sources, group) if str(s) not in bad_set]
                writer.writerows([f, target.name, i] for i, f in enumerate(kept))
        written = sum(len(r) < len(g) for r, g in zip(results, groups))
    print(f"wrote {written} {'PNGs' if args.per_sheet == 0 else 'sheets'} to {out}")
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        print(f"skipped {len(bad)} unreadable image(s): {shown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
