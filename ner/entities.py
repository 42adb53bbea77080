"""What extraction returns, and how inputs and per-window results are normalised around it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ner.errors import InputError


@dataclass
class Entity:
    """One predicted mention.

    Args:
        start (int): character offset of the first character, in the input text.
        end (int): character offset one past the last character.
        text (str): `text[start:end]`.
        label (str): the entity type.
        score (float): the model's probability for that type.
        embedding (np.ndarray | None): float32 vector of the encoder's hidden size (the mean of the
            span's final subword states), when asked for.
        word_start (int | None): for word-list inputs, the first word; else None.
        word_end (int | None): for word-list inputs, one past the last word; else None.
        group (str): the type's group in the model's label hierarchy (``"PER"`` for ``"Artist"``,
            `ner.labels`); the label itself for models with flat labels. Defaults to the label.
    """

    start: int
    end: int
    text: str
    label: str
    score: float
    embedding: np.ndarray | None = None
    word_start: int | None = None
    word_end: int | None = None
    group: str = ""

    def __post_init__(self) -> None:
        if not self.group:
            self.group = self.label

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "label": self.label,
            "group": self.group,
            "score": self.score,
        }
        if self.word_start is not None:
            out["word_start"], out["word_end"] = self.word_start, self.word_end
        if self.embedding is not None:
            out["embedding"] = self.embedding.tolist()
        return out


def check_encodable(text: str, where: str) -> str:
    """Refuse text that is not valid Unicode (a lone surrogate such as ``"\\ud800"``).

    Python strings can hold lone surrogates (JSON's ``"\\ud800"`` escape decodes to one) but no
    tokenizer can encode them: the Rust tokenizers raise a bare ``TypeError``. Refusing them here
    gives every caller one clear :class:`InputError` instead.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{where} is not valid Unicode: {exc.reason} at character {exc.start} "
            f"({text[exc.start : exc.start + 1]!a})"
        ) from None
    return text


def normalize_inputs(texts: Any) -> list[str | list[str]]:
    """One list of strings or word lists, each checked to be encodable (see :func:`check_encodable`)."""
    if isinstance(texts, str):
        return [check_encodable(texts, "text")]
    if not isinstance(texts, (list, tuple)):
        raise InputError(
            f"texts must be a string, a list of strings or a list of word lists, got {type(texts).__name__}"
        )
    items: list[str | list[str]] = []
    for i, item in enumerate(texts):
        if isinstance(item, str):
            items.append(check_encodable(item, f"texts[{i}]"))
        elif isinstance(item, (list, tuple)) and all(isinstance(w, str) for w in item):
            items.append([check_encodable(w, f"texts[{i}][{j}]") for j, w in enumerate(item)])
        else:
            raise InputError(f"texts[{i}] must be a string or a list of strings, got {type(item).__name__}")
    return items


def merge_windows(found: list[tuple[Entity, bool]]) -> list[Entity]:
    """Entities of one input in order; where overlapping windows met, the higher score wins.

    Args:
        found: each entity with whether its window overlaps a neighbour.
    """
    if any(overlapping for _, overlapping in found):
        chosen: list[Entity] = []
        for entity, _ in sorted(found, key=lambda pair: -pair[0].score):
            if all(entity.end <= c.start or entity.start >= c.end for c in chosen):
                chosen.append(entity)
        return sorted(chosen, key=lambda e: e.start)
    return sorted((entity for entity, _ in found), key=lambda e: e.start)
