"""The labeller's append-only journal: every action is on disk before anyone sees its effect."""

import datetime
import json
import os
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, everything else works.
    fcntl = None

ACTIONS = ("label", "skip")
OPS = ("start", "label", "skip", "undo")


def journal_file(path):
    """`path` itself when it names a .jsonl file, else `path/labels.jsonl`."""
    path = Path(path)
    return path if path.suffix == ".jsonl" else path / LabelJournal.FILENAME


class LabelJournal:
    """An append-only JSON-lines log of labelling actions, fsync'ed record by record.

    Each line is one record: `{"op": "label", "file": ..., "label": ...}`,
    `{"op": "skip", "file": ...}`, `{"op": "undo", "file": <the undone file>}`
    or `{"op": "start", ...}` (one per labeller session, with its settings),
    each with a UTC `time`. Nothing is ever rewritten: an undo is a record
    too, and replaying the records gives the labels. `append` returns only
    after the record is flushed and fsync'ed, so a record whose effect was
    shown survives a kill or a power cut. A record half written by a crash
    (no final newline, not valid JSON) was never acknowledged and is cut off
    when the journal is opened again. An exclusive lock keeps a second
    labeller off the same journal.

    Args:
        path: a `.jsonl` file, or a folder that gets `labels.jsonl`.
        lock: True (the labeller) takes an exclusive lock and repairs a torn
            last record; False opens an existing journal read-only (export).

    Example:
        >>> with LabelJournal("labels/") as journal:
        ...     _ = journal.append("label", file="a.jpg", label="left")
        ...     journal.labels()
        {'a.jpg': 'left'}

    Reference:
        Write-ahead logging: a change is durable once its log record is
        flushed, before its effect is shown.
    """

    FILENAME = "labels.jsonl"

    def __init__(self, path, lock=True):
        self._fd = None
        self.path = journal_file(path)
        created = not self.path.exists()
        if not lock:
            if created:
                raise FileNotFoundError(f"journal {self.path} does not exist")
            self._fd = os.open(self.path, os.O_RDONLY)
            self.records = self._read_and_repair(repair=False)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ValueError(
                    f"journal {self.path} is in use by another labeller: stop that one first"
                ) from None
        self._fd = fd
        if created:
            # The new directory entry must survive a crash too, not only the data.
            _fsync_dir(self.path.parent)
        self.records = self._read_and_repair()

    def _read_and_repair(self, repair=True):
        with open(self.path, "rb") as handle:
            data = handle.read()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        if tail and not repair:
            # A reader leaves the file alone; the writer may be finishing that very line.
            try:
                lines.append(json.dumps(json.loads(tail)).encode())
            except ValueError:
                pass
        elif tail:
            try:
                json.loads(tail)
                # Complete record that only lost its newline: keep it, add the newline.
                os.write(self._fd, b"\n")
                lines.append(tail)
            except ValueError:
                os.truncate(self.path, len(data) - len(tail))
                print(
                    f"{self.path}: dropped an unfinished last record ({len(tail)} bytes) "
                    "left by a crash",
                    file=sys.stderr,
                )
            os.fsync(self._fd)
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise ValueError(
                    f"{self.path} line {number} is not JSON: fix or remove that line"
                ) from None
            if record.get("op") not in OPS:
                raise ValueError(f"{self.path} line {number}: unknown op {record.get('op')!r}")
            records.append(record)
        return records

    def append(self, op, **fields):
        """Writes one record and returns it once it is on disk."""
        if op not in OPS:
            raise ValueError(f"journal op {op!r} is not one of {', '.join(OPS)}")
        record = {
            "op": op,
            **fields,
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        # One write on an O_APPEND descriptor: the record lands whole at the end.
        written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(f"short write to {self.path}")
        os.fsync(self._fd)
        self.records.append(record)
        return record

    def undo(self):
        """Appends an undo of the last label or skip; returns the undone record or None."""
        stack = self.actions()
        if not stack:
            return None
        self.append("undo", file=stack[-1]["file"])
        return stack[-1]

    def actions(self):
        """The label and skip records still in force, oldest first (undos replayed)."""
        stack = []
        for record in self.records:
            if record["op"] in ACTIONS:
                stack.append(record)
            elif record["op"] == "undo" and stack:
                stack.pop()
        return stack

    def status(self):
        """{file: its last action record in force}."""
        return {record["file"]: record for record in self.actions()}

    def labels(self):
        """{file: label} for the files whose last action in force is a label."""
        return {f: r["label"] for f, r in self.status().items() if r["op"] == "label"}

    def done(self):
        """Files labelled or skipped (not to be shown again)."""
        return set(self.status())

    def last_start(self):
        """The settings of the last labeller session, or {}."""
        starts = [r for r in self.records if r["op"] == "start"]
        return starts[-1] if starts else {}

    def close(self):
        if self._fd is not None:
            os.close(self._fd)  # also releases the lock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            self.close()


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
