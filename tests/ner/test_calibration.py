"""Calibrating label logits: shifts move decisions, are picked on dev F1 (replayed from one pass),
and survive a save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ner
from ner.calibration import SHIFTS_KEY, calibrate_biases, shift_label_biases, shift_outside_bias
from ner.corpora import read_corpus
from tests.ner.sentences import SENTENCES


def _count(model) -> int:
    return sum(len(entities) for entities in model.extract(SENTENCES))


def test_shifting_o_trades_entities_for_outside(tiny_model):
    before = _count(tiny_model)
    shift_outside_bias(tiny_model, -20.0)
    many = _count(tiny_model)
    shift_outside_bias(tiny_model, 40.0)  # running total +20
    assert many > before and _count(tiny_model) == 0
    assert tiny_model.config.raw[SHIFTS_KEY] == {"O": 20.0}


def test_shift_survives_save_and_load(tiny_model, tmp_path):
    original = tiny_model.classifier.bias.detach().clone()
    shift_outside_bias(tiny_model, 1.5)
    tiny_model.save_pretrained(tmp_path)
    loaded = ner.load(tmp_path)
    delta = loaded.classifier.bias.detach() - original
    outside = loaded.config.outside_id
    assert delta[outside].item() == pytest.approx(1.5)
    assert delta.abs().sum().item() == pytest.approx(1.5)  # no other label moved
    assert loaded.config.raw[SHIFTS_KEY] == {"O": 1.5}
    assert loaded.extract(SENTENCES) == tiny_model.extract(SENTENCES)


@pytest.fixture
def peaked_model(tiny_model):
    """The tiny model with its classifier weights scaled up: a random classifier's probabilities are
    nearly uniform, so two labels or two overlapping spans can tie within float noise, and a
    re-extraction may then decide them differently. Peaked scores keep "same model, same output"."""
    import torch

    with torch.no_grad():
        tiny_model.classifier.weight.mul_(10.0)
    return tiny_model


def _gold_from_predictions(model, path: Path, shift: float | dict[str, float]) -> dict[str, list]:
    """Dev data whose gold is what the model predicts with its biases shifted by `shift` (a number
    shifts "O"): F1 1 at that shift."""
    shifts = shift if isinstance(shift, dict) else {"O": shift}
    shift_label_biases(model, shifts)
    texts = SENTENCES[:8]
    with path.open("w", encoding="utf-8") as handle:
        for text, entities in zip(texts, model.extract(texts, strip_spaces=True), strict=True):
            spans = [[e.start, e.end, e.label] for e in entities]
            handle.write(json.dumps({"text": text, "spans": spans}, ensure_ascii=False) + "\n")
    shift_label_biases(model, {label: -value for label, value in shifts.items()})
    del model.config.raw[SHIFTS_KEY]
    return {str(path): read_corpus(path)}


def test_calibration_picks_the_shift_that_reproduces_the_gold(peaked_model, tmp_path):
    dev = _gold_from_predictions(peaked_model, tmp_path / "dev.jsonl", -3.0)
    assert sum(len(s.spans) for s in next(iter(dev.values()))) > 0
    result = calibrate_biases(peaked_model, dev, [-3.0, 2.0])
    assert [row["shift"] for row in result.table] == [-3.0, 0.0, 2.0]  # 0 is always tried
    assert result.shift == -3.0 and result.mean_f1 == 1.0
    assert max(row["mean_f1"] for row in result.table if row["shift"] != -3.0) < 1.0
    # the model is left at the chosen shift
    from ner.scoring import score_model

    assert score_model(peaked_model, next(iter(dev.values()))).accumulator.compute().f1 == 1.0
    assert peaked_model.config.raw[SHIFTS_KEY] == {"O": -3.0}


def test_calibration_prefers_the_model_as_it_is_on_a_tie(peaked_model, tmp_path):
    dev = _gold_from_predictions(peaked_model, tmp_path / "dev.jsonl", 0.0)
    bias = peaked_model.classifier.bias.detach().clone()
    result = calibrate_biases(peaked_model, dev, [-0.001, 0.001])
    assert result.shift == 0.0 and result.mean_f1 == 1.0
    assert all(row["mean_f1"] == 1.0 for row in result.table)  # tiny shifts change nothing: a tie
    assert peaked_model.classifier.bias.detach().equal(bias)


def test_calibration_needs_dev_sentences(tiny_model):
    with pytest.raises(ValueError, match="development sentences"):
        calibrate_biases(tiny_model, {})


def test_per_label_calibration_beats_outside_only(peaked_model, tmp_path):
    from collections import Counter

    from ner.scoring import score_model

    counts = Counter(e.label for entities in peaked_model.extract(SENTENCES[:8]) for e in entities)
    label = counts.most_common(1)[0][0]
    dev = _gold_from_predictions(peaked_model, tmp_path / "dev.jsonl", {label: -2.0})
    sentences = next(iter(dev.values()))
    outside_only = calibrate_biases(peaked_model, dev, [1.0, 3.0])
    assert outside_only.mean_f1 < 1.0 and outside_only.label_table == []
    shift_label_biases(peaked_model, {label: -v for label, v in outside_only.shifts.items()})
    del peaked_model.config.raw[SHIFTS_KEY]

    result = calibrate_biases(peaked_model, dev, [1.0, 3.0], per_label=True, label_steps=[-2.0, -1.0, 1.0])
    assert result.mean_f1 > outside_only.mean_f1
    assert {row["label"] for row in result.label_table} == set(peaked_model.config.labels)
    # the replayed score is what the shifted model really scores, and the shifts are recorded
    assert score_model(peaked_model, sentences).accumulator.compute().f1 == pytest.approx(result.mean_f1)
    assert peaked_model.config.raw[SHIFTS_KEY] == result.shifts


def test_per_label_calibration_recovers_a_label_shift_from_zero(peaked_model, tmp_path):
    """Starting at the model as it is ("O" grid of 0 only), the search finds the shift behind the gold."""
    from collections import Counter

    counts = Counter(e.label for entities in peaked_model.extract(SENTENCES[:8]) for e in entities)
    label = counts.most_common(1)[0][0]
    dev = _gold_from_predictions(peaked_model, tmp_path / "dev.jsonl", {label: -2.0})
    # Only the step that was taken is offered: with +2 too, label-by-label ascent on this random model
    # can first take "O" +2 (a smaller gain, tried first) and stop in that local optimum, which says
    # nothing about whether a label's own shift is found.
    result = calibrate_biases(peaked_model, dev, [], per_label=True, label_steps=[-2.0], rounds=3)
    assert result.mean_f1 == 1.0 and result.shifts == {label: -2.0}


def test_unknown_labels_are_refused(tiny_model):
    with pytest.raises(ValueError, match="unknown labels"):
        shift_label_biases(tiny_model, {"DATE": 1.0})
    candidates = tiny_model.score_candidates(SENTENCES[:2])
    with pytest.raises(ner.InputError, match="unknown label"):
        tiny_model.decode_candidates(candidates, label_shifts={"DATE": 1.0})
