"""From per-span label scores to non-overlapping entities, exactly as SpanMarker decodes.

SpanMarker takes the argmax label of each candidate span, drops "O", sorts the rest by score
(highest first; ties keep candidate order, since Python's sort is stable) and accepts each span that
overlaps no span accepted before it.
"""

from __future__ import annotations

import numpy as np


def decode_spans(
    spans: np.ndarray, probs: np.ndarray, outside_id: int, min_score: float = 0.0
) -> list[tuple[int, int, int, float]]:
    """Greedy non-overlapping selection.

    Args:
        spans (np.ndarray): (n, 2) word start (inclusive) and end (exclusive) of each candidate.
        probs (np.ndarray): (n, num_labels) softmax probabilities.
        outside_id (int): index of the "O" label.
        min_score (float): drop candidates scoring below this before selection. Defaults to 0.

    Returns:
        list[tuple[int, int, int, float]]: (start, end, label_id, score), sorted by start.
    """
    if len(spans) == 0:
        return []
    labels = probs.argmax(-1)
    scores = probs[np.arange(len(probs)), labels]
    keep = np.flatnonzero((labels != outside_id) & (scores >= min_score))
    order = keep[np.argsort(-scores[keep], kind="stable")]
    taken = np.zeros(int(spans[:, 1].max()), dtype=bool)
    chosen: list[tuple[int, int, int, float]] = []
    for i in order:
        start, end = int(spans[i, 0]), int(spans[i, 1])
        if not taken[start:end].any():
            taken[start:end] = True
            chosen.append((start, end, int(labels[i]), float(scores[i])))
    chosen.sort(key=lambda entity: entity[0])
    return chosen
