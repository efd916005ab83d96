"""The `hybridvision` command: dispatch, one-line errors, --help without TensorFlow, quiet start-up."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from hybridvision import cli
from hybridvision.apps.__main__ import available_apps
from hybridvision.apps.__main__ import build_parser as apps_parser
from hybridvision.common.cli import STARTUP_NOISE
from hybridvision.common.config import GROUPS, field_group

ROOT = Path(__file__).resolve().parents[2]
APPS = available_apps()
APP_TOOLS = [(app, tool) for app, package in APPS.items() for tool in package.TOOLS]


def command(*args, env=None, python_args=()) -> subprocess.CompletedProcess:
    """`python -m hybridvision ARGS` from the repository root, TF_CPP_MIN_LOG_LEVEL as `env` says (default: unset)."""
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, *python_args, "-m", "hybridvision", *args], cwd=ROOT,
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=300)


def imported_packages(stderr: str) -> set[str]:
    """Top-level packages named by `python -X importtime` lines ('import time: self | cumulative | name')."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("args", [["--help"], ["list"], ["attractiveness", "--help"], ["export", "--help"],
                                  *[[app, tool, "--help"] for app, tool in APP_TOOLS]], ids=" ".join)
def test_help_and_list_import_neither_tensorflow_nor_keras(args):
    done = command(*args, python_args=("-X", "importtime"))
    assert done.returncode == 0, done.stderr[-2000:]
    packages = imported_packages(done.stderr)
    assert "hybridvision" in packages  # the import trace was read
    assert not packages & {"tensorflow", "keras", "jax", "torch"}
    if len(args) == 3 or args[0] == "export":
        assert done.stdout.startswith(f"usage: hybridvision {' '.join(args[:-1])}")


@pytest.mark.parametrize("app, tool", APP_TOOLS)
def test_tool_help_is_what_its_module_says_and_parses(app, tool):
    """The parser built in config.py describes the tool as its module's docstring does (so list and --help agree)."""
    parser = cli.tool_parser(app, tool)
    assert parser.description == cli.summary(f"hybridvision.apps.{app}.{tool}")


def test_top_level_help_lists_the_apps_and_data_tools():
    out = command("--help").stdout
    for name in (*APPS, *cli.DATA_TOOLS, "list", "demo", "export", "--version", "--verbose"):
        assert name in out


def test_list_names_every_tool_with_its_summary():
    out = command("list").stdout
    for app, tool in APP_TOOLS:
        assert cli.summary(f"hybridvision.apps.{app}.{tool}") in out
    for tool in cli.DATA_TOOLS:
        assert f"  {tool} " in out


def test_version():
    from hybridvision import __version__

    done = command("--version")
    assert (done.returncode, done.stdout) == (0, f"hybridvision {__version__}\n")


