"""Multi-label report: summed confusion, micro precision/recall, AP against hand-computed values."""

import itertools

import numpy as np
import pytest

from hybridvision.apps.patch_training.metrics import f1_thresholds, multilabel_report, random_ap


def test_report_against_hand_counts():
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.2, 0.1], [0.4, 0.8, 0.3], [0.6, 0.7, 0.2], [0.1, 0.6, 0.0]])
    r = multilabel_report(y, s, ["a", "b", "c"], threshold=0.5)
    # a: tp 1 (0.9), fn 1 (0.4), fp 1 (0.6), tn 1; b: tp 2, fp 1, tn 1; c: tn 4.
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (3, 2, 1, 6)
    assert r["precision"] == pytest.approx(3 / 5) and r["recall"] == pytest.approx(3 / 4)
    assert r["per_class_confusion"]["a"] == [[1, 1], [1, 1]]
    # AP of a: ranking 0.9(+) 0.6(-) 0.4(+) 0.1(-) -> (1 + 2/3) / 2; b: 0.8(+) 0.7(+) 0.6(-) -> 1.
    assert r["per_class_ap"] == pytest.approx({"a": (1 + 2 / 3) / 2, "b": 1.0})
    assert r["ap_skipped_classes"] == ["c"]
    assert r["map"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert r["images"] == 4


def _ap(ranking):
    hits, total = 0, 0.0
    for i, positive in enumerate(ranking, start=1):
        if positive:
            hits += 1
            total += hits / i
    return total / sum(ranking)


@pytest.mark.parametrize("k, n", [(1, 4), (2, 5), (3, 6), (6, 6)])
def test_random_ap_is_the_mean_over_all_rankings(k, n):
    rankings = [[int(i in pos) for i in range(n)] for pos in itertools.combinations(range(n), k)]
    assert random_ap(k, n) == pytest.approx(np.mean([_ap(r) for r in rankings]))


def test_f1_thresholds_pick_each_class_best_f1_cut_and_keep_the_default_without_positives():
    y = np.array([[1, 0, 0], [1, 0, 1], [0, 0, 0], [0, 0, 1]])
    scores = np.array([[0.30, 0.9, 0.8], [0.20, 0.1, 0.6], [0.10, 0.5, 0.7], [0.05, 0.2, 0.4]])
    # class 0: positives score 0.30 and 0.20, negatives 0.10 and 0.05 -> cut at 0.20 gives F1 1;
    # class 1: no positives -> the default; class 2: positives 0.6 and 0.4 among negatives 0.8 and 0.7 -> a cut
    # at 0.4 takes all four (F1 2/3), higher cuts lose recall faster than they gain precision.
    assert f1_thresholds(y, scores, default=0.35) == pytest.approx([0.20, 0.35, 0.4])
