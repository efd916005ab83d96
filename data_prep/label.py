"""A fast local labeller that never loses a label.

    hybridvision label --task light --images faces/ --journal labels/ \
        --proposals light.csv --order confidence
    hybridvision label export --journal labels/ --to-folders labelled/
    hybridvision label export --journal labels/ --to-csv labels.csv

Serves one page on 127.0.0.1 only and opens it in the browser
(`--no-browser` to not). The page shows the image, its HSV rendering, its
threshold mask and the proposal; press a class's number or first letter,
Enter to accept the proposal, s or Space to skip, u / z / Backspace to undo.
Every action is appended to `<journal>/labels.jsonl` and fsync'ed before
the response that shows the next image, so killing the labeller loses
nothing, and starting it again continues at the first image not yet
labelled or skipped. The next images are prefetched by the page. Only the
listed images of `--images` are ever served.
"""

import collections
import errno
import http.server
import json
import mimetypes
import sys
import threading
import urllib.parse
import webbrowser
from pathlib import Path

import pandas as pd

from hybridvision.common.config import OneLineErrorParser
from hybridvision.common.data.names import TASK_CLASSES
from hybridvision.data_prep import image_views
from hybridvision.data_prep._label_page import PAGE
from hybridvision.data_prep.journal import LabelJournal, journal_file
from hybridvision.data_prep.split import MODES, place_file, unique_names

SKIP_KEYS = ("s", " ")
UNDO_KEYS = ("u", "z", "Backspace")
ACCEPT_KEYS = ("Enter",)
MAX_BODY = 64 * 1024
# Seconds the labeller waits for the next bytes of a request (its line, headers, body) before closing it.
REQUEST_TIMEOUT = 10.0


