"""`hybridvision.common.backbones.names`: the backbone names and defaults without Keras."""

import subprocess
import sys

from hybridvision.common.backbones import efficientnet_lite, names, registry


def test_names_agree_with_the_networks():
    assert names.EFFICIENTNET_LITE == tuple(efficientnet_lite.VARIANTS)
    for name, variant in efficientnet_lite.VARIANTS.items():
        assert names.native_resolution(name) == variant.resolution
    assert registry.BACKBONES is names.BACKBONES and registry.resolve_weights is names.resolve_weights


def test_names_and_app_configs_import_without_keras():
    script = (
        "import sys\n"
        "from hybridvision.common.backbones import BACKBONES, resolve_image_size\n"
        "import hybridvision.apps.attractiveness.config, hybridvision.apps.patch_training.config\n"
        "assert resolve_image_size('efficientnet_lite1', 'imagenet', None, 128) == 240\n"
        "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_builders_load_on_first_use():
    from hybridvision.common import backbones

    assert backbones.build_backbone is registry.build_backbone
    assert "build_backbone" in dir(backbones)
