"""One scoring pass, many decodings: `decode_candidates` replays what `extract` returns."""

from __future__ import annotations

import pytest
import torch

from ner.building import new_span_model
from ner.calibration import shift_label_biases
from tests.ner.sentences import EXTRA_TEXTS, SENTENCES, WORD_LISTS

LONG = " ".join(SENTENCES * 3)  # several windows at 256 tokens, with overlaps to merge


def _key(results):
    return [[(e.start, e.end, e.label) for e in entities] for entities in results]


@pytest.mark.parametrize("strip", [False, True])
def test_replay_equals_extract(tiny_model, strip):
    texts = [*SENTENCES, *EXTRA_TEXTS, LONG, "", "  "]
    assert len(tiny_model._text_windows(LONG)) > 1
    candidates = tiny_model.score_candidates(texts, batch_size=8)
    assert tiny_model.decode_candidates(candidates, strip_spaces=strip) == tiny_model.extract(
        texts, batch_size=8, strip_spaces=strip
    )
    words = tiny_model.score_candidates(WORD_LISTS)
    assert tiny_model.decode_candidates(words) == tiny_model.extract(WORD_LISTS)


def test_replay_equals_extract_when_pruning(tiny_checkpoint):
    model = new_span_model(tiny_checkpoint.parent / "encoder", ["LOC", "PER"], seed=5)
    model.config.prune_threshold = 0.45
    candidates = model.score_candidates(SENTENCES)
    assert sum(len(seg.spans) for seg, _ in candidates.scored) < sum(
        len(seg.spans) for seg, _ in model.score_candidates(SENTENCES, prune=False).scored
    )
    assert model.decode_candidates(candidates, min_score=0.3) == model.extract(SENTENCES, min_score=0.3)


def test_shifted_replay_equals_a_shifted_model(tiny_model):
    with torch.no_grad():
        tiny_model.classifier.weight.mul_(10.0)  # peaked scores: no near-ties to flip
    texts = [*SENTENCES, LONG]
    candidates = tiny_model.score_candidates(texts)
    shifts = {"O": 1.0, "PER": -0.75, "MISC": 0.5}
    replay = tiny_model.decode_candidates(candidates, label_shifts=shifts)
    unshifted = tiny_model.decode_candidates(candidates)
    assert _key(replay) != _key(unshifted), "the shifts must change some decision for the test to bite"
    shift_label_biases(tiny_model, shifts)
    real = tiny_model.extract(texts)
    assert _key(replay) == _key(real)
    for replayed, extracted in zip(replay, real):
        assert [e.score for e in replayed] == pytest.approx([e.score for e in extracted], abs=1e-5)
