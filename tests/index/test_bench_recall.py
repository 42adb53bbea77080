"""The recall measures of bench/index_scale.py: strict set overlap and tie-aware recall."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "index_scale.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("index_scale", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_strict_recall_is_set_overlap(bench):
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    approx = np.array([[4, 3, 2, 1], [5, 6, 9, -1]])
    assert bench.recall_strict(approx, exact) == pytest.approx((1.0 + 0.5) / 2)


def test_tie_aware_recall_accepts_ties_at_the_cut_off(bench):
    ref_scores = np.array([[0.9, 0.8, 0.7, 0.7]])  # ids 3 and 9 tie for the last place
    # The index returned 9 instead of 3: strictly a miss, but its exact score equals the 4th.
    approx = np.array([[1, 2, 4, 9]])
    scores = np.array([[0.9, 0.8, 0.7, 0.7 + 1e-7]])
    assert bench.recall_strict(approx, np.array([[1, 2, 4, 3]])) == pytest.approx(0.75)
    assert bench.recall_tie_aware(approx, scores, ref_scores) == pytest.approx(1.0)


def test_tie_aware_recall_rejects_worse_duplicates_and_missing(bench):
    ref_scores = np.array([[0.9, 0.8, 0.7, 0.6]])
    approx = np.array([[1, 1, 5, -1]])  # a duplicate, one below the 4th score, one missing
    scores = np.array([[0.9, 0.9, 0.5, 1.0]])
    assert bench.recall_tie_aware(approx, scores, ref_scores) == pytest.approx(0.25)


def test_exact_scores_looks_up_vectors_by_sorted_id(bench):
    ids = np.array([10, 20, 30])
    vectors = np.eye(3, dtype=np.float32)
    queries = np.array([[0, 1, 0]], dtype=np.float32)
    np.testing.assert_allclose(bench.exact_scores(np.array([[20, 30]]), queries, ids, vectors), [[1, 0]])
