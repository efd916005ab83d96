"""CelebA attribute prediction with structured covariates fused into the convolution.

The original report 1 (ShortFuse / HybridConv2D on CelebA `Attractive`): a
plain network (`--model baseline`), the same network with one or more convs
hybridised (`--model hybrid`), and late fusion (`--model late_fusion`), all
starting from the same weights at one seed, so they can be compared fairly.

    hybridvision attractiveness train --help
    hybridvision attractiveness tune --help     # matched sweeps + comparison table
    hybridvision attractiveness study --help    # baseline / late fusion / hybrid / FiLM / CondConv x
                                                # covariate sets x controls, over seeds, with intervals
"""

DESCRIPTION = "CelebA Attractive from faces + covariates (Male, ...): HybridConv2D vs baseline vs late fusion"
# The command-line tools (modules of this package): `hybridvision attractiveness <tool>`.
TOOLS = ("train", "tune", "study", "predict", "explain")
# The demo faces' Attractive depends on e, drawn as the eye size and the clothes' colour,
# with a sign set by Male (big eyes, red clothes: more attractive women, less attractive
# men), and a little on Male, Young, Smiling and High_Cheekbones (see hybridvision.common.data.demo).
# The covariates alone (the printed floor) and late fusion's linear head cannot express
# the e x Male interaction; the first conv hybridised with the covariates can, which is
# why the demo runs the hybrid with the covariates at the first conv (what it reaches:
# docs/results/make_demo in the repository). 120 test faces: 0.01 is about one face.
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


def chance(run_dir) -> float:
    """Share of the majority class of the target in the test split the run in `run_dir` used."""
    import json
    from pathlib import Path

    from hybridvision.apps.attractiveness.config import AttractivenessConfig
    from hybridvision.apps.attractiveness.data import load_data
    from hybridvision.common.config import config_from_dict

    cfg = config_from_dict(AttractivenessConfig, json.loads((Path(run_dir) / "config.json").read_text()))
    tables, _, _ = load_data(cfg)
    return float(tables["test"]["label"].value_counts(normalize=True).max())
