"""Calibrate the outside ("O") logit on development data: trade recall for precision, no retraining.

A span classifier trained with sampled negatives meets far more non-entity spans at inference (every
candidate) than it saw per step in training, so it tends to over-predict entities: precision lags
recall. Adding a constant to the classifier's bias for "O" moves every decision towards "O"; the
constant that maximises the mean F1 over the development files is kept. The shift lives in the
classifier's bias, so the model stays a plain SpanMarker checkpoint and `span_marker` predicts
exactly what spanlink does. The applied total is recorded in the config (``spanlink_outside_shift``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ner.corpora import Sentence
from ner.model import SpanModel
from ner.scoring import score_model

SHIFT_KEY = "spanlink_outside_shift"
DEFAULT_SHIFTS = (-0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


@dataclass
class Calibration:
    """The chosen shift and the dev scores behind it.

    Attributes:
        shift (float): added to the "O" bias (0 when nothing beat the model as it was).
        mean_f1 (float): mean entity F1 over the dev files at that shift.
        table (list[dict]): one row per tried shift: ``{"shift", "mean_f1", "files": {name: {p, r, f1}}}``.
    """

    shift: float
    mean_f1: float
    table: list[dict] = field(default_factory=list)


def _outside_bias(model: SpanModel) -> torch.Tensor:
    """The classifier's bias, checked to be a float parameter that can be shifted."""
    if model.dtype == "int8" or not isinstance(model.classifier, torch.nn.Linear):
        raise ValueError("calibrate the float model: a quantized classifier's bias cannot be shifted")
    if model.classifier.bias is None:
        raise ValueError("the classifier has no bias to shift")
    return model.classifier.bias


def _set_shift(model: SpanModel, at_zero: tuple[float, float], shift: float) -> None:
    """Set the "O" bias and the recorded total to their values at shift 0 plus `shift`.

    Always from the shift-0 values, so trying many shifts in turn accumulates no rounding.
    """
    bias, recorded = at_zero
    with torch.no_grad():
        _outside_bias(model)[model.config.outside_id] = bias + shift
    model.config.raw[SHIFT_KEY] = round(recorded + shift, 6)


def _at_zero(model: SpanModel) -> tuple[float, float]:
    """The current "O" bias and recorded shift total: the point later shifts are measured from."""
    bias = _outside_bias(model)[model.config.outside_id].item()
    return bias, float(model.config.raw.get(SHIFT_KEY, 0.0))


def shift_outside_bias(model: SpanModel, shift: float) -> None:
    """Add `shift` to the classifier's "O" bias in place and record the running total in the config."""
    _set_shift(model, _at_zero(model), shift)


def calibrate_outside_bias(
    model: SpanModel,
    dev: Mapping[str, list[Sentence]],
    shifts: Sequence[float] = DEFAULT_SHIFTS,
    *,
    prune: bool | None = None,
    show_progress_bar: bool = False,
) -> Calibration:
    """Score the model on each dev set at every shift, then leave it at the best one.

    Ties go to the smaller shift, and 0 (the model as it is) is always among the candidates, so
    calibration never makes the dev score worse.

    Args:
        model (SpanModel): a float model; changed in place.
        dev (Mapping[str, list[Sentence]]): gold sentences per file; each file weighs the same.
        shifts (Sequence[float]): values to try. Defaults to -0.5 ... 3.0 in steps of 0.5.
        prune (bool | None): as `SpanModel.extract`. Defaults to the model's setting.
        show_progress_bar (bool): one bar over all the (shift, file) runs. Defaults to False.

    Returns:
        Calibration: the chosen shift (already applied) and the table of dev scores.
    """
    from tqdm.auto import tqdm

    if not dev or not any(dev.values()):
        raise ValueError("calibration needs development sentences")
    candidates = sorted({0.0, *map(float, shifts)}, key=lambda s: (abs(s), s))
    at_zero = _at_zero(model)

    table: list[dict] = []
    with tqdm(
        total=len(candidates) * len(dev), desc="calibrate", unit="run", disable=not show_progress_bar
    ) as bar:
        for shift in candidates:
            _set_shift(model, at_zero, shift)
            files = {}
            for name, sentences in dev.items():
                scores = score_model(model, sentences, prune=prune).accumulator.compute()
                files[name] = {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1}
                bar.update(1)
            mean_f1 = sum(f["f1"] for f in files.values()) / len(files)
            table.append({"shift": shift, "mean_f1": mean_f1, "files": files})
    best = max(table, key=lambda row: row["mean_f1"])  # first maximum: smallest |shift| ran first
    _set_shift(model, at_zero, best["shift"])
    table.sort(key=lambda row: row["shift"])
    return Calibration(best["shift"], best["mean_f1"], table)
