"""Bad input a new user gives, and what each command answers: one line `error: ...`, exit code 2, no traceback.

Most cases call a tool's `main` through `hybridvision.common.cli.main_entry` in this
process (what `python -m <tool>` runs); one runs real processes.
"""

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hybridvision.common.cli import UserError, main_entry
from hybridvision.common.data.demo import generate

ROOT = Path(__file__).resolve().parents[2]


def _run(main, argv, capsys):
    """(exit code, stderr lines) of `main_entry(main, argv)`."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main_entry(main, argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return info.value.code, err


def _assert_one_line(main, argv, capsys, expected):
    code, err = _run(main, argv, capsys)
    assert code == 2, err
    assert err and err[-1].startswith("error: "), err
    assert not any("Traceback" in line for line in err), err
    if expected.startswith("error: "):
        assert err[-1].startswith(expected), err[-1]
    else:
        assert expected in err[-1], err[-1]
    return err[-1]


# ---- range checks ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--epochs", "-1"], "error: --epochs must be >= 1 (got -1)"),
        (["--epochs", "0"], "error: --epochs must be >= 1 (got 0)"),
        (["--learning-rate", "-5"], "error: --learning-rate must be > 0 (got -5)"),
        (["--learning-rate", "nan"], "error: --learning-rate must be > 0 (got nan)"),
        (["--batch-size", "0"], "error: --batch-size must be >= 1 (got 0)"),
        (["--seed", "-2"], "error: --seed must be >= 0 (got -2)"),
        (["--val-fraction", "1.5"], "error: --val-fraction must be in (0, 1) (got 1.5)"),
        (["--dropout", "1"], "error: --dropout must be in [0, 1) (got 1)"),
        (["--aux-weight", "0.7"], "error: --aux-weight must be in [0, 0.5] (got 0.7)"),
        (["--epochs", "many"], "error: argument --epochs: invalid int value: 'many'"),
    ],
)
def test_out_of_range_flags_are_one_line_errors(argv, expected, capsys):
    from hybridvision.apps.digit_pairs import train

    assert _assert_one_line(train.main, argv, capsys, expected) == expected


@pytest.mark.parametrize(
    "module, argv, expected",
    [
        ("hybridvision.apps.orientation_light.train", ["--holdout-fraction", "-0.1"], "error: --holdout-fraction must be in [0, 1) (got -0.1)"),
        ("hybridvision.apps.orientation_light.train", ["--brightness-range", "0,1.2"], "error: --brightness-range must be > 0 (got 0)"),
        ("hybridvision.apps.attractiveness.train", ["--seeds", "0,-1"], "error: --seeds must be >= 0 (got -1)"),
        ("hybridvision.apps.cross_modal.train", ["--rotation-range", "400"], "error: --rotation-range must be in [0, 180] (got 400)"),
        ("hybridvision.apps.patch_training.train", ["--threshold", "2"], "error: --threshold must be in [0, 1] (got 2)"),
        ("hybridvision.apps.patch_training.sweep", ["--switch-epochs", "0,-2"], "error: --switch-epochs must be >= 0 (got -2)"),
        ("hybridvision.apps.digit_pairs.compare", ["--rounds", "0"], "error: --rounds must be >= 1 (got 0)"),
        ("hybridvision.apps.orientation_light.tune", ["--learning-rates", "0.1,-1"], "error: --learning-rates must be > 0 (got -1)"),
    ],
)
def test_every_app_checks_its_ranges(module, argv, expected, capsys):
    import importlib

    assert _assert_one_line(importlib.import_module(module).main, argv, capsys, expected) == expected


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["orientation_light", "predict", "--model", "m.keras", "--images", ".", "--out", "o.csv", "--batch-size", "0"],
         "error: --batch-size must be >= 1 (got 0)"),
        (["digit_pairs", "predict", "--model", "m.keras", "--out", "o.csv", "--batch-size", "x"],
         "error: argument --batch-size: invalid int value: 'x'"),
        (["export", "m.keras"], "error: the following arguments are required: --format"),
        (["export", "m.keras", "--format", "tflite", "--bogus"], "error: unrecognized arguments: --bogus"),
        (["split", "--out", "o", "--seed", "x"], "error: argument --seed: invalid int value: 'x'"),
    ],
)
def test_every_command_reports_a_bad_flag_in_one_line(argv, expected, capsys, tmp_path, monkeypatch):
    from hybridvision import cli

    monkeypatch.chdir(tmp_path)
    code, err = _run(cli.run, argv, capsys)
    assert (code, err) == (2, [expected])


def test_config_file_values_are_range_checked_too(tmp_path, capsys):
    from hybridvision.apps.digit_pairs import train

    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: -3\n")
    _assert_one_line(train.main, ["--config", str(cfg)], capsys, "error: --epochs must be >= 1 (got -3)")


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("c.yaml", "epochs: 2.7\n", "error: config key 'epochs': expected int, got 2.7 (float)"),
        ("c.yaml", "epochs: true\n", "error: config key 'epochs': expected int, got True (bool)"),
        ("c.yaml", "seed: 1.9\n", "error: config key 'seed': expected int, got 1.9 (float)"),
        ("c.yaml", "epochs: '3'\n", "error: config key 'epochs': expected int, got '3' (str)"),
        ("c.json", '{"learning_rate": "0.1"}', "error: config key 'learning_rate': expected float, got '0.1' (str)"),
        ("c.json", '{"quiet": 1}', "error: config key 'quiet': expected true/false, got 1 (int)"),
    ],
)
def test_config_file_values_of_the_wrong_type_are_refused_not_converted(name, text, expected, tmp_path, capsys):
    from hybridvision.apps.digit_pairs import train

    cfg = tmp_path / name
    cfg.write_text(text)
    assert _assert_one_line(train.main, ["--config", str(cfg)], capsys, expected) == expected


def test_config_file_numbers_yaml_writes_without_a_dot_are_floats(tmp_path):
    from hybridvision.apps.digit_pairs.config import DigitPairsConfig
    from hybridvision.common.config import parse_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text("learning_rate: 1e-3\nepochs: 4.0\n")  # PyYAML alone reads 1e-3 as the text '1e-3'
    parsed = parse_config(DigitPairsConfig, ["--config", str(cfg)])
    assert (parsed.learning_rate, parsed.epochs) == (0.001, 4) and isinstance(parsed.epochs, int)


def test_repeated_seeds_are_refused_not_dropped(capsys):
    from hybridvision.apps.attractiveness import train

    expected = "error: --seeds 0,0,1 lists 0 more than once; each is one run: list each once"
    assert _assert_one_line(train.main, ["--seeds", "0,0,1"], capsys, expected) == expected


def test_redeclared_fields_keep_the_shared_range_and_help_shows_it(capsys):
    from hybridvision.apps.digit_pairs.config import DigitPairsConfig
    from hybridvision.common.config import build_parser, field_range

    assert field_range(DigitPairsConfig, "epochs") == {"min": 1}  # redeclared in the app without a range
    assert "[>= 1]" in build_parser(DigitPairsConfig).format_help()


def test_run_refuses_an_out_of_range_config_given_in_code(tmp_path, monkeypatch):
    from hybridvision.common.config import TrainConfig
    from hybridvision.common.run import Run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"--epochs must be >= 1 \(got 0\)"):
        Run("toy", TrainConfig(run_dir=str(tmp_path / "r"), epochs=0))
    assert not (tmp_path / "r").exists()


# ---- data the readers refuse ------------------------------------------------------------------
@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    return {name: generate(name, base / name, scale="tiny") for name in ("celeba", "orientation", "mnist")}


def _copy(src, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


TINY = ["--quiet", "--epochs", "1"]


def test_missing_celeba_attribute_file(datasets, tmp_path, capsys):
    from hybridvision.apps.attractiveness import train

    root = _copy(datasets["celeba"], tmp_path, "celeba")
    (root / "list_attr_celeba.txt").unlink()
    _assert_one_line(train.main, ["--data-dir", str(root), *TINY, "--run-dir", str(tmp_path / "r")], capsys,
                     f"error: CelebA attribute file '{root / 'list_attr_celeba.txt'}' not found; expected the "
                     "official layout")


def test_wrong_celeba_names_line_blames_the_file_not_target(datasets, tmp_path, capsys):
    from hybridvision.apps.attractiveness import train

    root = _copy(datasets["celeba"], tmp_path, "celeba")
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[1] = " ".join(f"attr{i}" for i in range(len(lines[1].split())))
    path.write_text("\n".join(lines) + "\n")
    line = _assert_one_line(train.main, ["--data-dir", str(root), *TINY, "--run-dir", str(tmp_path / "r")], capsys,
                            "list_attr_celeba.txt: its names line (line 2) holds 0 of CelebA's 40 attribute names")
    assert "--target" not in line


def test_unknown_covariate(datasets, tmp_path, capsys):
    from hybridvision.apps.attractiveness import train

    _assert_one_line(train.main, ["--data-dir", str(datasets["celeba"]), "--covariates", "Male,Handsome", *TINY,
                                  "--run-dir", str(tmp_path / "r")], capsys,
                     "error: --covariates: unknown CelebA attribute(s) Handsome; valid names (40):")


def test_empty_class_folder(datasets, tmp_path, capsys):
    from hybridvision.apps.orientation_light import train

    root = _copy(datasets["orientation"], tmp_path, "faces")
    folder = root / "train" / "center"
    for f in folder.iterdir():
        f.unlink()
    _assert_one_line(train.main, ["--data-dir", str(root), *TINY, "--run-dir", str(tmp_path / "r")], capsys,
                     f"error: Class folder '{folder}' holds no images")


def test_truncated_mnist_and_missing_data_dir(datasets, tmp_path, capsys):
    from hybridvision.apps.digit_pairs import train

    root = _copy(datasets["mnist"], tmp_path, "mnist")
    images = sorted(root.glob("*images*"))[0]
    images.write_bytes(images.read_bytes()[:200])
    _assert_one_line(train.main, ["--data-dir", str(root), *TINY, "--run-dir", str(tmp_path / "r")], capsys,
                     "truncated")
    _assert_one_line(train.main, ["--data-dir", str(tmp_path / "nope"), *TINY], capsys,
                     f"error: {tmp_path / 'nope'}: no such folder or .npz file; pass the folder holding the MNIST "
                     "IDX files")


def test_predict_names_a_keras_file_that_is_not_a_model(datasets, tmp_path, capsys):
    from hybridvision.apps.orientation_light import predict

    fake = tmp_path / "model.keras"
    fake.write_text("not a zip")
    argv = ["--model", str(fake), "--images", str(datasets["orientation"]), "--out", str(tmp_path / "o.csv"),
            "--classes", "a,b,c"]
    _assert_one_line(predict.main, argv, capsys,
                     f"error: --model {fake} is not a Keras model (a .keras file is a zip archive, this one is "
                     "not); pass a model saved by train.py")
    argv[1] = str(tmp_path / "missing.keras")
    _assert_one_line(predict.main, argv, capsys,
                     f"error: --model {tmp_path / 'missing.keras'}: no such file; pass a saved .keras model")


@pytest.mark.parametrize("tool", ["predict", "explain"])
def test_a_model_of_another_app_is_named_as_such(tool, tmp_path, capsys):
    """An attractiveness model given to orientation_light: named by its card, not asked for its covariates."""
    import importlib

    import cv2
    import keras
    import numpy as np

    from hybridvision.common.model_card import attach_card

    image, male = keras.Input((8, 8, 3), name="image"), keras.Input((1,), name="covariates")
    output = keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(image), male]))
    card = {"app": "attractiveness", "target": "Attractive", "covariates": ["Male"], "class_names": ["no", "yes"]}
    attach_card(keras.Model([image, male], output), card).save(tmp_path / "a.keras")
    cv2.imwrite(str(tmp_path / "face.png"), np.full((8, 8, 3), 128, np.uint8))
    tool_main = importlib.import_module(f"hybridvision.apps.orientation_light.{tool}").main
    argv = ["--model", str(tmp_path / "a.keras"), "--quiet"]
    argv += (["--images", str(tmp_path), "--out", str(tmp_path / "o.csv")] if tool == "predict"
             else ["--image", str(tmp_path / "face.png")])
    _assert_one_line(tool_main, argv, capsys, f"error: --model {tmp_path / 'a.keras'} is a model of the attractiveness "
                     f"app, not of orientation_light; use `hybridvision attractiveness {tool}`")


def test_unwritable_run_dir(tmp_path, capsys, monkeypatch):
    from hybridvision.apps.digit_pairs import train

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.chdir(tmp_path)
    _assert_one_line(train.main, [*TINY, "--pairs", "20", "--run-dir", str(blocker / "run")], capsys,
                     f"error: cannot create run directory {blocker / 'run'}:")


# ---- the entry wrapper itself -----------------------------------------------------------------------
def test_unexpected_errors_keep_their_traceback(capsys):
    def buggy(argv):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        main_entry(buggy, [])

    def foreign_value_error(argv):
        json.loads("{")  # a ValueError raised inside the standard library, not by our code

    with pytest.raises(ValueError):
        main_entry(foreign_value_error, [])


def test_expected_errors_of_ours_and_of_the_machine(capsys):
    def user(argv):
        raise UserError("bad thing\n  on two lines")

    assert _run(user, [], capsys) == (2, ["error: bad thing on two lines"])

    def full(argv):
        raise OSError(28, "No space left on device", "/x/y")

    assert _run(full, [], capsys) == (2, ["error: /x/y: No space left on device"])

    def fine(argv):
        return None

    with pytest.raises(SystemExit) as info:
        main_entry(fine, [])
    assert info.value.code == 0


@pytest.mark.slow
def test_command_line_processes_exit_2_with_one_line(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    fake = tmp_path / "m.keras"
    fake.write_text("x")
    for argv, last in (
        (["-m", "hybridvision.apps.digit_pairs.train", "--epochs", "-1"], "error: --epochs must be >= 1 (got -1)"),
        (["-m", "hybridvision.data_prep.split", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")], "error: "),
    ):
        result = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, env=env)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(last), result.stderr[-500:]


# ---- file names that are not UTF-8 ----------------------------------------------------------------
def _non_utf8_png(folder: Path) -> str:
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.png"
    cv2.imwrite(str(good), np.full((8, 8, 3), 128, np.uint8))
    bad = os.fsencode(folder) + b"/caf\xe9.png"
    shutil.copyfile(os.fsencode(good), bad)
    return os.fsdecode(bad)


def test_non_utf8_names_are_skipped_and_listed_by_their_bytes(tmp_path, caplog, string_storage):
    from hybridvision.common.data.images import NOT_UTF8, drop_unreadable, file_table, validate_images
    from hybridvision.data_prep import image_views

    bad = _non_utf8_png(tmp_path / "imgs")
    good, rejected = validate_images([str(tmp_path / "imgs" / "good.png"), bad])
    assert good == [str(tmp_path / "imgs" / "good.png")] and rejected == [(bad, NOT_UTF8)]

    with caplog.at_level("WARNING", logger="hybridvision"):
        table = drop_unreadable(file_table([[str(tmp_path / "imgs" / "good.png")], [bad]], ["path"]))
        assert list(table["path"]) == [str(tmp_path / "imgs" / "good.png")]
        assert image_views.list_images(tmp_path / "imgs") == ["good.png"]
    assert "b'" + str(tmp_path / "imgs") + "/caf\\xe9.png'" in caplog.text
    assert "b'caf\\xe9.png'" in caplog.text


def test_predict_lists_non_utf8_names_once(tmp_path):
    import keras

    from hybridvision.common.predict import label_folder

    _non_utf8_png(tmp_path / "imgs")
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    for _ in range(2):  # the second run (a resume) must not list it again
        summary = label_folder(model, tmp_path / "imgs", tmp_path / "out.csv", ["a", "b"], progress=False)
    assert summary["labelled"] == 0 and summary["already_done"] == 1
    errors = (tmp_path / "out.errors.csv").read_text().splitlines()
    assert errors == ["file,reason", "b'caf\\xe9.png',file name is not valid UTF-8; rename it"]


def test_folder_symlinks_are_not_followed_and_file_symlinks_are(tmp_path, caplog, string_storage):
    """`ln -s .. train/left/loop` once labelled every image `left` too, 40 levels deep; a link to ../right did as well."""
    from hybridvision.common.data.class_folders import read_class_folders
    from hybridvision.common.data.images import drop_unreadable
    from hybridvision.common.predict_io import list_images

    train = tmp_path / "data" / "train"
    bad = _non_utf8_png(train / "left")
    _non_utf8_png(tmp_path / "outside")
    (train / "right").mkdir()
    shutil.copyfile(train / "left" / "good.png", train / "right" / "r.png")
    os.symlink("..", train / "left" / "loop")
    os.symlink("../right", train / "left" / "right_again")
    os.symlink(tmp_path / "outside", train / "left" / "elsewhere")
    os.symlink(tmp_path / "outside" / "good.png", train / "right" / "linked.png")  # as `split --mode symlink` makes
    (tmp_path / "up").mkdir()
    shutil.copyfile(train / "left" / "good.png", tmp_path / "up" / "u.png")
    os.symlink(tmp_path / "up", train / "up")  # a class folder may itself be a link
    with caplog.at_level("WARNING", logger="hybridvision"):
        table = read_class_folders(tmp_path / "data", split="train")
        assert [(os.path.relpath(p, train), c) for p, c in zip(table["path"], table["class_name"])] == [
            ("left/caf\udce9.png", "left"), ("left/good.png", "left"), ("right/linked.png", "right"),
            ("right/r.png", "right"), ("up/u.png", "up")]
        assert list(drop_unreadable(table)["path"]) == [str(train / p) for p in
                                                       ("left/good.png", "right/linked.png", "right/r.png", "up/u.png")]
        assert list_images(train) == ["left/caf\udce9.png", "left/good.png", "right/linked.png", "right/r.png"]
        assert read_class_folders(tmp_path / "data", split="train").attrs["class_names"] == ["left", "right", "up"]
    assert "left out 3 folder symlink(s)" in caplog.text and str(train / "left" / "loop") in caplog.text
    assert bad in list(table["path"])


# libjpeg prints (to fd 2) for these: "Corrupt JPEG data: 18 extraneous bytes before marker 0xc4" and "Invalid JPEG
# file structure: SOS before SOF"; "Unsupported marker type 0x31"; "Bogus Huffman table definition".
NOISY_DECODER_WORDS = ("Corrupt JPEG", "Invalid JPEG", "marker", "Huffman")


def _corrupt_jpegs(folder: Path) -> None:
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (start, stop) in enumerate([(150, 160), (200, 240), (400, 420)]):
        data = bytearray(cv2.imencode(".jpg", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))[1].tobytes())
        data[start:stop] = b"\xff" * (stop - start)
        (folder / f"bad{i}.jpg").write_bytes(bytes(data))
    cv2.imwrite(str(folder / "good.png"), np.full((8, 8, 3), 128, np.uint8))


def test_the_jpeg_decoder_says_nothing_on_the_console(tmp_path, capfd, caplog):
    import keras

    from hybridvision.common.data.images import validate_images
    from hybridvision.common.predict import label_folder

    _corrupt_jpegs(tmp_path / "imgs")
    capfd.readouterr()
    good, bad = validate_images(sorted(str(p) for p in (tmp_path / "imgs").iterdir()))
    assert len(good) == 1 and len(bad) == 3
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    with caplog.at_level("WARNING", logger="hybridvision"):
        summary = label_folder(model, tmp_path / "imgs", tmp_path / "out.csv", ["a", "b"], progress=False)
    assert summary["labelled"] == 1 and summary["errors"] == 3
    out, err = capfd.readouterr()
    assert not [word for word in NOISY_DECODER_WORDS if word in out + err], err
    assert "3 input(s) could not be read" in caplog.text  # still said, once, where it belongs


# ---- the labeller ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _labeller(tmp_path):
    from hybridvision.data_prep import label

    images = tmp_path / "images"
    _non_utf8_png(images)
    session = label.LabelSession(images, tmp_path / "j", ["a", "b"], "custom")
    server = label.make_server(session, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        session.close()


def _raw_post(port, headers: dict, body: bytes):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("POST", "/api/action")
    for key, value in headers.items():
        connection.putheader(key, value)
    connection.endheaders()
    connection.send(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data)


def test_labeller_answers_bad_bodies_with_400(tmp_path):
    with _labeller(tmp_path) as port:
        base = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
        status, payload = _raw_post(port, {**base, "Content-Length": "abc"}, b"{}")
        assert status == 400 and "Content-Length" in payload["error"]
        deep = b"[" * 30000 + b"]" * 30000  # 60 kB, under the body limit
        status, payload = _raw_post(port, {**base, "Content-Length": str(len(deep))}, deep)
        assert status == 400 and "nested too deeply" in payload["error"]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/state", headers={"Host": f"127.0.0.1:{port}"})
        response = connection.getresponse()
        state = json.loads(response.read())["state"]
        assert response.status == 200, "the server still answers; a non-UTF-8 name does not break the state"
        connection.close()
        assert "good.png" in json.dumps(state)


def test_labeller_closes_a_request_whose_body_never_comes(tmp_path, monkeypatch):
    import time

    from hybridvision.data_prep import label

    monkeypatch.setattr(label, "REQUEST_TIMEOUT", 0.5)
    with _labeller(tmp_path) as port:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            stalled.sendall(f"POST /api/action HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                            "Content-Length: 1000\r\n\r\n{".encode())  # promises 1000 bytes, sends 1
            answer = b""
            while chunk := stalled.recv(4096):  # the server answers, then closes the connection
                answer += chunk
        assert time.monotonic() - start < 5
        assert answer.startswith(b"HTTP/1.0 408") and b"did not arrive within 0.5 s" in answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:  # not even a request line
            assert silent.recv(4096) == b""
        assert time.monotonic() - start < 5
        status, _ = _raw_post(port, {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json",
                                     "Content-Length": "2"}, b"{}")
        assert status == 400  # still serving (op missing)


def test_labeller_port_in_use_names_it_before_writing_a_start_record(tmp_path, capsys):
    from hybridvision.data_prep import label

    images = tmp_path / "images"
    _non_utf8_png(images)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["--images", str(images), "--classes", "a,b", "--journal", str(tmp_path / "j"), "--port", str(port),
                "--no-browser"]
        _assert_one_line(label.main, argv, capsys,
                         f"error: --port {port}: address 127.0.0.1:{port} is already in use (another labeller?); "
                         "pass --port 0 for any free port, or another --port")
    journal = tmp_path / "j" / "labels.jsonl"
    assert not journal.exists() or "start" not in journal.read_text()
