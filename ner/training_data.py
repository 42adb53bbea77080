"""Training examples for span models: gold spans in the model's own words, plus sampled negatives.

Training reads each sentence the way inference will: the text goes through the model's tokenizer,
whose pre-tokenizer (and CJK rule) defines the words, and gold character spans are mapped onto
those words. So train and test see the same candidate spans, whatever tokenization the corpus used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ner.corpora import Sentence
from ner.tokenization import Encoded, SpanTokenizer, candidate_spans


@dataclass(frozen=True)
class CoarseLabels:
    """How to learn fine types from a corpus that marks only their groups (partial labels).

    CoNLL marks a person as PER; a model with MultiCoNER's hierarchy must not be told that this
    person is an Artist, nor that it is not one. So a coarse gold span counts as right when the
    model gives it any fine type of its group (the loss is on the summed probability of those),
    and a non-entity span that overlaps no gold entity may also be any type of a group the corpus
    never marks (CoNLL's "O" words include products, works, diseases). Spans that overlap a gold
    entity stay plain "O": a boundary error is an error whatever the corpus.

    Attributes:
        group_ids (dict[str, int]): group name -> its target id in `Example.gold` (past the labels).
        allowed (dict[int, tuple[int, ...]]): target id -> the label ids it accepts.
        unmarked (tuple[int, ...]): label ids a span overlapping no gold entity may have ("O" first).
    """

    group_ids: dict[str, int]
    allowed: dict[int, tuple[int, ...]]
    unmarked: tuple[int, ...]

    @classmethod
    def build(
        cls, label_groups: Mapping[str, str], label2id: Mapping[str, int], marked: list[str]
    ) -> CoarseLabels:
        """`marked`: the groups the corpus annotates (its labels after any mapping)."""
        names = list(dict.fromkeys(label_groups.values()))
        unknown = [g for g in marked if g not in names]
        if unknown:
            raise ValueError(f"coarse labels {unknown} are not groups of this model ({', '.join(names)})")
        first = max(label2id.values()) + 1
        group_ids = {g: first + i for i, g in enumerate(names)}
        allowed = {
            group_ids[g]: tuple(sorted(label2id[f] for f, fg in label_groups.items() if fg == g))
            for g in names
        }
        unmarked = (label2id["O"],) + tuple(
            i for g in names if g not in marked for i in allowed[group_ids[g]]
        )
        return cls(group_ids, allowed, unmarked)


@dataclass
class Example:
    """One sentence, tokenized, with its gold spans as (word start, word end, label id).

    For a coarse corpus (`coarse` set) the third element is a group's target id instead.
    """

    enc: Encoded
    gold: list[tuple[int, int, int]]
    coarse: CoarseLabels | None = None

    @property
    def cost(self) -> int:
        return self.enc.num_tokens


@dataclass
class PrepStats:
    """What preparation dropped, so the caller can warn (SpanMarker's EntityTracker, per cause)."""

    sentences: int = 0
    entities: int = 0
    too_long: int = 0  # more words than entity_max_length
    misaligned: int = 0  # boundaries inside a word: snapped outward to whole words
    truncated: int = 0  # sentence longer than the model: skipped


def _word_span(enc: Encoded, start: int, end: int) -> tuple[int, int] | None:
    """Words overlapping the characters [start, end) (offsets may include a leading space)."""
    first = last = None
    for w, chars in enumerate(enc.word_chars):
        if chars is None or chars[1] <= start or chars[0] >= end:
            continue
        if first is None:
            first = w
        last = w
    return None if first is None else (first, last + 1)


def prepare(
    sentences: list[Sentence],
    tokenizer: SpanTokenizer,
    label2id: dict[str, int],
    entity_max_length: int,
    max_tokens: int,
    coarse: CoarseLabels | None = None,
) -> tuple[list[Example], PrepStats]:
    """Tokenize sentences and map their gold spans to word spans of the model's tokenizer.

    With `coarse`, the sentences' labels are groups (see `CoarseLabels`)."""
    targets = coarse.group_ids if coarse is not None else label2id
    stats = PrepStats()
    examples: list[Example] = []
    encs = tokenizer.encode([s.text for s in sentences])
    for sentence, enc in zip(sentences, encs):
        stats.sentences += 1
        stats.entities += len(sentence.spans)
        if enc.num_tokens > max_tokens or enc.num_words == 0:
            stats.truncated += 1
            continue
        gold: list[tuple[int, int, int]] = []
        for span in sentence.spans:
            if span.label not in targets:
                continue
            words = _word_span(enc, span.char_start, span.char_end)
            if words is None:
                stats.misaligned += 1
                continue
            chars = (enc.word_chars[words[0]][0], enc.word_chars[words[1] - 1][1])
            text = sentence.text[chars[0] : chars[1]]
            if text.strip() != sentence.text[span.char_start : span.char_end].strip():
                stats.misaligned += 1
            if words[1] - words[0] > entity_max_length:
                stats.too_long += 1
                continue
            gold.append((words[0], words[1], targets[span.label]))
        examples.append(Example(enc, sorted(set(gold)), coarse))
    return examples, stats


def sample_spans(
    example: Example,
    entity_max_length: int,
    negatives: int,
    hard_fraction: float,
    rng: np.random.Generator,
    outside_id: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gold spans plus up to `negatives` non-entity spans, half of them (by default) "hard" ones that
    overlap a gold span: the boundary errors a span classifier most needs to learn to reject.

    Returns:
        (spans (n, 2), labels (n,)).
    """
    candidates = candidate_spans(example.enc.num_words, entity_max_length)
    gold = {(s, e): label for s, e, label in example.gold}
    is_gold = np.array([(int(s), int(e)) in gold for s, e in candidates], dtype=bool)
    negative = candidates[~is_gold]
    if len(negative) > negatives:
        overlap = np.zeros(len(negative), dtype=bool)
        for s, e in gold:
            overlap |= (negative[:, 0] < e) & (negative[:, 1] > s)
        hard = np.flatnonzero(overlap)
        easy = np.flatnonzero(~overlap)
        n_hard = min(len(hard), int(round(negatives * hard_fraction)))
        picked = np.concatenate(
            (
                rng.choice(hard, n_hard, replace=False),
                rng.choice(easy, min(len(easy), negatives - n_hard), replace=False),
            )
        ).astype(np.int64)
        negative = negative[np.sort(picked)]
    gold_spans = np.array([[s, e] for s, e in gold], dtype=np.int64).reshape(-1, 2)
    spans = np.concatenate((gold_spans, negative))
    labels = np.concatenate(
        (np.array(list(gold.values()), dtype=np.int64), np.full(len(negative), outside_id, dtype=np.int64))
    )
    return spans, labels


def truecase(sentence: Sentence, rng: np.random.Generator, share: float) -> Sentence:
    """With probability `share`, the sentence as cased text would write it: first word and every
    entity word capitalised. For lowercased corpora (MultiCoNER), so that a model trained on them
    also reads ordinary text; characters whose capital has another length are left alone, which
    keeps every offset valid."""
    if share <= 0 or rng.random() >= share:
        return sentence
    starts = {0} | {s for sp in sentence.spans for s, _ in sentence.word_offsets[sp.start : sp.end]}
    chars = list(sentence.text)
    for start in starts:
        if start < len(chars):
            upper = chars[start].upper()
            if len(upper) == 1:
                chars[start] = upper
    text = "".join(chars)
    words = [text[s:e] for s, e in sentence.word_offsets]
    return Sentence(
        words, text, sentence.word_offsets, sentence.spans, sentence.doc_id, sentence.sent_id, sentence.line
    )
