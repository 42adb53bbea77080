"""SpanMarker's greedy decoding."""

from __future__ import annotations

import numpy as np

from ner.decoding import decode_spans
from ner.tokenization import candidate_spans


def _probs(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def test_candidate_spans_order_and_limit():
    assert candidate_spans(3, 2).tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]
    assert candidate_spans(0, 8).shape == (0, 2)
    assert len(candidate_spans(20, 8)) == sum(min(8, 20 - i) for i in range(20))


def test_highest_score_wins_and_overlaps_are_dropped():
    spans = np.array([[0, 1], [0, 2], [1, 2], [2, 3]])
    probs = _probs([[0.1, 0.9, 0.0], [0.05, 0.0, 0.95], [0.2, 0.8, 0.0], [0.9, 0.1, 0.0]])
    # [0,2] (0.95) beats the overlapping [0,1] and [1,2]; [2,3] is "O".
    assert decode_spans(spans, probs, outside_id=0) == [(0, 2, 2, np.float32(0.95).item())]


def test_ties_keep_candidate_order():
    spans = np.array([[0, 2], [1, 3]])
    probs = _probs([[0.2, 0.8], [0.2, 0.8]])
    assert [s[:2] for s in decode_spans(spans, probs, 0)] == [(0, 2)]


def test_results_sorted_by_start_and_min_score():
    spans = np.array([[2, 3], [0, 1]])
    probs = _probs([[0.1, 0.9], [0.4, 0.6]])
    assert [s[:2] for s in decode_spans(spans, probs, 0)] == [(0, 1), (2, 3)]
    assert [s[:2] for s in decode_spans(spans, probs, 0, min_score=0.7)] == [(2, 3)]


def test_outside_label_need_not_be_first():
    spans = np.array([[0, 1]])
    assert decode_spans(spans, _probs([[0.3, 0.7]]), outside_id=1) == []
