"""Every app's backbone choice resolves to working weights with no --weights flag.

A backbone with ImageNet weights gets "imagenet" (for EfficientNet-Lite that
needs no internet), a scratch-only one "none"; asking for ImageNet weights of
a scratch-only backbone is refused in one line. The pretrained default is
the offline EfficientNet-Lite0 wherever transfer is the point of the task.
"""

import pytest

from apps.attractiveness.config import BACKBONES as ATTRACTIVENESS_BACKBONES
from apps.attractiveness.config import AttractivenessConfig
from apps.attractiveness.config import resolve as resolve_attractiveness
from apps.cross_modal.config import CrossModalConfig
from apps.cross_modal.config import resolve as resolve_cross_modal
from apps.orientation_light.config import MODELS as ORIENTATION_MODELS
from apps.orientation_light.config import OrientationLightConfig
from apps.orientation_light.config import resolve as resolve_orientation
from apps.patch_training.config import PatchTrainingConfig
from apps.patch_training.config import resolve as resolve_patch
from common.backbones import BACKBONES, SCRATCH_ONLY

APPS = {
    "attractiveness": (AttractivenessConfig, resolve_attractiveness, "backbone", ATTRACTIVENESS_BACKBONES, {}),
    "cross_modal": (CrossModalConfig, resolve_cross_modal, "backbone", BACKBONES, {"image_size": 96}),
    "orientation_light": (OrientationLightConfig, resolve_orientation, "model", ORIENTATION_MODELS, {"image_size": 96}),
    "patch_training": (PatchTrainingConfig, resolve_patch, "backbone", BACKBONES, {}),
}
CASES = [(app, name) for app, (_, _, _, names, _) in APPS.items() for name in names]


@pytest.mark.parametrize("app,name", CASES)
def test_default_weights_follow_the_backbone(app, name):
    config_class, resolve, field, _, extra = APPS[app]
    cfg = resolve(config_class(**{field: name}, **extra))
    assert cfg.weights == ("none" if name in SCRATCH_ONLY else "imagenet")
    assert cfg.learning_rate > 0


@pytest.mark.parametrize("app", [a for a in APPS if a != "orientation_light"])
def test_imagenet_for_a_scratch_only_backbone_is_refused(app):
    config_class, resolve, field, _, extra = APPS[app]
    with pytest.raises(ValueError, match="has no ImageNet weights"):
        resolve(config_class(**{field: "small"}, weights="imagenet", **extra))


@pytest.mark.parametrize("app", ["attractiveness", "cross_modal", "patch_training"])
def test_transfer_apps_default_to_the_offline_pretrained_backbone(app):
    config_class, resolve, field, _, extra = APPS[app]
    cfg = resolve(config_class(**extra))
    assert getattr(cfg, field) == "efficientnet_lite0" and cfg.weights == "imagenet"
