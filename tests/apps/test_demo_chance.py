"""The demo table's chance column is computed from the demo data each run used."""

import json

import pytest

from hybridvision.apps import attractiveness, cross_modal, digit_pairs, orientation_light, patch_training
from hybridvision.apps.attractiveness.config import AttractivenessConfig
from hybridvision.apps.cross_modal.config import CrossModalConfig
from hybridvision.common.config import parse_config


def _run_dir(tmp_path, metrics=None, config=None):
    if metrics is not None:
        (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    return tmp_path


def test_chance_from_the_runs_metrics(tmp_path):
    (tmp_path / "d").mkdir()
    run = _run_dir(tmp_path / "d", {"notes": {"share_of_ones": {"test": 0.536}}})
    assert digit_pairs.chance(run) == pytest.approx(0.536)
    run = _run_dir(tmp_path / "d", {"notes": {"share_of_ones": {"test": 0.3}}})
    assert digit_pairs.chance(run) == pytest.approx(0.7)
    per_class = {"left": {"support": 10}, "center": {"support": 25}, "right": {"support": 15}}
    run = _run_dir(tmp_path / "d", {"test": {"per_class": per_class}})
    assert orientation_light.chance(run) == pytest.approx(0.5)
    run = _run_dir(tmp_path / "d", {"val": {"chance_map": 0.189}})
    assert patch_training.chance(run) == pytest.approx(0.189)


@pytest.mark.slow
def test_chance_from_the_demo_data(tmp_path):
    # The attractiveness demo's test split: 79 of its 120 faces are Attractive.
    run = _run_dir(tmp_path, config=parse_config(AttractivenessConfig, attractiveness.DEMO_ARGS))
    assert attractiveness.chance(run) == pytest.approx(79 / 120)
    # The cross_modal demo: five classes, tested on the photos' test split and every cartoon and sketch.
    run = _run_dir(tmp_path, config=parse_config(CrossModalConfig, cross_modal.DEMO_ARGS))
    assert cross_modal.chance(run) == pytest.approx(1 / 5)
