"""Calibrating the "O" logit: the shift moves decisions, is picked on dev F1, and survives a save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ner
from ner.calibration import SHIFT_KEY, calibrate_outside_bias, shift_outside_bias
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
    assert tiny_model.config.raw[SHIFT_KEY] == 20.0


def test_shift_survives_save_and_load(tiny_model, tmp_path):
    original = tiny_model.classifier.bias.detach().clone()
    shift_outside_bias(tiny_model, 1.5)
    tiny_model.save_pretrained(tmp_path)
    loaded = ner.load(tmp_path)
    delta = loaded.classifier.bias.detach() - original
    outside = loaded.config.outside_id
    assert delta[outside].item() == pytest.approx(1.5)
    assert delta.abs().sum().item() == pytest.approx(1.5)  # no other label moved
    assert loaded.config.raw[SHIFT_KEY] == 1.5
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


def _gold_from_predictions(model, path: Path, shift: float) -> dict[str, list]:
    """Dev data whose gold is what the model predicts with 'O' shifted by `shift`: F1 1 at that shift."""
    shift_outside_bias(model, shift)
    texts = SENTENCES[:8]
    with path.open("w", encoding="utf-8") as handle:
        for text, entities in zip(texts, model.extract(texts, strip_spaces=True), strict=True):
            spans = [[e.start, e.end, e.label] for e in entities]
            handle.write(json.dumps({"text": text, "spans": spans}, ensure_ascii=False) + "\n")
    shift_outside_bias(model, -shift)
    return {str(path): read_corpus(path)}


def test_calibration_picks_the_shift_that_reproduces_the_gold(peaked_model, tmp_path):
    dev = _gold_from_predictions(peaked_model, tmp_path / "dev.jsonl", -3.0)
    assert sum(len(s.spans) for s in next(iter(dev.values()))) > 0
    result = calibrate_outside_bias(peaked_model, dev, [-3.0, 2.0])
    assert [row["shift"] for row in result.table] == [-3.0, 0.0, 2.0]  # 0 is always tried
    assert result.shift == -3.0 and result.mean_f1 == 1.0
    assert max(row["mean_f1"] for row in result.table if row["shift"] != -3.0) < 1.0
    # the model is left at the chosen shift
    from ner.scoring import score_model

    assert score_model(peaked_model, next(iter(dev.values()))).accumulator.compute().f1 == 1.0
    assert peaked_model.config.raw[SHIFT_KEY] == -3.0


def test_calibration_prefers_the_model_as_it_is_on_a_tie(peaked_model, tmp_path):
    dev = _gold_from_predictions(peaked_model, tmp_path / "dev.jsonl", 0.0)
    bias = peaked_model.classifier.bias.detach().clone()
    result = calibrate_outside_bias(peaked_model, dev, [-0.001, 0.001])
    assert result.shift == 0.0 and result.mean_f1 == 1.0
    assert all(row["mean_f1"] == 1.0 for row in result.table)  # tiny shifts change nothing: a tie
    assert peaked_model.classifier.bias.detach().equal(bias)


def test_calibration_needs_dev_sentences(tiny_model):
    with pytest.raises(ValueError, match="development sentences"):
        calibrate_outside_bias(tiny_model, {})
