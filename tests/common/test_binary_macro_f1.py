"""BinaryMacroF1: macro F1 of one sigmoid output, against scikit-learn, and its config."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from hybridvision.common.binary_macro_f1 import BinaryMacroF1
from tests.layer_harness import check_config_round_trip, check_init_args_in_config


def test_binary_macro_f1_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50)
    p = rng.uniform(0, 1, 50)
    metric = BinaryMacroF1()
    metric.update_state(y[:20, None], p[:20, None])
    metric.update_state(y[20:, None], p[20:, None])
    expected = f1_score(y, (p > 0.5).astype(int), average="macro")
    assert abs(float(metric.result()) - expected) < 1e-6
    # Keras's own F1Score on the sigmoid column is only the positive class's F1.
    assert abs(expected - f1_score(y, (p > 0.5).astype(int))) > 1e-3
    clone = BinaryMacroF1.from_config(metric.get_config())
    assert clone.name == "f1_macro" and clone.binary_threshold == 0.5


def test_binary_macro_f1_through_the_harness():
    metric = BinaryMacroF1(threshold=0.3, name="f1")
    check_config_round_trip(metric)
    check_init_args_in_config(BinaryMacroF1, {"threshold": 0.3})
    config = metric.get_config()
    assert config["average"] == "macro" and config["threshold"] == 0.3  # F1Score's config, our threshold
    assert BinaryMacroF1.from_config(config).binary_threshold == 0.3
    # A config saved before get_config was chained to F1Score's still loads.
    old = BinaryMacroF1.from_config({"name": "f1_macro", "dtype": "float32", "threshold": 0.5})
    assert old.get_config() == BinaryMacroF1().get_config()
    with pytest.raises(ValueError, match="macro"):
        BinaryMacroF1(average="micro")
