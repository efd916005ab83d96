"""CelebA attribute prediction with structured covariates fused into the convolution.

Report 1 of docs/reports.md (ShortFuse / HybridConv2D on CelebA `Attractive`): a
plain network (`--model baseline`), the same network with one or more convs
hybridised (`--model hybrid`), and late fusion (`--model late_fusion`), all
starting from the same weights at one seed, so they can be compared fairly.

    python -m apps.attractiveness.train --help
    python -m apps.attractiveness.tune --help     # matched sweeps + comparison table
    python -m apps.attractiveness.study --help    # baseline / late fusion / hybrid / FiLM / CondConv x
                                                  # covariate sets x controls, over seeds, with intervals
"""

DESCRIPTION = "CelebA Attractive from faces + covariates (Male, ...): HybridConv2D vs baseline vs late fusion"
# The demo faces' Attractive depends on the eye size and on Male, Young,
# Smiling and High_Cheekbones (see common.data.demo), so the hybrid has
# something to learn from both the pixels and the covariates.
DEMO_ARGS = [
    "--model", "hybrid",
    "--backbone", "small",
    "--weights", "none",
    "--covariates", "Male,Young,Smiling,High_Cheekbones",
    "--hybrid-positions", "first",
    "--image-size", "48",
    "--epochs", "6",
    "--batch-size", "32",
    "--cache",
]
HEADLINE = ("test", "accuracy")
# Share of the majority class (Attractive) in the demo's test split: 76 of 120.
CHANCE = 0.633
