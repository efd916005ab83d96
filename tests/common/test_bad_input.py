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


def test_non_utf8_names_are_skipped_and_listed_by_their_bytes(tmp_path, caplog):
    from hybridvision.common.data.images import NOT_UTF8, drop_unreadable, validate_images
    from hybridvision.data_prep import image_views

    bad = _non_utf8_png(tmp_path / "imgs")
    good, rejected = validate_images([str(tmp_path / "imgs" / "good.png"), bad])
    assert good == [str(tmp_path / "imgs" / "good.png")] and rejected == [(bad, NOT_UTF8)]
    import pandas as pd

    with caplog.at_level("WARNING", logger="hybridvision"):
        table = drop_unreadable(pd.DataFrame({"path": [str(tmp_path / "imgs" / "good.png"), bad]}))
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
