"""The journal, the labeller's HTTP API and export, without a browser."""

import contextlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from hybridvision.data_prep import image_views, label
from hybridvision.data_prep import journal as journal_module
from hybridvision.data_prep.journal import LabelJournal
from tests.data_prep.test_propose import draw_face

LIGHT = ("left_light", "center_light", "right_light")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _seed_everything():
    # Overrides the suite's fixture: data_prep needs no Keras session to seed or clear.
    random.seed(1337)
    np.random.seed(1337)
    yield


def make_images(root, count=5):
    for i in range(count):
        draw_face(root / f"img{i}.png", width=16, height=20, light=("left", "right", None)[i % 3])
    return root


def journal_lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def start_labeller(images, journal, *extra):
    """The labeller as a separate process on a free port: (process, port)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hybridvision.data_prep.label",
            "--task",
            "light",
            "--images",
            str(images),
            "--journal",
            str(journal),
            "--port",
            "0",
            "--no-browser",
            *map(str, extra),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("labeller: http://127.0.0.1:"):
        process.kill()
        raise AssertionError(f"labeller did not start: {line}{process.stderr.read()}")
    return process, int(line.split(":")[3].split("/")[0])


def stop_labeller(process):
    if process.poll() is None:
        process.kill()
    process.wait(10)
    process.stdout.close()
    process.stderr.close()


# --- journal -----------------------------------------------------------------------------


def test_journal_replays_labels_skips_and_undos(tmp_path):
    with LabelJournal(tmp_path / "j") as journal:
        assert journal.path == tmp_path / "j" / "labels.jsonl"
        journal.append("label", file="a", label="left")
        journal.append("skip", file="b")
        journal.append("label", file="c", label="right")
        assert journal.undo()["file"] == "c"
        assert journal.labels() == {"a": "left"} and journal.done() == {"a", "b"}
        assert journal.undo()["op"] == "skip"
        journal.append("label", file="b", label="center")
    with LabelJournal(tmp_path / "j") as journal:
        assert journal.labels() == {"a": "left", "b": "center"}
        assert journal.undo()["file"] == "b"
        assert journal.undo()["file"] == "a"
        assert journal.undo() is None
        assert journal.labels() == {}
    ops = [r["op"] for r in journal_lines(tmp_path / "j" / "labels.jsonl")]
    assert ops == ["label", "skip", "label", "undo", "undo", "label", "undo", "undo"]
    assert all("time" in r for r in journal_lines(tmp_path / "j" / "labels.jsonl"))


def test_journal_fsyncs_every_record_before_returning(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    path = tmp_path / "labels.jsonl"

    def spying_fsync(fd):
        real_fsync(fd)
        synced.append(path.read_text().count("\n"))

    journal = LabelJournal(path)
    monkeypatch.setattr(journal_module.os, "fsync", spying_fsync)
    journal.append("label", file="a", label="x")
    journal.append("skip", file="b")
    journal.undo()
    assert synced == [1, 2, 3]
    journal.close()


def test_journal_drops_a_torn_last_record_and_refuses_a_corrupt_one(tmp_path, capsys):
    path = tmp_path / "labels.jsonl"
    with LabelJournal(path) as journal:
        journal.append("label", file="a", label="x")
    with open(path, "ab") as handle:
        handle.write(b'{"op": "label", "file": "b", "la')
    with LabelJournal(path) as journal:
        assert journal.labels() == {"a": "x"}
        journal.append("label", file="c", label="y")
    assert "unfinished last record" in capsys.readouterr().err
    assert [r["file"] for r in journal_lines(path)] == ["a", "c"]
    # A whole record that only lost its newline is kept.
    with open(path, "ab") as handle:
        handle.write(b'{"op": "skip", "file": "d"}')
    with LabelJournal(path) as journal:
        journal.append("skip", file="e")
        assert journal.done() == {"a", "c", "d", "e"}
    lines = path.read_text().splitlines()
    lines[1] = "garbage"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        LabelJournal(path)


def test_journal_lock_keeps_a_second_labeller_off(tmp_path):
    first = LabelJournal(tmp_path)
    first.append("label", file="a", label="x")
    with pytest.raises(ValueError, match="in use by another labeller"):
        LabelJournal(tmp_path)
    reader = LabelJournal(tmp_path, lock=False)
    assert reader.labels() == {"a": "x"}
    reader.close()
    first.close()
    LabelJournal(tmp_path).close()
    with pytest.raises(FileNotFoundError):
        LabelJournal(tmp_path / "none", lock=False)


# --- session ------------------------------------------------------------------------------


def test_order_by_confidence_and_keys(tmp_path):
    images = make_images(tmp_path / "images", 4)
    proposals = tmp_path / "p.csv"
    pd.DataFrame(
        {
            "file": ["img0.png", "img1.png", "img2.png"],
            "proposal": ["left_light", "right_light", ""],
            "confidence": [0.9, 0.2, 0.0],
            "bright_balance": [-0.5, 0.3, 0.0],
        }
    ).to_csv(proposals, index=False)
    session = label.LabelSession(images, tmp_path / "j", LIGHT, "light", "confidence", proposals)
    # img3 has no proposal: it counts as confidence 0 and comes first with img2.
    assert session.order == ["img2.png", "img3.png", "img1.png", "img0.png"]
    state = session.state()
    assert state["current"]["file"] == "img2.png"
    assert [u["file"] for u in state["upcoming"]] == ["img3.png", "img1.png", "img0.png"]
    assert state["upcoming"][1]["proposal"] == "right_light"
    assert state["upcoming"][1]["measured"] == {"bright_balance": 0.3}
    assert session.keys["1"] == {"op": "label", "label": "left_light"}
    assert session.keys["r"] == {"op": "label", "label": "right_light"}
    assert session.keys["Enter"] == {"op": "accept"}
    assert session.keys["s"] == session.keys[" "] == {"op": "skip"}
    assert session.keys["Backspace"] == {"op": "undo"}
    session.close()

    clashing = label.LabelSession(images, tmp_path / "k", ("left", "lower", "sun"))
    assert "l" not in clashing.keys and clashing.keys["s"] == {"op": "skip"}
    assert clashing.keys["3"] == {"op": "label", "label": "sun"}
    clashing.close()
    with pytest.raises(ValueError, match="needs --proposals"):
        label.LabelSession(images, tmp_path / "m", LIGHT, order="confidence")


# --- HTTP -----------------------------------------------------------------------------------


@contextlib.contextmanager
def running(session):
    server = label.make_server(session, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        session.close()


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    payload = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {"Content-Type": "application/json"} if body is not None else {}
    sent.update(headers or {})
    connection.request(method, path, body=payload, headers=sent)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def post(port, **body):
    status, data = request(port, "POST", "/api/action", body)
    return status, json.loads(data)


def test_http_labels_are_on_disk_before_the_next_image_shows(tmp_path):
    images = make_images(tmp_path / "images", 3)
    session = label.LabelSession(images, tmp_path / "j", LIGHT, "light")
    with running(session) as port:
        status, page = request(port, "GET", "/")
        assert status == 200 and b"keydown" in page
        state = json.loads(request(port, "GET", "/api/state")[1])["state"]
        assert state["current"]["file"] == "img0.png" and state["total"] == 3

        status, reply = post(port, op="label", file="img0.png", label="left_light")
        assert status == 200 and reply["state"]["current"]["file"] == "img1.png"
        # The response has come back, so the record must already be in the file.
        assert journal_lines(tmp_path / "j" / "labels.jsonl")[-1]["label"] == "left_light"

        status, reply = post(port, op="label", file="img0.png", label="right_light")
        assert status == 409 and reply["state"]["current"]["file"] == "img1.png"
        assert post(port, op="label", file="img1.png", label="purple")[0] == 400
        assert post(port, op="skip", file="img1.png")[1]["state"]["current"]["file"] == "img2.png"
        reply = post(port, op="undo")[1]["state"]
        assert reply["current"]["file"] == "img1.png" and "was skipped" in reply["message"]
        reply = post(port, op="label", file="img1.png", label="center_light")[1]["state"]
        reply = post(port, op="label", file="img2.png", label="right_light")[1]["state"]
        assert reply["current"] is None and reply["labelled"] == 3
        status, _ = request(
            port,
            "POST",
            "/api/action",
            b"op=skip",
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 415
    with LabelJournal(tmp_path / "j", lock=False) as journal:
        assert journal.labels() == {
            "img0.png": "left_light",
            "img1.png": "center_light",
            "img2.png": "right_light",
        }


def test_http_serves_only_the_listed_images(tmp_path):
    images = make_images(tmp_path / "images", 2)
    (tmp_path / "secret.txt").write_text("secret")
    draw_face(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", images / "escape.png")
    os.symlink(tmp_path, images / "linked_dir")
    session = label.LabelSession(images, tmp_path / "j", LIGHT)
    assert session.order == ["img0.png", "img1.png"]
    with running(session) as port:
        status, data = request(port, "GET", "/image/img1.png")
        assert status == 200 and data == (images / "img1.png").read_bytes()
        status, data = request(port, "GET", "/view/mask/img1.png")
        mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        expected = image_views.threshold_mask(cv2.imread(str(images / "img1.png")))
        np.testing.assert_array_equal(mask[..., 0], expected)
        assert request(port, "GET", "/view/hsv/img0.png")[0] == 200
        refused = {
            "/image/../secret.txt": 403,
            "/image/%2e%2e/secret.txt": 403,
            "/image/..%2fsecret.txt": 403,
            "/view/hsv/../../etc/passwd": 403,
            "/image//etc/passwd": 403,
            "/image/%2Fetc%2Fpasswd": 403,
            "/image/..\\secret.txt": 403,
            "/image/escape.png": 404,
            "/image/linked_dir/secret.txt": 404,
            "/image/linked_dir/outside.png": 404,
            "/image/missing.png": 404,
            "/secret.txt": 404,
        }
        for path, code in refused.items():
            status, data = request(port, "GET", path)
            assert status == code, path
            assert b"secret" not in data
        status, _ = request(port, "GET", "/api/state", headers={"Host": "evil.example:80"})
        assert status == 403


def test_kill_minus_nine_loses_nothing_and_resumes(tmp_path):
    images = make_images(tmp_path / "images", 4)
    journal = tmp_path / "j"
    process, port = start_labeller(images, journal)
    try:
        post(port, op="label", file="img0.png", label="left_light")
        post(port, op="label", file="img1.png", label="right_light")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stop_labeller(process)
        process, port = start_labeller(images, journal)
        state = json.loads(request(port, "GET", "/api/state")[1])["state"]
        assert state["current"]["file"] == "img2.png" and state["labelled"] == 2
    finally:
        stop_labeller(process)


# --- export ---------------------------------------------------------------------------------


def test_export_to_csv_and_class_folders(tmp_path, capsys):
    images = make_images(tmp_path / "images", 3)
    with LabelJournal(tmp_path / "j") as journal:
        journal.append("start", images=str(images.resolve()))
        journal.append("label", file="img0.png", label="left_light")
        journal.append("skip", file="img1.png")
        journal.append("label", file="img2.png", label="right_light")
    csv = tmp_path / "labels.csv"
    folders = tmp_path / "labelled"
    assert (
        label.main(
            [
                "export",
                "--journal",
                str(tmp_path / "j"),
                "--to-csv",
                str(csv),
                "--to-folders",
                str(folders),
            ]
        )
        == 0
    )
    assert "exported 2 labels" in capsys.readouterr().out
    assert pd.read_csv(csv).values.tolist() == [
        ["img0.png", "left_light"],
        ["img2.png", "right_light"],
    ]
    assert sorted(p.relative_to(folders).as_posix() for p in folders.rglob("*.png")) == [
        "left_light/img0.png",
        "right_light/img2.png",
    ]
    with pytest.raises(ValueError, match="not empty"):
        label.export_labels(tmp_path / "j", to_folders=folders)
    label.export_labels(tmp_path / "j", to_folders=folders, mode="symlink", overwrite=True)
    assert (folders / "left_light" / "img0.png").is_symlink()
    with pytest.raises(FileNotFoundError, match="label something first"):
        label.export_labels(tmp_path / "nothing", to_csv=csv)
    for argv in (["--help"], ["export", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            label.main(argv)
        assert exit_info.value.code == 0
