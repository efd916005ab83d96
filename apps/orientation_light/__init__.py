"""Face orientation and light-source direction on CelebA faces (3 classes each).

System 5 of SEEDS.md: a from-scratch VGG-style CNN and InceptionV3 / ResNet50
transfer models, tuned with KerasTuner, and a labeller that writes a CSV of
predictions for a whole image folder.

    python -m apps.orientation_light.train --help     # one model, one task
    python -m apps.orientation_light.tune --help      # grid / random / Hyperband search
    python -m apps.orientation_light.predict --help   # label a folder: CSV + 3x3 grid
"""

DESCRIPTION = "CelebA face orientation / light source (left, center, right): from-scratch CNN vs transfer, tuner, labeller"
# The from-scratch CNN on the synthetic orientation faces (60 train images per
# class at 48 px): about 30 s on 2 CPU cores.
DEMO_ARGS = [
    "--task", "orientation",
    "--model", "from_scratch",
    "--image-size", "48",
    "--epochs", "8",
    "--batch-size", "16",
]
HEADLINE = ("test", "accuracy")
# Three balanced classes (15 test images each).
CHANCE = 1 / 3
