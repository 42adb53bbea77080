"""Tests for ner.evaluation: exact-match entity metrics with hand-computed expected values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ner.corpora import read_corpus
from ner.evaluation import EntityAccumulator, EntityScores, LabelScores, evaluate_entities, merge_accumulators

DATA = Path(__file__).resolve().parents[1] / "data" / "corpora"

# Two sentences; expected counts worked out by hand:
#   PER: gold 2, predicted 2, correct 2 -> P=R=F1=1
#   LOC: gold 1, predicted 1 (wrong sentence position), correct 0 -> 0
#   ORG: gold 0, predicted 1 (the LOC predicted as ORG) -> 0
#   micro: gold 3, predicted 4, correct 2 -> P=1/2, R=2/3, F1=4/7; macro F1 = (1+0+0)/3
GOLD = [[(0, 1, "PER"), (3, 5, "LOC")], [(1, 2, "PER")]]
PRED = [[(0, 1, "PER"), (3, 5, "ORG")], [(1, 2, "PER"), (4, 5, "LOC")]]


def test_micro_and_per_label_scores() -> None:
    scores = evaluate_entities(GOLD, PRED)
    assert (scores.support, scores.predicted, scores.correct, scores.sentences) == (3, 4, 2, 2)
    assert scores.precision == pytest.approx(1 / 2)
    assert scores.recall == pytest.approx(2 / 3)
    assert scores.f1 == pytest.approx(4 / 7)
    assert scores.macro_f1 == pytest.approx(1 / 3)
    assert list(scores.per_label) == ["LOC", "ORG", "PER"]
    assert scores.per_label["PER"] == LabelScores(1.0, 1.0, 1.0, support=2, predicted=2, correct=2)
    assert scores.per_label["LOC"] == LabelScores(0.0, 0.0, 0.0, support=1, predicted=1, correct=0)
    assert scores.per_label["ORG"] == LabelScores(0.0, 0.0, 0.0, support=0, predicted=1, correct=0)


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        # 2 of 3 gold found, no false positives: P=1, R=2/3, F1=0.8
        ([(0, 1, "PER"), (2, 4, "LOC"), (5, 6, "ORG")], [(0, 1, "PER"), (2, 4, "LOC")], (1.0, 2 / 3, 0.8)),
        # wrong label: one FP (ORG) and one FN (PER)
        ([(0, 2, "PER")], [(0, 2, "ORG")], (0.0, 0.0, 0.0)),
        # partial overlap is wrong: boundaries must match exactly
        ([(0, 3, "LOC")], [(0, 2, "LOC")], (0.0, 0.0, 0.0)),
        # one right, one boundary error: P=R=F1=1/2
        ([(0, 1, "PER"), (4, 6, "LOC")], [(0, 1, "PER"), (4, 7, "LOC")], (0.5, 0.5, 0.5)),
        # a duplicated prediction matches once; the copy is a false positive: P=1/2, R=1, F1=2/3
        ([(0, 1, "PER")], [(0, 1, "PER"), (0, 1, "PER")], (0.5, 1.0, 2 / 3)),
        # order within a sentence does not matter
        ([(0, 1, "PER"), (2, 3, "LOC")], [(2, 3, "LOC"), (0, 1, "PER")], (1.0, 1.0, 1.0)),
    ],
)
def test_exact_match(
    gold: list[tuple[int, int, str]], pred: list[tuple[int, int, str]], expected: tuple[float, float, float]
) -> None:
    scores = evaluate_entities([gold], [pred])
    assert (scores.precision, scores.recall, scores.f1) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        ([], [], (0.0, 0.0, 0.0, 0, 0)),  # nothing at all: all zero, not NaN or an error
        ([], [(0, 1, "PER")], (0.0, 0.0, 0.0, 0, 1)),  # predictions only: precision 0, recall 0 (no gold)
        ([(0, 1, "PER")], [], (0.0, 0.0, 0.0, 1, 0)),  # gold only: recall 0, precision 0 (no predictions)
    ],
)
def test_zero_division(
    gold: list[tuple[int, int, str]], pred: list[tuple[int, int, str]], expected: tuple[float, ...]
) -> None:
    scores = evaluate_entities([gold], [pred])
    assert (scores.precision, scores.recall, scores.f1, scores.support, scores.predicted) == expected
    json.dumps(scores.to_dict(), allow_nan=False)


def test_long_gold_entities_still_count() -> None:
    # a 40-word entity the model cannot predict (beyond entity_max_length) is a false negative, not skipped
    scores = evaluate_entities([[(0, 40, "MISC"), (41, 42, "PER")]], [[(41, 42, "PER")]])
    assert (scores.support, scores.recall) == (2, 0.5)


def test_same_entity_in_other_sentence_does_not_match() -> None:
    scores = evaluate_entities([[(0, 1, "PER")], []], [[], [(0, 1, "PER")]])
    assert scores.correct == 0


def test_streaming_equals_batch_and_merge_over_files() -> None:
    whole = evaluate_entities(GOLD, PRED)
    first, second = EntityAccumulator(), EntityAccumulator()
    first.update(GOLD[0], PRED[0])
    second.update(GOLD[1], PRED[1])
    assert first.merge(second).compute() == whole
    assert merge_accumulators([first, second]).compute() == whole
    # merging leaves the inputs untouched
    assert first.compute().sentences == 1
    assert merge_accumulators([]).compute() == EntityScores(0.0, 0.0, 0.0, 0, 0, 0, 0.0, 0, {})


def test_to_dict_is_json() -> None:
    data = json.loads(json.dumps(evaluate_entities(GOLD, PRED).to_dict()))
    assert data["f1"] == pytest.approx(4 / 7)
    assert data["per_label"]["PER"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 2,
        "predicted": 2,
        "correct": 2,
    }
    assert set(data) == {
        "precision",
        "recall",
        "f1",
        "support",
        "predicted",
        "correct",
        "macro_f1",
        "sentences",
        "per_label",
    }


@pytest.mark.parametrize(
    ("gold", "pred", "message"),
    [
        (
            [[(1, 1, "PER")]],
            [[]],
            r"sentence 0: gold entity \(1, 1, 'PER'\) needs 0 <= start < end",
        ),  # empty span
        ([[]], [[(0, 1)]], r"sentence 0: predicted entity \(0, 1\) is not \(start, end, label\)"),  # no label
        ([[], []], [[]], "differ in length: one side ended after 1 sentences"),  # misaligned inputs
    ],
)
def test_invalid_input(gold: list, pred: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_entities(gold, pred)


def test_gold_against_itself_from_corpus_char_and_word_offsets() -> None:
    with pytest.warns(UserWarning):  # the fixture has one misaligned '# text' line
        sentences = read_corpus(DATA / "uner_zh_hr.iob2")
    for entities in (lambda s: s.word_entities(), lambda s: s.char_entities()):
        scores = evaluate_entities([entities(s) for s in sentences], [entities(s) for s in sentences])
        assert (scores.f1, scores.support) == (1.0, 5)  # zh 2, hr-1 2, hr-2 1 (OTH)
