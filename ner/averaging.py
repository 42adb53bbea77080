"""Uniform weight averaging of span models that share a training lineage (a "model soup").

Two checkpoints of one run, or a model and its own fine-tuned continuation, lie in one basin of the
loss; the mean of their weights often generalises a little better than either (Wortsman et al.,
2022). The default model v0.6 is such a mean (its card). Calibration shifts are taken out of every
input first, since they are not learned weights; calibrate the average afresh.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ner.calibration import reset_label_shifts
from ner.model import SpanModel


def _modules(model: SpanModel) -> dict[str, torch.nn.Module]:
    modules = {"encoder": model.encoder, "classifier": model.classifier}
    if model.boundary is not None:
        modules["boundary"] = model.boundary
    return modules


def average_span_models(models: Sequence[SpanModel]) -> SpanModel:
    """Average the weights of `models` into the first one (changed in place) and return it.

    Args:
        models (Sequence[SpanModel]): two or more float models with the same labels and shapes;
            their calibration shifts are reset in place.

    Returns:
        SpanModel: the first model, holding the mean weights, without calibration shifts.

    Raises:
        ValueError: fewer than two models, a quantized one, or models that differ in labels or shapes.
    """
    if len(models) < 2:
        raise ValueError("averaging needs at least two models")
    first = models[0]
    for model in models:
        if model.dtype == "int8":
            raise ValueError("average float models: int8 weights cannot be averaged")
        if model.config.labels != first.config.labels:
            raise ValueError(f"models have other labels: {first.config.labels} vs {model.config.labels}")
        if _modules(model).keys() != _modules(first).keys():
            raise ValueError("all models or none must have a boundary head")
        reset_label_shifts(model)
    with torch.no_grad():
        for name, module in _modules(first).items():
            states = [_modules(m)[name].state_dict() for m in models]
            for key, value in module.state_dict().items():
                others = [state.get(key) for state in states]
                if any(o is None or o.shape != value.shape for o in others):
                    raise ValueError(f"models differ in shape at {name}.{key}")
                if value.is_floating_point():
                    value.copy_(torch.stack([o.float() for o in others]).mean(0).to(value.dtype))
    return first
