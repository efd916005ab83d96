"""Retrieval mAP against hand-computed examples."""

import numpy as np
import pytest

from hybridvision.common.metrics import retrieval_map


def test_retrieval_map_hand_computed():
    # Query [1, 0] of class 0; cosine ranking of the gallery: item 0 (class 0, hit),
    # item 1 (class 1), item 2 (class 0, hit) -> AP = (1/1 + 2/3) / 2.
    gallery = [[1.0, 0.1], [0.9, 0.5], [0.0, 1.0]]
    assert retrieval_map([[1.0, 0.0]], [0], gallery, [0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    # Cosine, not dot product: scaling an embedding changes nothing.
    assert retrieval_map([[5.0, 0.0]], [0], np.array(gallery) * 7, [0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    # Two queries: the second (class 1) ranks its only item first -> AP 1.
    assert retrieval_map([[1.0, 0.0], [0.9, 0.5]], [0, 1], gallery, [0, 1, 0]) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)


def test_retrieval_map_same_set_leaves_the_query_out():
    items = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
    labels = [0, 1, 0, 1]
    # Query 0: ranking of the others by cosine: 1 (0.8, miss), 3 (0.6, miss), 2 (0.0, hit) -> AP 1/3.
    # Query 1: 3 (0.96, hit) first -> AP 1. Query 2: 3 (0.8, miss), 1 (0.6, miss), 0 (0, hit) -> 1/3.
    # Query 3: 1 (0.96, hit) -> AP 1.
    expected = (1 / 3 + 1 + 1 / 3 + 1) / 4
    assert retrieval_map(items, labels, items, labels, same_set=True) == pytest.approx(expected)
    # Without leaving it out, every query would find itself first.
    assert retrieval_map(items, labels, items, labels) > expected


def test_retrieval_map_skips_queries_without_relevant_items():
    assert retrieval_map([[1.0, 0.0], [0.0, 1.0]], [0, 5], [[1.0, 0.0]], [0]) == pytest.approx(1.0)
    assert np.isnan(retrieval_map([[1.0, 0.0]], [3], [[1.0, 0.0]], [0]))
