"""Segments: one tokenized window of one input with its candidate spans, and the way back to text.

`SpanModel` plans every input as segments (`plan_segments`), batches them by cost
(`length_batches`), scores their candidates, and turns the decoded word spans back into character
offsets of the whole input (`segment_entity`). `Candidates` keeps the scores of one
pass so that decisions can be replayed without the encoder (`SpanModel.decode_candidates`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ner.entities import Entity
from ner.errors import InputError
from ner.segmentation import Window, word_windows
from ner.tokenization import Encoded, SpanTokenizer, candidate_spans, marker_positions


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


def plan_segments(
    items: list[str | list[str]],
    tokenizer: SpanTokenizer,
    max_tokens: int,
    entity_max_length: int,
    text_windows: Callable[[str], list[Window]],
) -> list[Segment]:
    """Every input as tokenized windows with all their candidate spans of up to `entity_max_length` words.

    Texts are cut by `text_windows` (sentence boundaries first); word lists longer than `max_tokens`
    are cut into overlapping word windows. Blank inputs get no segment (they have no entities).
    """
    texts: list[tuple[int, int, Window, str]] = []
    word_lists: list[tuple[int, int, Window, list[str]]] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            if item.strip():
                for w in text_windows(item):
                    texts.append((i, w.start, w, item[w.start : w.end]))
            continue
        if not item:
            continue
        enc = tokenizer.encode_words([item])[0]
        if enc.num_tokens <= max_tokens:
            word_lists.append((i, 0, Window(0, len(item), 0, len(item)), item))
            continue
        ends = [(t[1] - 1) if t else 0 for t in enc.word_tokens]
        ends = list(np.maximum.accumulate(ends))
        budget = max_tokens - tokenizer.num_special
        for w in word_windows(ends, budget, entity_max_length):
            word_lists.append((i, w.start, w, item[w.start : w.end]))
    encs = tokenizer.encode([t[3] for t in texts]) + tokenizer.encode_words([w[3] for w in word_lists])
    segments: list[Segment] = []
    for (item, base, window, _), enc in zip(texts + word_lists, encs):
        if enc.num_tokens > max_tokens:
            raise InputError(f"input {item}: a window of {enc.num_tokens} tokens exceeds {max_tokens}")
        spans = candidate_spans(enc.num_words, entity_max_length)
        starts, ends = marker_positions(enc, spans)
        segments.append(Segment(item, base, window, enc, spans, starts, ends))
    return segments


def length_batches(segments: list[Segment], batch_size: int, token_budget: int) -> Iterator[list[Segment]]:
    """Batches of similar cost: at most `batch_size` segments, padded width x rows within `token_budget`.

    The width counts text tokens plus two markers per candidate, what one batch really holds.
    """
    order = sorted(segments, key=lambda s: s.cost)
    batch: list[Segment] = []
    for seg in order:
        width = max([s.enc.num_tokens for s in batch] + [seg.enc.num_tokens]) + 2 * max(
            [len(s.spans) for s in batch] + [len(seg.spans)]
        )
        if batch and (len(batch) >= batch_size or width * (len(batch) + 1) > token_budget):
            yield batch
            batch = []
        batch.append(seg)
    if batch:
        yield batch
