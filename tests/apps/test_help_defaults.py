"""The defaults stated in words in every app's `train --help` are the config's real defaults.

argparse appends each static default itself ("(default: 32)"); this checks the
words the help texts add: "(0.005 as in the original report)", "default 16 for
from_scratch, else 32", ... Numbers stated as a static default are compared with
the field's default; a default that depends on other settings (an automatic
field, None until the config is made) is checked in `STATED`: the words must be
in the help and the config made with those settings must hold that value. A help
text that says "default" and is checked by neither fails the test, so a new
claim cannot go unchecked.
"""

import dataclasses
import importlib
import re

import pytest

from hybridvision.common.config import field_help

APPS = {
    "attractiveness": "AttractivenessConfig",
    "cross_modal": "CrossModalConfig",
    "digit_pairs": "DigitPairsConfig",
    "orientation_light": "OrientationLightConfig",
    "patch_training": "PatchTrainingConfig",
}

# (app, field, words in its help, settings the config is made with, the value they give).
STATED = [
    ("orientation_light", "optimizer", "sgd for from_scratch", {"model": "from_scratch"}, "sgd"),
    ("orientation_light", "optimizer", "adabound for inception_v3", {"model": "inception_v3"}, "adabound"),
    ("orientation_light", "optimizer", "adam for the others", {"model": "efficientnet_lite0"}, "adam"),
    ("orientation_light", "optimizer", "adam for the others", {"model": "resnet50"}, "adam"),
    ("orientation_light", "learning_rate", "from_scratch sgd 0.005", {"model": "from_scratch"}, 0.005),
    ("orientation_light", "learning_rate", "inception_v3 adabound 0.003", {"model": "inception_v3"}, 0.003),
    ("orientation_light", "learning_rate", "adam 1e-3", {"model": "efficientnet_lite0"}, 1e-3),
    ("orientation_light", "learning_rate", "adam 1e-3", {"model": "from_scratch", "optimizer": "adam"}, 1e-3),
    ("orientation_light", "learning_rate", "sgd 1e-2", {"model": "resnet50", "optimizer": "sgd"}, 1e-2),
    ("orientation_light", "learning_rate", "adabound 4e-3", {"model": "resnet50", "optimizer": "adabound"}, 4e-3),
    ("orientation_light", "final_lr", "default 0.005 for inception_v3 with adabound", {"model": "inception_v3"}, 0.005),
    ("orientation_light", "final_lr", "else 0.1", {"model": "resnet50", "optimizer": "adabound"}, 0.1),
    ("orientation_light", "batch_size", "default 16 for from_scratch", {"model": "from_scratch"}, 16),
    ("orientation_light", "batch_size", "else 32", {"model": "inception_v3"}, 32),
    ("orientation_light", "head_dropout", "0.55 for inception_v3", {"model": "inception_v3"}, 0.55),
    ("orientation_light", "head_dropout", "0.6 for resnet50", {"model": "resnet50"}, 0.6),
    ("orientation_light", "head_dropout", "0.7 for the others", {"model": "from_scratch"}, 0.7),
    ("orientation_light", "head_dropout", "0.7 for the others", {"model": "efficientnet_lite0"}, 0.7),
    ("orientation_light", "weights", "default imagenet for the transfer models", {"model": "resnet50"}, "imagenet"),
    ("orientation_light", "weights", "none for from_scratch", {"model": "from_scratch"}, "none"),
    ("attractiveness", "learning_rate", "1e-4 for efficientnet_lite", {}, 1e-4),
    ("attractiveness", "learning_rate", "1e-05 for vgg16_bn", {"backbone": "vgg16_bn"}, 1e-5),
    ("attractiveness", "learning_rate", "0.001 from random weights", {"weights": "none"}, 1e-3),
    ("attractiveness", "image_size", "efficientnet_lite0 224", {}, 224),
    ("attractiveness", "image_size", "lite1 240", {"backbone": "efficientnet_lite1"}, 240),
    ("attractiveness", "image_size", "lite2 260", {"backbone": "efficientnet_lite2"}, 260),
    ("attractiveness", "image_size", "vgg16_bn 224", {"backbone": "vgg16_bn"}, 224),
    ("attractiveness", "image_size", "else 128", {"backbone": "small"}, 128),
    ("attractiveness", "weights", "default imagenet where the backbone has it", {}, "imagenet"),
    ("attractiveness", "weights", "none for small", {"backbone": "small"}, "none"),
    ("attractiveness", "target", "default Attractive on CelebA", {}, "Attractive"),
    ("attractiveness", "covariates", "default Male on CelebA", {}, ["Male"]),
    ("attractiveness", "monitor", "default val_accuracy on CelebA", {}, "val_accuracy"),
    ("attractiveness", "monitor", "val_auc on a table", {"labels": "table.csv"}, "val_auc"),
    ("cross_modal", "learning_rate", "default 1e-3 for every model", {}, 1e-3),
    ("cross_modal", "learning_rate", "default 1e-3 for every model", {"model": "frozen"}, 1e-3),
    ("cross_modal", "image_size", "(efficientnet_lite0 224)", {}, 224),
    ("cross_modal", "image_size", "else 150", {"backbone": "small"}, 150),
    ("cross_modal", "weights", "default imagenet where the backbone has it", {}, "imagenet"),
    ("cross_modal", "weights", "none for small/from_scratch", {"backbone": "small"}, "none"),
    ("cross_modal", "weights", "--model scratch always uses none", {"model": "scratch"}, "none"),
    ("patch_training", "learning_rate", "default 0.01 with pretrained weights", {}, 0.01),
    ("patch_training", "learning_rate", "0.01 for a backbone from random weights", {"weights": "none"}, 0.01),
    ("patch_training", "patch_lr_factor", "default 0.1 with pretrained weights", {}, 0.1),
    ("patch_training", "patch_lr_factor", "1 for a backbone from random weights", {"weights": "none"}, 1),
    ("patch_training", "weights", "default imagenet for the pretrained backbones", {}, "imagenet"),
    ("patch_training", "weights", "none for small/from_scratch", {"backbone": "small"}, "none"),
]
# Settings every config of an app is made with (inception_v3 needs at least 75 px).
BASE = {"orientation_light": {"image_size": 96}}
# Help texts that say "default" without stating a value a config holds.
NOT_A_VALUE = {
    ("*", "run_dir"),  # the run folder is made by Run when the run starts
    ("*", "coordinator"), ("*", "num_processes"), ("*", "process_id"),  # read from the environment at start
    ("cross_modal", "modalities"),  # "every folder under --data-dir": read from the data
    ("attractiveness", "labels"),  # "labels.csv in --data-dir when it is there": looked up on disk
    # "default 100 for late_fusion, 1 for ...": resolved per model when the model is built (tune and study change
    # a filled config's model); checked in tests/apps/attractiveness (test_covariate_lr_multiplier_default_...)
    ("attractiveness", "covariate_lr_multiplier"),
    ("cross_modal", "finetune_layers"),  # "0 = the backbone's default": resolved per backbone at fine-tuning
    ("patch_training", "patch_cache"),  # None: cache_patches picks the folder (test_patch_cache_default below)
}
# A number stated as the default or the report's value: "(0.4 as in the original report)",
# "(32 was the best of ...)", "default 5 ...".
NUMBER = r"(-?\d[\d.]*(?:e-?\d+)?)"
STATIC = [rf"\({NUMBER} as in the original report", rf"\({NUMBER} was the best", rf"\bdefault:? {NUMBER}\b"]


