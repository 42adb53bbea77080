"""Segments: one tokenized window of one input with its candidate spans, and the way back to text.

`SpanModel` plans every input as segments, scores their candidates, and turns the decoded word
spans back into character offsets of the whole input here. `Candidates` keeps the scores of one
pass so that decisions can be replayed without the encoder (`SpanModel.decode_candidates`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ner.entities import Entity
from ner.segmentation import Window
from ner.tokenization import Encoded


@dataclass
class Segment:
    """One window of input `item`, starting at `base` (characters for texts, words for word lists)."""

    item: int
    base: int
    window: Window
    enc: Encoded
    spans: np.ndarray  # (n, 2) word start, end (exclusive) of each candidate
    starts: np.ndarray  # token position of each candidate's start marker
    ends: np.ndarray  # token position of each candidate's end marker

    @property
    def cost(self) -> int:
        return self.enc.num_tokens + 2 * len(self.spans)

    def keep(self, mask: np.ndarray) -> Segment:
        """The same window with only the candidates where `mask` holds (two-stage pruning)."""
        return Segment(
            self.item, self.base, self.window, self.enc, self.spans[mask], self.starts[mask], self.ends[mask]
        )


@dataclass
class Candidates:
    """Label probabilities for every candidate span of one extraction pass.

    Attributes:
        items (list[str | list[str]]): the normalized inputs.
        scored (list[tuple[Segment, np.ndarray]]): each segment with its (candidates, labels) probabilities.
    """

    items: list[str | list[str]]
    scored: list[tuple[Segment, np.ndarray]]


def segment_entity(
    item: str | list[str], seg: Segment, start: int, end: int, label: str, score: float, strip: bool
) -> Entity | None:
    """The entity for words `start:end` of `seg`, in offsets of the whole `item`.

    None when the span starts in the part of the window that a neighbouring window owns (it is
    found there), or when all its words vanished in normalization (nothing to point at).
    """
    chars = [c for c in seg.enc.word_chars[start:end] if c is not None]
    if not chars:
        return None
    if isinstance(item, str):
        s, e = seg.base + chars[0][0], seg.base + chars[-1][1]
        if not seg.window.own_start <= s < seg.window.own_end:
            return None
        if strip:
            while s < e and item[s].isspace():
                s += 1
            while e > s and item[e - 1].isspace():
                e -= 1
        return Entity(s, e, item[s:e], label, score)
    ws, we = seg.base + start, seg.base + end
    if not seg.window.own_start <= ws < seg.window.own_end:
        return None
    s = sum(len(w) + 1 for w in item[:ws])
    text = " ".join(item[ws:we])
    return Entity(s, s + len(text), text, label, score, word_start=ws, word_end=we)
