"""`SpanModel.start_extract` / `ExtractJob`: an extract call run in bounded steps gives what `extract` gives.

The service's scheduler interleaves requests step by step; that is only safe if stepping changes
nothing. These tests compare entities, offsets, scores and embeddings exactly (bit for bit: the
steps are the same batches `extract` runs).
"""

from __future__ import annotations

import numpy as np
import pytest

from ner.building import new_span_model
from ner.entities import Entity
from tests.ner.sentences import EXTRA_TEXTS, SENTENCES, WORD_LISTS


def _rows(entities: list[Entity]) -> list[tuple]:
    return [(e.start, e.end, e.text, e.label, e.score, e.word_start, e.word_end) for e in entities]


def _assert_identical(ours: list[list[Entity]], theirs: list[list[Entity]]) -> None:
    assert [_rows(e) for e in ours] == [_rows(e) for e in theirs]
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            assert (x.embedding is None) == (y.embedding is None)
            if x.embedding is not None:
                assert np.array_equal(x.embedding, y.embedding)


def _run_in_steps(job, batches: int = 1) -> int:
    steps = 0
    while not job.done:
        job.step(batches)
        steps += 1
    return steps


def _long_document() -> str:
    sentences = [s if s[-1] in ".!?。" else s + "." for s in SENTENCES + EXTRA_TEXTS]
    return " ".join(sentences * 2)


@pytest.fixture
def small_windows(tiny_model):
    """Windows of a few sentences and one window per batch: a long text takes many steps."""
    tiny_model.max_tokens = max(tiny_model.tokenizer.count_tokens(SENTENCES + EXTRA_TEXTS)) + 8
    tiny_model.token_budget = 1
    return tiny_model


@pytest.mark.parametrize("embeddings", [False, True])
def test_steps_give_exactly_what_extract_gives(small_windows, embeddings):
    model = small_windows
    texts = [_long_document(), "   ", SENTENCES[0], "", SENTENCES[6]]
    assert len(model._text_windows(texts[0])) > 5
    expected = model.extract(texts, embeddings=embeddings, strip_spaces=True)
    job = model.start_extract(texts, embeddings=embeddings, strip_spaces=True)
    windows = job.steps_left
    assert windows > 7  # the long text's windows and the two short texts, one batch each
    assert _run_in_steps(job) == windows
    _assert_identical(job.result(), expected)
    assert expected[0] and expected[1] == [] and expected[3] == []


def test_overlapping_windows_of_one_huge_sentence(small_windows):
    model = small_windows
    words = " ".join(s.rstrip(".!?。") for s in SENTENCES).replace(".", "").split()
    text = " ".join(words * 2)  # no sentence end: overlapping word windows
    model.max_tokens = 48
    assert any(w.overlapping for w in model._text_windows(text))
    job = model.start_extract(text, embeddings=True, min_score=0.2)
    _run_in_steps(job)
    single = job.result()
    assert isinstance(single, list) and all(isinstance(e, Entity) for e in single)
    _assert_identical([single], [model.extract(text, embeddings=True, min_score=0.2)])


def test_word_lists_and_several_batches_per_step(small_windows):
    model = small_windows
    texts = [*WORD_LISTS, *SENTENCES[:4]]
    job = model.start_extract(texts)
    total = job.steps_left
    assert _run_in_steps(job, batches=3) == -(-total // 3)
    _assert_identical(job.result(), model.extract(texts))


def test_step_zero_runs_everything_and_result_waits_for_the_end(small_windows):
    model = small_windows
    job = model.start_extract([_long_document()])
    assert job.steps_left > 1 and not job.done
    job.step()
    with pytest.raises(RuntimeError, match="steps left"):
        job.result()
    assert job.step(0) is True and job.steps_left == 0
    _assert_identical(job.result(), model.extract([_long_document()]))


def test_blank_inputs_need_no_step(tiny_model):
    job = tiny_model.start_extract(["", "  "])
    assert job.done and job.steps_left == 0 and job.result() == [[], []]


def test_pruned_steps_equal_pruned_extract(tiny_checkpoint):
    model = new_span_model(tiny_checkpoint.parent / "encoder", ["LOC", "PER"], seed=5)
    model.config.prune_threshold = 0.3
    model.token_budget = 1
    job = model.start_extract(SENTENCES, prune=True)
    _run_in_steps(job)
    _assert_identical(job.result(), model.extract(SENTENCES, prune=True))


def test_planning_checks_arguments_before_any_step(tiny_model):
    from ner.errors import InputError

    with pytest.raises(InputError):
        tiny_model.start_extract([1, 2])
    with pytest.raises(InputError, match="entity_max_length"):
        tiny_model.start_extract(["x"], entity_max_length=-1)