def _config_class(app):
    return getattr(importlib.import_module(f"hybridvision.apps.{app}.config"), APPS[app])


def _words(app, field):
    return " ".join(field_help(_config_class(app), field).split())


def _train_help(app):
    config = importlib.import_module(f"hybridvision.apps.{app}.config")
    return " ".join(config.train_parser().format_help().split())


@pytest.mark.parametrize("app", APPS)
def test_every_stated_default_in_train_help_is_checked(app):
    cls = _config_class(app)
    checked = {field for a, field, *_ in STATED if a == app}
    text = _train_help(app)
    compared = 0
    for field in dataclasses.fields(cls):
        words = _words(app, field.name)
        # The help as rendered by `train --help` carries these words.
        assert words[:40] in text, (app, field.name)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        stated = [match for pattern in STATIC for match in re.findall(pattern, words)]
        if field.name in checked or default is None:
            pass
        elif stated:
            for value in stated:
                assert float(value) == pytest.approx(float(default)), (
                    f"{app} --{field.name}: the help says {value}, the default is {default}")
                compared += 1
            continue
        says_default = re.search(r"\bdefault\b", words)
        if says_default and field.name not in checked:
            assert (app, field.name) in NOT_A_VALUE or ("*", field.name) in NOT_A_VALUE, (
                f"{app} --{field.name} states a default in words that no check covers: {words!r}")
    if app == "digit_pairs":  # the report's settings, stated in its help texts
        assert compared >= 4


@pytest.mark.parametrize("app,field,words,settings,value", STATED,
                         ids=[f"{a}-{f}-{'-'.join(map(str, s.values())) or 'default'}" for a, f, _, s, _ in STATED])
def test_stated_automatic_default_is_the_configs(app, field, words, settings, value):
    assert words in _words(app, field), f"{app} --{field}: the help no longer says {words!r}"
    cfg = _config_class(app)(**{**BASE.get(app, {}), **settings})
    assert getattr(cfg, field) == pytest.approx(value) if isinstance(value, float) else getattr(cfg, field) == value


def test_patch_cache_default_is_the_one_cache_patches_uses():
    import inspect
    from pathlib import Path

    from hybridvision.common.data.voc import DEFAULT_PATCH_CACHE, cache_patches

    assert "(default .cache/voc_patches)" in _words("patch_training", "patch_cache")
    assert DEFAULT_PATCH_CACHE == Path(".cache/voc_patches") and "DEFAULT_PATCH_CACHE" in inspect.getsource(cache_patches)
