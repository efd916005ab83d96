"""Every app is registered for `python -m hybridvision.apps`, declares its demo, and answers `--help`."""

import importlib
import json
import sys

import pytest

from hybridvision.apps.__main__ import APP_ORDER, _lookup, _run_quietly, available_apps, main

APPS = available_apps()


def test_every_planned_app_exists():
    assert list(APPS) == list(APP_ORDER)


@pytest.mark.parametrize("name", sorted(APPS))
def test_app_declares_its_demo(name):
    module = APPS[name]
    assert isinstance(module.DESCRIPTION, str) and module.DESCRIPTION
    assert all(isinstance(a, str) for a in module.DEMO_ARGS)
    split, key = module.HEADLINE
    assert split in ("val", "test") and key
    assert callable(module.chance)


@pytest.mark.parametrize("name", sorted(APPS))
def test_train_help_exits_cleanly_and_lists_the_shared_flags(name, capsys):
    train = importlib.import_module(f"hybridvision.apps.{name}.train")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--data-dir", "--run-dir", "--epochs", "--batch-size", "--learning-rate",
                 "--image-size", "--seed", "--weights", "--config", "--quiet"):
        assert flag in text, f"{name}: {flag} missing from --help"


def test_listing_prints_every_app(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in APPS:
        assert name in out


def test_headline_lookup_reads_dotted_keys():
    metrics = json.loads('{"test": {"accuracy": 0.5, "per_modality": {"photo": {"accuracy": 0.75}}}}')
    assert _lookup(metrics, "test", "accuracy") == 0.5
    assert _lookup(metrics, "test", "per_modality.photo.accuracy") == 0.75
    assert _lookup(metrics, "val", "accuracy") is None


def test_demo_runner_drops_tensorflow_startup_noise_and_keeps_the_rest(capsys):
    script = (
        "import sys\n"
        "print('WARNING: All log messages before absl::InitializeLog() is called are written to STDERR', file=sys.stderr)\n"
        "print('I0000 00:00:1795431322.861121    4930 port.cc:153] oneDNN custom operations are on.', file=sys.stderr)\n"
        "print('E0000 00:00:1795428492.533661   29228 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)')\n"
        "print('E0000 00:00:1795428492.533661   29228 other.cc:1] a real error', file=sys.stderr)\n"
        "print('digit_pairs aux: test accuracy 0.951')\n"
        "sys.exit(3)\n"
    )
    done = _run_quietly([sys.executable, "-c", script])
    out = capsys.readouterr().out
    assert done.returncode == 3
    assert "a real error" in out and "test accuracy 0.951" in out
    assert "absl" not in out and "oneDNN" not in out and "cuInit" not in out
