"""Pascal VOC multi-label classification with a patch pre-training curriculum.

The original report 3: one backbone with a multi-label head (sigmoid,
weighted binary cross-entropy) and a patch head (pooling to 4x4 or a spatial
pyramid, three dense layers, softmax). Epochs before `--switch-epoch` train
on object crops, the rest on full images. `hybridvision patch_training train`
runs one curriculum, `hybridvision patch_training sweep` a range of switch
epochs with the report's figures.
"""

DESCRIPTION = "Pascal VOC multi-label classification with a patch pre-training curriculum (SPP head)"
# The command-line tools (modules of this package): `hybridvision patch_training <tool>`.
TOOLS = ("train", "tune", "sweep", "predict", "explain")
# 36 val images, 84 train for 20 classes: a higher rate and less dropout than
# the defaults let the random-init small net learn in 20 short epochs.
DEMO_ARGS = [
    "--backbone", "small", "--image-size", "64", "--epochs", "20", "--switch-epoch", "5", "--min-patch", "32",
    "--learning-rate", "0.03", "--dropout", "0.2",
]  # fmt: skip
HEADLINE = ("val", "map")


def chance(run_dir) -> float:
    """The mAP of random scores on the run's val split (metrics.json's val.chance_map)."""
    import json
    from pathlib import Path

    return json.loads((Path(run_dir) / "metrics.json").read_text())["val"]["chance_map"]
