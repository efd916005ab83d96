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
# The demo faces' Attractive depends on the eye size with a sign set by Male
# (big eyes: more attractive women, less attractive men), and a little on Male,
# Young, Smiling and High_Cheekbones (see common.data.demo). The covariates alone
# (the printed floor) and late fusion's linear head cannot express the eye x Male
# interaction; the first conv hybridised with the covariates can. On 2 CPU cores
# these settings are NOT reliably above the floor: two runs gave the hybrid 0.683
# and 0.658 test accuracy (runs differ: CPU thread order; 10 epochs gave 0.642 and
# 0.667) against the floor's 0.650 and the majority class's 0.658 (late fusion:
# 0.658, one class); 120 test faces make a 0.02 difference 2-3 faces.
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
# Share of the majority class (Attractive) in the demo's test split: 79 of 120.
CHANCE = 0.658
