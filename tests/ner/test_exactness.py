"""spanlink's output equals span_marker 1.8.1's `predict` on the same checkpoints.

The reference runs in its own environment (.venv-ref, made by `bash scripts/setup --dev`), because
span_marker needs transformers<5. Checkpoints are tiny random ones built here, offline, covering
both tokenizer families, several label sets and schemes, and entity_max_length from 2 to 8; a small
marker_max_length makes span_marker spread long sentences over several marker passes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import ner
from ner.random_checkpoint import CheckpointSpec, build_checkpoint
from tests.ner.reference import run_span_marker
from tests.ner.sentences import EXTRA_TEXTS, SENTENCES, WORD_LISTS

IOB2 = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")
BIOES = ("O",) + tuple(f"{p}-{t}" for t in ("EVT", "LOC", "ORG", "PER", "PRO") for p in "BIES")

SPECS = {
    # wordpiece (BERT), IOB2, the longest spans, many marker passes per sentence
    "wp-iob2-8": CheckpointSpec(
        "wordpiece", IOB2, entity_max_length=8, marker_max_length=16, model_max_length=256
    ),
    # wordpiece, BIOES source labels, shortest spans
    "wp-bioes-2": CheckpointSpec("wordpiece", BIOES, entity_max_length=2, marker_max_length=64, seed=1),
    # wordpiece, labels without a scheme (one id per class)
    "wp-plain-4": CheckpointSpec("wordpiece", ("O", "person", "place", "thing"), entity_max_length=4, seed=2),
    # unigram + Metaspace (XLM-R), IOB2
    "uni-iob2-5": CheckpointSpec("unigram", IOB2[:7], entity_max_length=5, marker_max_length=32, seed=3),
    # unigram, BIOES (20 classes share the probability mass: a lower "O" bias so that some spans win)
    "uni-bioes-3": CheckpointSpec(
        "unigram", BIOES, entity_max_length=3, marker_max_length=128, seed=4, outside_bias=-0.5
    ),
    # unigram, long spans, tiny marker samples
    "uni-iob2-7": CheckpointSpec(
        "unigram", IOB2, entity_max_length=7, marker_max_length=8, seed=5, outside_bias=0.5
    ),
}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exactness")
    texts = SENTENCES + EXTRA_TEXTS + [" ".join(w) for w in WORD_LISTS]
    return {name: build_checkpoint(root / name, texts, spec) for name, spec in SPECS.items()}


@pytest.fixture(scope="session")
def reference(checkpoints) -> dict[str, dict]:
    jobs = [
        {"checkpoint": str(path), "texts": [t for t in SENTENCES if t], "word_lists": WORD_LISTS}
        for path in checkpoints.values()
    ]
    return dict(zip(checkpoints, run_span_marker(jobs)))


def _assert_same(ours: list, theirs: list, what: str) -> None:
    assert [(a, b, label) for a, b, label, _ in ours] == [(a, b, label) for a, b, label, _ in theirs], what
    for (*_, s1), (*_, s2) in zip(ours, theirs):
        assert abs(s1 - s2) < 1e-4, f"{what}: score {s1} vs {s2}"


@pytest.mark.parametrize("name", list(SPECS))
def test_texts_match_span_marker(name, checkpoints, reference):
    model = ner.load(checkpoints[name])
    texts = [t for t in SENTENCES if t]
    for count in model.tokenizer.count_tokens(texts):
        assert count <= model.max_tokens, "the comparison only holds for texts span_marker does not truncate"
    ours = model.extract(texts)
    assert sum(len(e) for e in ours) > 0, "a checkpoint that predicts nothing proves nothing"
    for text, entities, theirs in zip(texts, ours, reference[name]["texts"]):
        _assert_same([(e.start, e.end, e.label, e.score) for e in entities], theirs, f"{name}: {text!r}")
        assert all(e.text == text[e.start : e.end] for e in entities)


@pytest.mark.parametrize("name", list(SPECS))
def test_word_lists_match_span_marker(name, checkpoints, reference):
    model = ner.load(checkpoints[name])
    ours = model.extract(WORD_LISTS)
    for words, entities, theirs in zip(WORD_LISTS, ours, reference[name]["word_lists"]):
        rows = [(e.word_start, e.word_end, e.label, e.score) for e in entities]
        _assert_same(rows, theirs, f"{name}: {words!r}")
        joined = " ".join(words)
        assert all(
            e.text == joined[e.start : e.end] == " ".join(words[e.word_start : e.word_end]) for e in entities
        )


def test_empty_and_blank_texts_give_no_entities(checkpoints):
    model = ner.load(checkpoints["wp-iob2-8"])
    assert model.extract(["", "   ", "\n"]) == [[], [], []]
    assert model.extract("") == []
    assert model.extract([]) == []


def test_batching_does_not_change_results(checkpoints):
    """Packing and chunking are an implementation detail: one text alone or in a crowd, same output."""
    model = ner.load(checkpoints["uni-iob2-5"])
    crowd = model.extract(SENTENCES, embeddings=True)
    model.token_budget, model.marker_budget = 256, 64  # force many small batches and marker chunks
    for text, expected in zip(SENTENCES, crowd):
        alone = model.extract(text, embeddings=True)
        assert [(e.start, e.end, e.label) for e in alone] == [(e.start, e.end, e.label) for e in expected]
        for a, b in zip(alone, expected):
            assert abs(a.score - b.score) < 1e-5
            assert abs(a.embedding - b.embedding).max() < 1e-4


if __name__ == "__main__":  # pragma: no cover - convenience for debugging
    sys.exit(pytest.main([__file__, "-q"]))