def read_proposals(path):
    """{file: {"proposal", "confidence", "measured"}} from a hybridvision.data_prep.propose CSV."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--proposals {path} does not exist")
    table = pd.read_csv(path, keep_default_na=False)
    for column in ("file", "proposal", "confidence"):
        if column not in table.columns:
            raise ValueError(
                f"--proposals {path} has no column {column!r}: write it with hybridvision.data_prep.propose"
            )
    extra = [c for c in table.columns if c not in ("file", "proposal", "confidence", "method")]
    result = {}
    for row in table.to_dict("records"):
        confidence = pd.to_numeric(row["confidence"], errors="coerce")
        result[str(row["file"])] = {
            "proposal": str(row["proposal"]),
            "confidence": None if pd.isna(confidence) else float(confidence),
            "measured": {c: row[c] for c in extra if str(row[c]) not in ("", "nan")},
        }
    return result


class LabelSession:
    """The labeller's state: image order, journal, proposals; thread-safe actions.

    Args:
        images_dir: folder of images (recursive).
        journal: journal folder (gets labels.jsonl) or .jsonl file.
        classes: class names, in key order (key 1 = first class).
        task: task name recorded in the journal.
        order: "file" (sorted paths) or "confidence" (lowest proposal confidence first).
        proposals: CSV from hybridvision.data_prep.propose, needed for order "confidence".
        channel, threshold, mask_style: the threshold view.
        prefetch: how many next images the page loads ahead.

    Example:
        >>> session = LabelSession("faces/", "labels/", ("left", "center", "right"))
        >>> first = session.current()
        >>> code, state, error = session.act("label", first, "left")  # on disk now
        >>> state["current"]["file"] != first
        True

    Reference:
        The hand-labelling step of the face orientation / light-source
        study this project reproduces (HSV and V > 170 threshold views).
    """

    def __init__(
        self,
        images_dir,
        journal,
        classes,
        task=None,
        order="file",
        proposals=None,
        channel="v",
        threshold=170,
        mask_style="binary",
        prefetch=5,
    ):
        self.root = Path(images_dir)
        self.real_root = self.root.resolve()
        self.classes = tuple(classes)
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(
                f"--classes {','.join(self.classes)} must be two or more distinct names"
            )
        image_views.check_channel(channel, threshold)
        self.channel, self.threshold, self.mask_style = channel, threshold, mask_style
        self.prefetch = prefetch
        files = image_views.list_images(self.root)
        if not files:
            raise FileNotFoundError(f"no images in {self.root}")
        self.proposals = read_proposals(proposals)
        if order == "confidence":
            if not self.proposals:
                raise ValueError(
                    "--order confidence needs --proposals CSV (from hybridvision.data_prep.propose)"
                )
            # Images with no proposal know least, so they count as confidence 0.
            files.sort(key=lambda f: ((self.proposals.get(f) or {}).get("confidence") or 0.0, f))
        elif order != "file":
            raise ValueError(f"--order {order!r} must be file or confidence")
        self.order = files
        self.position = {f: i for i, f in enumerate(files)}
        self.journal = LabelJournal(journal)
        self.journal.append(
            "start",
            images=str(self.real_root),
            task=task,
            classes=list(self.classes),
            order=order,
            proposals=str(Path(proposals).resolve()) if proposals else None,
        )
        self.done = self.journal.done()
        self.cursor = 0
        self.seq = 0
        self.message = ""
        self.lock = threading.Lock()
        self._views = collections.OrderedDict()
        self._views_lock = threading.Lock()
        self.keys, self.legend = self._keys()

    def _keys(self):
        keys, legend = {}, []
        reserved = set(SKIP_KEYS + UNDO_KEYS)
        initials = collections.Counter(c[0].lower() for c in self.classes)
        for number, name in enumerate(self.classes, start=1):
            shown = []
            if number <= 9:
                keys[str(number)] = {"op": "label", "label": name}
                shown.append(str(number))
            letter = name[0].lower()
            if initials[letter] == 1 and letter not in reserved and not letter.isdigit():
                keys[letter] = {"op": "label", "label": name}
                shown.append(letter)
            legend.append([shown, name])
        for group, action, what in (
            (ACCEPT_KEYS, "accept", "accept proposal"),
            (SKIP_KEYS, "skip", "skip (unclear)"),
            (UNDO_KEYS, "undo", "undo"),
        ):
            for key in group:
                keys[key] = {"op": action}
            legend.append([["Space" if k == " " else k for k in group], what])
        return keys, legend

    def _pending(self, count):
        """The next `count` files not yet done, from the cursor on."""
        found = []
        i = self.cursor
        while i < len(self.order) and len(found) < count:
            if self.order[i] not in self.done:
                found.append(self.order[i])
            i += 1
        return found

    def _advance(self):
        while self.cursor < len(self.order) and self.order[self.cursor] in self.done:
            self.cursor += 1

    def current(self):
        with self.lock:
            self._advance()
            pending = self._pending(1)
        return pending[0] if pending else None

    def _item(self, file):
        quoted = urllib.parse.quote(file)
        proposal = self.proposals.get(file, {})
        return {
            "file": file,
            "original": f"/image/{quoted}",
            "hsv": f"/view/hsv/{quoted}",
            "mask": f"/view/mask/{quoted}",
            "proposal": proposal.get("proposal", ""),
            "confidence": proposal.get("confidence"),
            "measured": proposal.get("measured", {}),
        }

    def state(self):
        """What the page shows: the current image, the ones to prefetch, counts, keys."""
        with self.lock:
            self._advance()
            pending = self._pending(1 + self.prefetch)
            labels = self.journal.labels()
            return {
                "seq": self.seq,
                "current": self._item(pending[0]) if pending else None,
                "upcoming": [self._item(f) for f in pending[1:]],
                "done": sum(f in self.done for f in self.order),
                "labelled": sum(f in labels for f in self.order),
                "total": len(self.order),
                "classes": list(self.classes),
                "keys": self.keys,
                "legend": self.legend,
                "message": self.message,
                "journal": str(self.journal.path),
                "mask_caption": f"{self.channel} > {self.threshold}",
            }

    def act(self, op, file=None, label=None):
        """Applies a label / skip / undo; returns (HTTP status, state, error or None).

        The journal record is on disk before this returns.
        """
        with self.lock:
            self._advance()
            pending = self._pending(1)
            current = pending[0] if pending else None
            error = None
            if op in ("label", "skip"):
                if op == "label" and label not in self.classes:
                    return 400, None, f"unknown label {label!r}: one of {', '.join(self.classes)}"
                if file != current:
                    # Another tab got there first: show what is really next.
                    error = f"{file} is not the current image any more; showing {current}"
                else:
                    fields = {"label": label} if op == "label" else {}
                    extra = self.proposals.get(file, {})
                    self.journal.append(op, file=file, proposal=extra.get("proposal"), **fields)
                    self.done.add(file)
                    self.message = (
                        f"saved {file} -> {label}" if op == "label" else f"skipped {file}"
                    )
            elif op == "undo":
                undone = self.journal.undo()
                if undone is None:
                    self.message = "nothing to undo"
                else:
                    self.done = self.journal.done()
                    self.cursor = min(self.cursor, self.position.get(undone["file"], 0))
                    was = (
                        f" (was {undone['label']})" if undone["op"] == "label" else " (was skipped)"
                    )
                    self.message = f"undid {undone['file']}{was}"
            else:
                return 400, None, f"unknown op {op!r}: label, skip or undo"
            self.seq += 1
        return (409 if error else 200), self.state(), error

    def image_path(self, relative):
        """(status, path): 200 and the file, 403 for paths that leave the folder, 404 for others."""
        parts = relative.replace("\\", "/").split("/")
        if (
            not relative
            or "\x00" in relative
            or relative.startswith(("/", "\\"))
            or ".." in parts
            or ":" in parts[0]
        ):
            return 403, None
        if relative not in self.position:
            return 404, None
        path = (self.root / relative).resolve()
        # Checked again at serve time: a symlink may have been swapped since the listing.
        if not path.is_relative_to(self.real_root):
            return 403, None
        return 200, path

    def view_png(self, kind, path):
        key = (kind, str(path))
        with self._views_lock:
            if key in self._views:
                self._views.move_to_end(key)
                return self._views[key]
        image = image_views.read_image(path)
        if image is None:
            return None
        if kind == "hsv":
            view = image_views.hsv_rendering(image)
        else:
            mask = image_views.threshold_mask(image, self.channel, self.threshold)
            view = image_views.mask_rendering(image, mask, self.mask_style)
        data = image_views.encode_png(view)
        with self._views_lock:
            self._views[key] = data
            while len(self._views) > 512:
                self._views.popitem(last=False)
        return data

    def close(self):
        self.journal.close()


def make_handler(session, verbose=False):
    """The request handler class bound to `session`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "hybridvision-labeller"
        # A client that stops sending (a Content-Length promising more body than comes) would hold a thread forever.
        timeout = REQUEST_TIMEOUT

        def log_message(self, format, *args):
            if verbose:
                super().log_message(format, *args)

        def _send(self, code, body, content_type, cache=False):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code, payload):
            self._send(
                code, json.dumps(payload, allow_nan=False, default=str).encode(), "application/json"
            )

        def _host_ok(self):
            # Refuse other host names: a DNS-rebinding page must not reach the labeller.
            port = self.server.server_address[1]
            return self.headers.get("Host", "") in (f"127.0.0.1:{port}", f"localhost:{port}")

        def do_GET(self):
            if not self._host_ok():
                return self._json(403, {"error": "forbidden host"})
            path = urllib.parse.unquote(self.path.split("?", 1)[0])
            if path in ("/", "/index.html"):
                return self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            if path == "/api/state":
                return self._json(200, {"state": session.state()})
            for prefix, kind in (
                ("/image/", "image"),
                ("/view/hsv/", "hsv"),
                ("/view/mask/", "mask"),
            ):
                if path.startswith(prefix):
                    return self._serve_image(kind, path[len(prefix) :])
            return self._json(404, {"error": "not found"})

        def _serve_image(self, kind, relative):
            code, file = session.image_path(relative)
            if code != 200:
                return self._json(code, {"error": "forbidden" if code == 403 else "not found"})
            if kind == "image":
                content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                return self._send(200, file.read_bytes(), content_type, cache=True)
            data = session.view_png(kind, file)
            if data is None:
                return self._json(404, {"error": f"{relative} cannot be decoded"})
            return self._send(200, data, "image/png", cache=True)

        def do_POST(self):
            if not self._host_ok():
                return self._json(403, {"error": "forbidden host"})
            if self.path != "/api/action":
                return self._json(404, {"error": "not found"})
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                return self._json(415, {"error": "send application/json"})
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self._json(400, {"error": "Content-Length must be a number of bytes"})
            if not 0 < length <= MAX_BODY:
                return self._json(400, {"error": "bad body length"})
            try:
                body = json.loads(self.rfile.read(length))
            except TimeoutError:
                self.close_connection = True
                return self._json(408, {"error": f"the body did not arrive within {self.timeout:g} s"})
            except (ValueError, RecursionError):  # RecursionError: JSON nested too deep for the parser
                return self._json(400, {"error": "body is not JSON (or is nested too deeply)"})
            if not isinstance(body, dict):
                return self._json(400, {"error": "body must be a JSON object"})
            code, state, error = session.act(body.get("op"), body.get("file"), body.get("label"))
            payload = {"state": state} if state is not None else {}
            if error:
                payload["error"] = error
            return self._json(code, payload)

    return Handler


