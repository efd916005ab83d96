"""Pascal VOC multi-label classification with a patch pre-training curriculum.

System 3 of SEEDS.md: one backbone with a multi-label head (sigmoid,
weighted binary cross-entropy) and a patch head (pooling to 4x4 or a spatial
pyramid, three dense layers, softmax). Epochs before `--switch-epoch` train
on object crops, the rest on full images. `python -m apps.patch_training.train`
runs one curriculum, `python -m apps.patch_training.sweep` a range of switch
epochs with the report's figures.
"""

DESCRIPTION = "Pascal VOC multi-label classification with a patch pre-training curriculum (SPP head)"
DEMO_ARGS = ["--backbone", "small", "--image-size", "64", "--epochs", "8", "--switch-epoch", "2", "--min-patch", "32"]
HEADLINE = ("val", "map")
CHANCE = 0.15
