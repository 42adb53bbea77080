"""Two-stage pruning: the boundary head proposes spans, only those get marker pairs."""

from __future__ import annotations

import pytest

import ner
from ner.building import new_span_model
from tests.ner.sentences import SENTENCES


@pytest.fixture
def model(tiny_checkpoint):
    return new_span_model(tiny_checkpoint.parent / "encoder", ["LOC", "PER"], seed=5)


def test_threshold_zero_keeps_every_candidate(model):
    model.config.prune_threshold = 0.0
    assert model.extract(SENTENCES, prune=True) == model.extract(SENTENCES, prune=False)


def test_threshold_above_one_keeps_nothing(model):
    model.config.prune_threshold = 1.01
    assert model.extract(SENTENCES, prune=True) == [[] for _ in SENTENCES]


def test_a_head_that_proposes_nothing_finds_nothing(model):
    import torch

    model.config.prune_threshold = 0.5
    with torch.no_grad():  # sigmoid(-5) < 0.5 everywhere: no word may start or end an entity
        model.boundary.weight.zero_()
        model.boundary.bias.fill_(-5.0)
    text = SENTENCES[0]
    assert model.extract(text, prune=True) == []
    assert model.extract(text, prune=False), "without pruning the same model does find entities"


def test_default_follows_the_config_and_round_trips(model, tmp_path):
    model.config.prune_threshold = 0.0
    folder = model.save_pretrained(tmp_path / "m")
    again = ner.load(folder)
    assert again.boundary is not None and again.config.prune_threshold == 0.0
    assert again.extract(SENTENCES[:3]) == again.extract(SENTENCES[:3], prune=True)


def test_models_without_a_head_cannot_prune(tiny_model):
    assert tiny_model.boundary is None
    with pytest.raises(ner.InputError, match="no boundary head"):
        tiny_model.extract("Paris", prune=True)