def make_server(session, port=8765, verbose=False):
    """A threading HTTP server for `session`, bound to 127.0.0.1 only (port 0 = any free port).

    `session` may be None and set later with `server.RequestHandlerClass = make_handler(session)`,
    so the port is claimed before a session writes its start record. A port in use is a
    `ValueError` naming it and suggesting `--port 0`.
    """
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), make_handler(session, verbose))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise ValueError(f"--port {port}: address 127.0.0.1:{port} is already in use (another labeller?); "
                             "pass --port 0 for any free port, or another --port") from None
        raise
    server.daemon_threads = True
    return server


def serve(session, port=8765, open_browser=True, verbose=False, server=None):
    """Serves the labeller on 127.0.0.1:`port` (or on `server`, made by `make_server`) until interrupted."""
    if server is None:
        server = make_server(session, port, verbose)
    else:
        server.RequestHandlerClass = make_handler(session, verbose)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"labeller: {url} (journal {session.journal.path}; Ctrl+C to stop)", flush=True)
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        session.close()


def export_labels(journal, to_folders=None, to_csv=None, images=None, mode="copy", overwrite=False):
    """Writes the labels as class folders and/or a file,label CSV; returns {class: count}."""
    path = journal_file(journal)
    if not path.is_file():
        raise FileNotFoundError(f"--journal {journal}: no {path} (label something first)")
    reader = LabelJournal(path, lock=False)
    labels = reader.labels()
    reader.close()
    if not labels:
        raise ValueError(f"{path} holds no labels yet")
    if to_folders is None and to_csv is None:
        raise ValueError("export needs --to-folders DIR or --to-csv FILE")
    if to_csv is not None:
        Path(to_csv).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(sorted(labels.items()), columns=["file", "label"]).to_csv(to_csv, index=False)
    if to_folders is not None:
        root = Path(images or reader.last_start().get("images") or "")
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} not found: pass --images DIR")
        target = Path(to_folders)
        if target.exists() and any(target.iterdir()) and not overwrite:
            raise ValueError(
                f"--to-folders {target} is not empty: pick another folder or pass --overwrite"
            )
        for label in sorted(set(labels.values())):
            files = sorted(f for f, lab in labels.items() if lab == label)
            for file, name in zip(files, unique_names(files)):
                place_file(root / file, target / label / name, mode)
    return dict(collections.Counter(labels.values()))


