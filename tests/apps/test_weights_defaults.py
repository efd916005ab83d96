"""Every app's backbone choice resolves to working weights with no --weights flag.

A backbone with ImageNet weights gets "imagenet" (for EfficientNet-Lite that
needs no internet), a scratch-only one "none"; asking for ImageNet weights of
a scratch-only backbone is refused in one line. The pretrained default is
the offline EfficientNet-Lite0 wherever transfer is the point of the task.
The automatic values are filled in when a config is made (no resolve step
for a caller to remember), and `config.replace` works them out again.
"""

import pytest

from hybridvision.apps.attractiveness.config import BACKBONES as ATTRACTIVENESS_BACKBONES
from hybridvision.apps.attractiveness.config import AttractivenessConfig
from hybridvision.apps.cross_modal.config import CrossModalConfig
from hybridvision.apps.orientation_light.config import MODELS as ORIENTATION_MODELS
from hybridvision.apps.orientation_light.config import OrientationLightConfig
from hybridvision.apps.patch_training.config import PatchTrainingConfig
from hybridvision.common.backbones import BACKBONES, SCRATCH_ONLY
from hybridvision.common.config import config_from_dict, parse_config

APPS = {
    "attractiveness": (AttractivenessConfig, "backbone", ATTRACTIVENESS_BACKBONES, {}),
    "cross_modal": (CrossModalConfig, "backbone", BACKBONES, {"image_size": 96}),
    "orientation_light": (OrientationLightConfig, "model", ORIENTATION_MODELS, {"image_size": 96}),
    "patch_training": (PatchTrainingConfig, "backbone", BACKBONES, {}),
}
CASES = [(app, name) for app, (_, _, names, _) in APPS.items() for name in names]


@pytest.mark.parametrize("app,name", CASES)
def test_default_weights_follow_the_backbone(app, name):
    config_class, field, _, extra = APPS[app]
    cfg = config_class(**{field: name}, **extra)
    assert cfg.weights == ("none" if name in SCRATCH_ONLY else "imagenet")
    assert cfg.learning_rate > 0


@pytest.mark.parametrize("app", list(APPS))
def test_imagenet_for_a_scratch_only_backbone_is_refused(app):
    config_class, field, names, extra = APPS[app]
    scratch = "small" if "small" in names else "from_scratch"
    with pytest.raises(ValueError, match=f"--{field} {scratch} has no ImageNet weights"):
        config_class(**{field: scratch}, weights="imagenet", **extra)


@pytest.mark.parametrize("app", ["attractiveness", "cross_modal", "patch_training"])
def test_transfer_apps_default_to_the_offline_pretrained_backbone(app):
    config_class, field, _, extra = APPS[app]
    cfg = config_class(**extra)
    assert getattr(cfg, field) == "efficientnet_lite0" and cfg.weights == "imagenet"


@pytest.mark.parametrize("app", list(APPS))
def test_automatic_values_are_filled_once_by_every_way_of_making_a_config(app, tmp_path):
    config_class, field, names, extra = APPS[app]
    scratch = "small" if "small" in names else "from_scratch"
    flags = [f"--{field}", scratch] + [a for k, v in extra.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    parsed = parse_config(config_class, flags)
    made = config_class(**{field: scratch}, **extra)
    from_dict = config_from_dict(config_class, {field: scratch, **extra})
    assert parsed == made == from_dict and made.weights == "none" and made.learning_rate > 0
    # The saved, filled-in config reads back to the same config (a resumed run compares them).
    assert config_from_dict(config_class, made.to_dict()) == made
    # replace works the automatic values out again; given values stay.
    pretrained = made.replace(**{field: "efficientnet_lite0"})
    assert pretrained.weights == "imagenet"
    fixed = config_class(**{field: scratch}, weights="none", learning_rate=0.123, **extra)
    assert fixed.replace(seed=3).learning_rate == 0.123 and fixed.replace(seed=3).seed == 3


def test_attractiveness_image_size_follows_the_pretrained_backbone():
    assert AttractivenessConfig().image_size == 224
    assert AttractivenessConfig(backbone="efficientnet_lite2").image_size == 260
    assert AttractivenessConfig(backbone="vgg16_bn").image_size == 224
    assert AttractivenessConfig(backbone="small").image_size == 128
    assert AttractivenessConfig(weights="none").image_size == 128  # random weights: no ImageNet resolution
    assert AttractivenessConfig(image_size=64).image_size == 64
    # replace works it out again for the new backbone; a given size stays.
    assert AttractivenessConfig().replace(backbone="small").image_size == 128
    assert AttractivenessConfig(image_size=96).replace(backbone="small").image_size == 96


def test_cross_modal_image_size_follows_the_pretrained_backbone():
    assert CrossModalConfig().image_size == 224
    assert CrossModalConfig(backbone="efficientnet_lite1").image_size == 240
    assert CrossModalConfig(model="scratch", backbone="small").image_size == 150  # the report's size
    assert CrossModalConfig(image_size=96).image_size == 96
