"""Weight averaging of span models: the mean of the weights, calibration taken out, mismatches refused."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import ner
from ner.averaging import average_span_models
from ner.calibration import shift_label_biases
from ner.random_checkpoint import CheckpointSpec, build_checkpoint
from tests.ner.sentences import EXTRA_TEXTS, SENTENCES

TEXTS = SENTENCES + EXTRA_TEXTS


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("averaging")
    spec = CheckpointSpec()
    return [
        build_checkpoint(root / str(seed), TEXTS, dataclasses.replace(spec, seed=seed)) for seed in (0, 1)
    ]


def test_the_average_is_the_mean_of_every_weight(two_seeds):
    a, b = ner.load(two_seeds[0]), ner.load(two_seeds[1])
    expected = {name: (p + b.encoder.state_dict()[name]) / 2 for name, p in a.encoder.state_dict().items()}
    bias = (a.classifier.bias + b.classifier.bias) / 2
    averaged = average_span_models([a, b])
    assert averaged is a
    for name, value in averaged.encoder.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-7, msg=name)
    torch.testing.assert_close(averaged.classifier.bias, bias)
    assert averaged.extract("Angela Merkel visited Paris.") is not None


def test_calibration_is_taken_out_before_averaging(two_seeds):
    plain = ner.load(two_seeds[0])
    shifted = ner.load(two_seeds[0])
    shift_label_biases(shifted, {"O": 2.0, "PER": -1.0})
    averaged = average_span_models([shifted, ner.load(two_seeds[0])])
    torch.testing.assert_close(averaged.classifier.bias, plain.classifier.bias)
    assert "spanlink_label_shifts" not in averaged.config.raw


def test_models_that_do_not_fit_are_refused(two_seeds, tmp_path):
    other = build_checkpoint(
        tmp_path, TEXTS, CheckpointSpec(labels=("O", "B-PER", "I-PER", "B-LOC", "I-LOC"))
    )
    with pytest.raises(ValueError, match="other labels"):
        average_span_models([ner.load(two_seeds[0]), ner.load(other)])
    with pytest.raises(ValueError, match="at least two"):
        average_span_models([ner.load(two_seeds[0])])
    wider = build_checkpoint(tmp_path / "wide", TEXTS, CheckpointSpec(hidden_size=48, num_heads=4))
    with pytest.raises(ValueError, match="differ in shape"):
        average_span_models([ner.load(two_seeds[0]), ner.load(wider)])
