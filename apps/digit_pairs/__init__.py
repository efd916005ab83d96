"""Digit-pair comparison: is the first of two MNIST digits <= the second?

FC, CNN, deep CNN, Siamese and auxiliary-loss models (the original report 2),
trained with `hybridvision digit_pairs train` and compared over repeated
seeded runs with `hybridvision digit_pairs compare`.
"""

DESCRIPTION = "MNIST digit pairs: is the first <= the second? FC/CNN/Siamese/auxiliary-loss models"
# The command-line tools (modules of this package): `hybridvision digit_pairs <tool>`.
TOOLS = ("train", "compare", "predict", "explain")
# The demo data is scikit-learn's 8x8 digits upsampled (SYNTHETIC, see hybridvision.common.data.demo).
# The report's aux net (three dropouts per branch) learns these in about 40 epochs (about 20 s):
# 12 epochs gave 0.647 test accuracy, 25 gave 0.853, 40 gave 0.919 (measured once each).
DEMO_ARGS = ["--model", "aux", "--epochs", "40"]
HEADLINE = ("test", "accuracy")


def chance(run_dir) -> float:
    """Share of the majority answer among the run's test pairs (metrics.json's notes)."""
    import json
    from pathlib import Path

    ones = json.loads((Path(run_dir) / "metrics.json").read_text())["notes"]["share_of_ones"]["test"]
    return max(ones, 1 - ones)
