"""Every app is registered for `python -m apps`, declares its demo, and answers `--help`."""

import importlib
import json

import pytest

from apps.__main__ import APP_ORDER, _lookup, available_apps, main

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
    assert 0.0 <= module.CHANCE < 1.0


@pytest.mark.parametrize("name", sorted(APPS))
def test_train_help_exits_cleanly_and_lists_the_shared_flags(name, capsys):
    train = importlib.import_module(f"apps.{name}.train")
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