@pytest.mark.parametrize(
    "args, message",
    [
        (["attractivness", "train"], "error: unknown command 'attractivness'; did you mean 'attractiveness'?"),
        (["attractiveness", "trian"], "error: app 'attractiveness' has no tool 'trian'; did you mean 'train'? "
                                      "its tools: train, tune, study"),
        (["attractiveness"], "error: 'hybridvision attractiveness' needs a tool: train, tune, study"),
        (["--frobnicate"], "error: unknown option --frobnicate"),
        (["list", "extra"], "error: 'hybridvision list' takes no arguments"),
        (["demo", "nosuchapp"], "error: unknown app(s) nosuchapp; available:"),
        (["digit_pairs", "train", "--epochs", "0"], "error: --epochs must be >= 1 (got 0)"),
    ],
)
def test_bad_commands_fail_in_one_line_with_exit_code_2(args, message):
    done = command(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(message), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def _fake_tool(monkeypatch, name: str) -> list:
    """Replace module `name` by one whose `main` records its argv; returns the record."""
    calls = []
    fake = types.ModuleType(name)
    fake.main = lambda argv: calls.append(argv) or 7
    monkeypatch.setitem(sys.modules, name, fake)
    monkeypatch.setattr(cli, "quiet_tensorflow", lambda verbose=False, load="keras": calls.append(("quiet", verbose, load)))
    return calls


def test_app_tool_gets_the_rest_of_the_command_line(monkeypatch):
    calls = _fake_tool(monkeypatch, "hybridvision.apps.digit_pairs.compare")
    assert cli.run(["--verbose", "digit_pairs", "compare", "--rounds", "2", "--models", "fc,cnn"]) == 7
    assert calls == [("quiet", True, "keras"), ["--rounds", "2", "--models", "fc,cnn"]]


def test_data_tool_gets_the_rest_of_the_command_line_and_no_tensorflow(monkeypatch):
    calls = _fake_tool(monkeypatch, "hybridvision.data_prep.split")
    assert cli.run(["split", "labelled", "--out", "dataset", "--verbose"]) == 7
    # No TensorFlow loaded for it; --verbose after the command is the tool's own flag.
    assert calls == [("quiet", False, None), ["labelled", "--out", "dataset", "--verbose"]]


def test_demo_runs_through_the_apps_module(monkeypatch, tmp_path):
    import hybridvision.apps.__main__ as apps_main

    seen = {}

    def fake_run_demos(names, out, verbose=False):
        seen.update(names=list(names), out=out, verbose=verbose)
        return [{"app": "digit_pairs", "ok": True, "metric": "test accuracy", "value": 0.9, "chance": 0.55,
                 "seconds": 1.0, "run_dir": str(out)}]

    monkeypatch.setattr(apps_main, "run_demos", fake_run_demos)
    assert cli.run(["--verbose", "demo", "digit_pairs", "--out", str(tmp_path)]) == 0
    assert seen == {"names": ["digit_pairs"], "out": tmp_path, "verbose": True}


@pytest.mark.parametrize("app", sorted(APPS))
def test_python_m_app_train_still_works(app):
    """The module form answers --help with the same parser (it imports Keras: one run per app is enough)."""
    done = subprocess.run([sys.executable, "-m", f"hybridvision.apps.{app}.train", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == cli.tool_parser(app, "train").format_help()


def test_python_m_apps_still_lists_the_apps():
    done = subprocess.run([sys.executable, "-m", "hybridvision.apps"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and all(app in done.stdout for app in APPS)


def test_every_tool_module_is_declared():
    """Every app module with a command-line entry is in its TOOLS (so `hybridvision` reaches it), and back."""
    for app, package in APPS.items():
        folder = ROOT / "apps" / app
        with_main = {p.stem for p in folder.glob("*.py") if 'if __name__ == "__main__":' in p.read_text()}
        assert set(package.TOOLS) == with_main, app
    data_tools = {p.stem for p in (ROOT / "data_prep").glob("*.py") if 'if __name__ == "__main__":' in p.read_text()}
    assert set(cli.DATA_TOOLS) == data_tools


def all_parsers():
    """(name, parser) of every parser a user can reach."""
    yield "hybridvision.apps", apps_parser()
    for app, tool in APP_TOOLS:
        yield f"{app} {tool}", cli.tool_parser(app, tool)
    for tool in cli.DATA_TOOLS:
        yield tool, importlib.import_module(f"hybridvision.data_prep.{tool}").build_parser()
    yield "label export", importlib.import_module("hybridvision.data_prep.label").build_export_parser()


def test_no_help_cites_a_file_a_pip_user_lacks():
    texts = {name: parser.format_help() for name, parser in all_parsers()}
    texts["hybridvision"] = cli.USAGE
    for name, text in texts.items():
        flat = " ".join(text.split())
        for cited in ("docs/", "../shared", "reports.md"):
            assert cited not in flat, f"{name} --help cites {cited}"


def test_every_tool_shows_the_hybridvision_command_as_its_prog():
    for name, parser in all_parsers():
        if name != "hybridvision.apps":
            assert parser.prog == f"hybridvision {name}", name


@pytest.mark.parametrize("app", sorted(APPS))
def test_every_train_flag_is_in_a_section(app):
    config = importlib.import_module(f"hybridvision.apps.{app}.config")
    parser = config.train_parser()
    cls = next(v for v in vars(config).values() if isinstance(v, type) and dataclasses.is_dataclass(v)
               and v.__module__ == config.__name__)
    assert [f.name for f in dataclasses.fields(cls) if field_group(cls, f.name) not in GROUPS] == []
    titles = [group.title for group in parser._action_groups]
    assert titles[-len(GROUPS):] == list(GROUPS.values())


def _plain_tensorflow_noise() -> list[str]:
    done = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    return [line for line in done.stderr.splitlines() if STARTUP_NOISE.match(line)]


def test_tensorflow_startup_noise_is_off_unless_verbose(tmp_path):
    noise = _plain_tensorflow_noise()
    if not noise:
        pytest.skip("TensorFlow prints no start-up noise on this machine: nothing to hide")
    missing = str(tmp_path / "no_run")
    quiet = command("cross_modal", "explain", "--run-dir", missing)
    # The tool ran (it imported Keras, then refused the folder) and said only that.
    assert quiet.returncode == 2
    assert quiet.stderr.startswith("error: ") and "model.keras is missing" in quiet.stderr
    assert quiet.stderr.count("\n") == 1, quiet.stderr
    loud = command("--verbose", "cross_modal", "explain", "--run-dir", missing)
    assert loud.returncode == 2 and noise[0].split("]")[-1] in loud.stderr
    # A user's own TF_CPP_MIN_LOG_LEVEL is theirs: nothing is filtered then.
    own = command("cross_modal", "explain", "--run-dir", missing, env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert own.returncode == 2 and noise[0].split("]")[-1] in own.stderr


def test_cli_module_imports_nothing_heavy_at_the_top():
    """hybridvision/cli.py (and what it imports at the top) stays light: imports of Keras happen in the tools."""
    tree = ast.parse((ROOT / "hybridvision" / "cli.py").read_text())
    top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not top & {"tensorflow", "keras", "numpy"}


def test_a_reader_that_stops_early_ends_the_command_quietly():
    """`hybridvision list | head -1`: the closed pipe stops the command without a traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "hybridvision", "list"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away with most of the listing unread
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 1)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
