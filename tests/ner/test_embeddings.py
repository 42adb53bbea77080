"""Span embeddings: shape, dtype, same pass as extraction, and `embed_spans` for caller spans."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ner

TEXTS = ["Angela Merkel met Emmanuel Macron in Paris on Monday.", "Владимир Путин посетил Москву."]


def test_extract_embeddings_are_float32_means_of_text_states(tiny_model):
    results = tiny_model.extract(TEXTS, embeddings=True)
    entities = [e for ents in results for e in ents]
    assert entities
    for e in entities:
        assert e.embedding.dtype == np.float32 and e.embedding.shape == (tiny_model.hidden_size,)
    # Recompute one by hand: the mean of the final hidden states of the span's subwords.
    text, entity = TEXTS[0], results[0][0]
    enc = tiny_model.tokenizer.encode([text])[0]
    ids = torch.tensor([enc.ids])
    with torch.inference_mode():
        hidden, _ = tiny_model.encoder.forward_text(
            ids, torch.arange(len(enc.ids))[None] + 2, torch.ones_like(ids, dtype=torch.bool)
        )
    tokens = [
        t
        for t, (a, b) in enumerate(enc.offsets)
        if 0 < t < len(enc.ids) - 1 and a < entity.end and b > entity.start
    ]
    assert np.allclose(hidden[0, tokens].mean(0).numpy(), entity.embedding, atol=1e-5)


def test_without_embeddings_there_are_none(tiny_model):
    assert all(e.embedding is None for e in tiny_model.extract(TEXTS[0]))


@pytest.mark.parametrize("strip", [False, True])
def test_embed_spans_equals_extract_embeddings(tiny_xlmr_checkpoint, strip):
    model = ner.load(tiny_xlmr_checkpoint)  # XLM-R offsets include a leading space unless stripped
    for text, entities in zip(TEXTS, model.extract(TEXTS, embeddings=True, strip_spaces=strip)):
        vectors = model.embed_spans(text, [(e.start, e.end) for e in entities])
        for entity, vector in zip(entities, vectors):
            assert np.allclose(entity.embedding, vector, atol=1e-5), entity


def test_embed_spans_context_matters(tiny_model):
    a = tiny_model.embed_spans("Paris is in France.", [(0, 5)])[0]
    b = tiny_model.embed_spans("Paris Hilton is famous.", [(0, 5)])[0]
    assert not np.allclose(a, b), "contextual: the same surface in other context gives another vector"


@pytest.mark.parametrize("spans", [[(0, 99)], [(-1, 3)], [(4, 4)], [(5, 2)], [("a", 2)], [(1,)]])
def test_embed_spans_rejects_bad_spans(tiny_model, spans):
    with pytest.raises(ner.InputError, match="span 0"):
        tiny_model.embed_spans("Paris is nice.", spans)


def test_embed_spans_of_nothing(tiny_model):
    assert tiny_model.embed_spans("Paris", []).shape == (0, tiny_model.hidden_size)


def test_span_crossing_a_window_border_still_gets_a_vector(tiny_model):
    text = "Angela Merkel met Emmanuel Macron. " * 30
    tiny_model.max_tokens = 32
    border = tiny_model._text_windows(text)[1].start
    vector = tiny_model.embed_spans(text, [(border - 7, border + 6)])[0]
    assert np.abs(vector).sum() > 0