def build_export_parser():
    parser = OneLineErrorParser(
        prog="hybridvision label export",
        description="Write the labels of a journal as class folders or a file,label CSV.",
    )
    parser.add_argument("--journal", required=True, help="journal folder or labels.jsonl")
    parser.add_argument("--to-folders", default=None, help="write DIR/<class>/<image>")
    parser.add_argument("--to-csv", default=None, help="write a CSV with file,label columns")
    parser.add_argument(
        "--images", default=None, help="image folder (default: the one the labeller last served)"
    )
    parser.add_argument("--mode", default="copy", choices=MODES, help="how to place files")
    parser.add_argument("--overwrite", action="store_true", help="allow a non-empty --to-folders")
    return parser


def build_parser():
    parser = OneLineErrorParser(
        prog="hybridvision label",
        description="Label images in the browser: one key per class, Enter accepts the proposal, "
        "s/Space skips, u/z/Backspace undoes. Every label is fsync'ed to the journal before "
        "the next image shows; a restart continues where it stopped. "
        "`hybridvision label export --help` for the export.",
    )
    parser.add_argument("--images", required=True, help="folder of images (recursive)")
    parser.add_argument(
        "--task",
        choices=sorted(TASK_CLASSES),
        default=None,
        help="orientation (left,center,right) or light (left_light,...)",
    )
    parser.add_argument(
        "--classes", default=None, help="comma-separated class names instead of --task"
    )
    parser.add_argument(
        "--journal",
        default="labels",
        help="journal folder (gets labels.jsonl) or .jsonl file (default ./labels)",
    )
    parser.add_argument("--proposals", default=None, help="CSV from hybridvision.data_prep.propose")
    parser.add_argument(
        "--order",
        choices=("file", "confidence"),
        default="file",
        help="file order, or lowest proposal confidence first (needs --proposals)",
    )
    parser.add_argument(
        "--channel",
        default="v",
        choices=image_views.CHANNELS,
        help="threshold view channel (default v)",
    )
    parser.add_argument(
        "--threshold", type=int, default=170, help="threshold view: above this (default 170)"
    )
    parser.add_argument("--mask-style", default="binary", choices=image_views.MASK_STYLES)
    parser.add_argument("--prefetch", type=int, default=5, help="images the page loads ahead")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 = any free)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["export"]:
        args = build_export_parser().parse_args(argv[1:])
        counts = export_labels(
            args.journal, args.to_folders, args.to_csv, args.images, args.mode, args.overwrite
        )
        where = " and ".join(p for p in (args.to_folders, args.to_csv) if p)
        print(f"exported {sum(counts.values())} labels to {where}: {counts}")
        return 0
    args = build_parser().parse_args(argv)
    if (args.task is None) == (args.classes is None):
        raise ValueError("pass exactly one of --task orientation|light or --classes a,b,c")
    classes = TASK_CLASSES[args.task] if args.task else [c.strip() for c in args.classes.split(",")]
    # The port first: a busy one must fail before the session writes a start record to the journal.
    server = make_server(None, args.port, args.verbose)
    try:
        session = LabelSession(
            args.images,
            args.journal,
            classes,
            args.task or "custom",
            args.order,
            args.proposals,
            args.channel,
            args.threshold,
            args.mask_style,
            args.prefetch,
        )
    except BaseException:
        server.server_close()
        raise
    serve(session, args.port, not args.no_browser, args.verbose, server=server)
    return 0


if __name__ == "__main__":
    from hybridvision.common.cli import main_entry

    main_entry(main)
