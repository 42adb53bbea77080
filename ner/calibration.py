"""Calibrate the classifier's label biases on development data: trade recall for precision, no retraining.

A span classifier trained with sampled negatives meets far more non-entity spans at inference (every
candidate) than it saw per step in training, so it tends to over-predict entities: precision lags
recall. Adding a constant to the classifier's bias for "O" moves every decision towards "O"; the
constant that maximises the mean F1 over the development files is kept. With ``per_label`` every
label's bias is then tuned in turn (coordinate ascent, "O" included), which corrects labels the
model over- or under-predicts relative to the others (say MISC against ORG).

The model runs once per dev file: `SpanModel.score_candidates` keeps every candidate's probabilities
and `decode_candidates` replays the decisions under each trial shift, so a search costs seconds after
that pass. The shifts live in the classifier's bias, so the model stays a plain SpanMarker
checkpoint and `span_marker` predicts exactly what spanlink does. The applied totals are recorded
in the config (``spanlink_label_shifts``: label -> total shift).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ner.corpora import Sentence
from ner.model import SpanModel
from ner.scoring import count_matches
from ner.segments import Candidates

SHIFTS_KEY = "spanlink_label_shifts"
DEFAULT_SHIFTS = (-0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
DEFAULT_LABEL_STEPS = (-1.0, -0.5, -0.25, 0.25, 0.5, 1.0)


@dataclass
class Calibration:
    """The chosen shifts and the dev scores behind them.

    Attributes:
        shifts (dict[str, float]): what this calibration added to each label's bias (only labels it
            moved; empty when nothing beat the model as it was).
        mean_f1 (float): mean entity F1 over the dev files at those shifts.
        table (list[dict]): one row per tried "O" shift:
            ``{"shift", "mean_f1", "files": {name: {precision, recall, f1}}}``.
        label_table (list[dict]): with ``per_label``, one row per tried label step:
            ``{"round", "label", "shift", "mean_f1"}`` (``shift`` is that label's total at the trial).
    """

    shifts: dict[str, float]
    mean_f1: float
    table: list[dict] = field(default_factory=list)
    label_table: list[dict] = field(default_factory=list)

    @property
    def shift(self) -> float:
        """The "O" shift (0 when "O" was not moved)."""
        return self.shifts.get("O", 0.0)


def _bias(model: SpanModel) -> torch.Tensor:
    """The classifier's bias, checked to be a float parameter that can be shifted."""
    if model.dtype == "int8" or not isinstance(model.classifier, torch.nn.Linear):
        raise ValueError("calibrate the float model: a quantized classifier's bias cannot be shifted")
    if model.classifier.bias is None:
        raise ValueError("the classifier has no bias to shift")
    return model.classifier.bias


def shift_label_biases(model: SpanModel, shifts: Mapping[str, float]) -> None:
    """Add ``shifts[label]`` to each named label's classifier bias in place; record the running totals."""
    labels = model.config.labels
    unknown = sorted(set(shifts) - set(labels))
    if unknown:
        raise ValueError(f"unknown labels {unknown}; the model has {labels}")
    bias = _bias(model)
    totals = dict(model.config.raw.get(SHIFTS_KEY) or {})
    with torch.no_grad():
        for label, value in shifts.items():
            bias[labels.index(label)] += value
            totals[label] = round(float(totals.get(label, 0.0)) + value, 6)
    model.config.raw[SHIFTS_KEY] = {label: totals[label] for label in labels if label in totals}


def reset_label_shifts(model: SpanModel) -> dict[str, float]:
    """Undo every recorded calibration shift (before more training: the loss wants the raw biases).

    Returns:
        dict[str, float]: the shifts that were taken out (empty when none were recorded).
    """
    recorded = dict(model.config.raw.get(SHIFTS_KEY) or {})
    if recorded:
        shift_label_biases(model, {label: -value for label, value in recorded.items()})
    model.config.raw.pop(SHIFTS_KEY, None)
    return recorded


def shift_outside_bias(model: SpanModel, shift: float) -> None:
    """Add `shift` to the classifier's "O" bias in place and record the running total in the config."""
    shift_label_biases(model, {model.config.labels[model.config.outside_id]: shift})


def calibrate_biases(
    model: SpanModel,
    dev: Mapping[str, list[Sentence]],
    shifts: Sequence[float] = DEFAULT_SHIFTS,
    *,
    per_label: bool = False,
    label_steps: Sequence[float] = DEFAULT_LABEL_STEPS,
    rounds: int = 2,
    prune: bool | None = None,
    show_progress_bar: bool = False,
) -> Calibration:
    """Find the bias shifts with the best mean dev F1, then leave the model at them.

    First the "O" shift is chosen from `shifts`; with `per_label`, each label ("O" too) is then tried
    at its current shift plus each of `label_steps`, label after label, for up to `rounds` rounds (a
    round that changes nothing ends the search). A change is kept only when it raises the mean F1,
    and for "O" ties go to the smaller shift with 0 (the model as it is) always tried, so
    calibration never makes the dev score worse.

    Args:
        model (SpanModel): a float model; changed in place.
        dev (Mapping[str, list[Sentence]]): gold sentences per file; each file weighs the same.
        shifts (Sequence[float]): "O" shifts to try. Defaults to -0.5 ... 3.0 in steps of 0.5.
        per_label (bool): then tune every label's bias. Defaults to False.
        label_steps (Sequence[float]): steps tried per label and round. Defaults to ±0.25, ±0.5, ±1.
        rounds (int): most passes over the labels. Defaults to 2.
        prune (bool | None): as `SpanModel.extract`. Defaults to the model's setting.
        show_progress_bar (bool): a bar over the model runs (one per dev file). Defaults to False.

    Returns:
        Calibration: the chosen shifts (already applied) and the tables of dev scores.
    """
    if not dev or not any(dev.values()):
        raise ValueError("calibration needs development sentences")
    _bias(model)
    candidates: dict[str, Candidates] = {}
    for name, sentences in tqdm(dev.items(), desc="calibrate", unit="file", disable=not show_progress_bar):
        candidates[name] = model.score_candidates([s.text for s in sentences], prune=prune)

    def score(trial: Mapping[str, float]) -> tuple[float, dict]:
        files = {}
        for name, sentences in dev.items():
            predicted = model.decode_candidates(candidates[name], label_shifts=trial, strip_spaces=True)
            scores = count_matches(sentences, predicted).compute()
            files[name] = {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1}
        return sum(f["f1"] for f in files.values()) / len(files), files

    outside = model.config.labels[model.config.outside_id]
    table = []
    for value in sorted({0.0, *map(float, shifts)}, key=lambda s: (abs(s), s)):
        mean_f1, files = score({outside: value})
        table.append({"shift": value, "mean_f1": mean_f1, "files": files})
    best_row = max(table, key=lambda row: row["mean_f1"])  # first maximum: smallest |shift| ran first
    chosen, best = {outside: best_row["shift"]}, best_row["mean_f1"]
    table.sort(key=lambda row: row["shift"])

    label_table: list[dict] = []
    for round_ in range(1, rounds + 1 if per_label else 1):
        moved = False
        for label in model.config.labels:
            here = chosen.get(label, 0.0)
            for step in label_steps:
                trial = {**chosen, label: here + step}
                mean_f1, _ = score(trial)
                label_table.append(
                    {"round": round_, "label": label, "shift": here + step, "mean_f1": mean_f1}
                )
                if mean_f1 > best:
                    best, chosen[label], moved = mean_f1, here + step, True
        if not moved:
            break

    applied = {label: value for label, value in chosen.items() if value != 0.0}
    shift_label_biases(model, applied)
    return Calibration(applied, best, table, label_table)
