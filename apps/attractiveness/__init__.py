"""CelebA attribute prediction with structured covariates fused into the convolution.

The original report 1 (ShortFuse / HybridConv2D on CelebA `Attractive`): a
plain network (`--model baseline`), the same network with one or more convs
hybridised (`--model hybrid`), and late fusion (`--model late_fusion`), all
starting from the same weights at one seed, so they can be compared fairly.

    python -m hybridvision.apps.attractiveness.train --help
    python -m hybridvision.apps.attractiveness.tune --help     # matched sweeps + comparison table
    python -m hybridvision.apps.attractiveness.study --help    # baseline / late fusion / hybrid / FiLM / CondConv x
                                                  # covariate sets x controls, over seeds, with intervals
"""

DESCRIPTION = "CelebA Attractive from faces + covariates (Male, ...): HybridConv2D vs baseline vs late fusion"
# The command-line tools (modules of this package): `hybridvision attractiveness <tool>`.
TOOLS = ("train", "tune", "study")
# The demo faces' Attractive depends on e, drawn as the eye size and the clothes' colour,
# with a sign set by Male (big eyes, red clothes: more attractive women, less attractive
# men), and a little on Male, Young, Smiling and High_Cheekbones (see hybridvision.common.data.demo).
# The covariates alone (the printed floor) and late fusion's linear head cannot express
# the e x Male interaction; the first conv hybridised with the covariates can. With these
# settings (demo data revision celeba 3) the hybrid reached test accuracy 0.800, 0.792 and
# 0.833 at seeds 0, 1, 2 against the floor's 0.650 (2 loaded AVX2 CPU cores; 0.783 at seed 0
# on a quiet AVX-512 CPU with oneDNN: the CPU's kernels change the numbers); with the eyes
# alone carrying e (revision 2) it stayed level with the floor (0.683, 0.658, 0.642-0.667).
# 120 test faces: 0.01 is about one face.
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
