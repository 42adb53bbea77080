"""Schemathesis hooks: the request rules OpenAPI cannot state, applied to *positive* cases only.

Everything a JSON Schema can say about a request is in the service's OpenAPI document (see
``api/openapi.py``). What is left relates a value to another one or to the stored data, which no
schema keyword can express, so a generator drawing "valid" requests from the schema alone would
send requests the server rightly refuses (and ``positive_data_acceptance`` would fail on them):

* a mention span lies inside its text (``0 <= start < end <= len(text)``), covers a letter or digit
  with no whitespace at its ends, and does not overlap another;
* a new mention label that differs from a known label only by case is refused ("per" for "PER");
* the documents of a batch have distinct ids, and so do the entities of a knowledge-base import;
* a knowledge-base entity's name and aliases hold a letter or digit, and its label is a known one;
* an entity is not merged into itself;
* a new entity ``name`` (split, update) holds a letter or digit (any script: no portable regex
  class says so);
* a search (``q``) is ordered by mentions: it takes no other ``sort``;
* a similarity text holds a letter or digit (else the model has no token to embed);
* an existing entity gets a *known* label (split, update): the model's or one stored before, a set
  that grows with every ingest, so the schema gives the label's form and this sends a model label.

For those, :func:`map_case` rewrites a positive case into the nearest request that obeys them
(spans moved onto words of the text, the label spelled as the model spells it, ...). Negative
cases are never touched, and nothing here filters a response or a failure. Loaded by
``schemathesis.toml`` (``schemathesis run`` from the repository root) and by
``tests/api/test_service_fuzz.py``.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

WORD = re.compile(r"[^\W_]+")
"""A run of letters and digits (``str.isalnum``), the spans a mention may cover."""

MODEL_LABELS = ("LOC", "MISC", "ORG", "PER")
"""The labels of the test checkpoints (and of the default model)."""


def _spans(text: str, count: int) -> list[tuple[int, int]]:
    return [m.span() for m in WORD.finditer(text)][:count]


def _label(label: Any) -> Any:
    """One spelling per case-insensitive label: the model's, else the case-folded one.

    Labels stored by earlier cases count as known, so "Y" after "y" would be refused; spelling
    every new label case-folded keeps two spellings from ever meeting.
    """
    if not isinstance(label, str):
        return label
    for known in MODEL_LABELS:
        if label.casefold() == known.casefold():
            return known
    folded = label.casefold()
    return folded if len(folded) <= 64 and folded.strip() == folded else label


def fix_mentions(text: Any, mentions: Any) -> Any:
    """The mentions moved onto distinct words of ``text``, in order; those beyond its words dropped."""
    if not isinstance(text, str) or not isinstance(mentions, list):
        return mentions
    fixed = []
    for mention, (start, end) in zip(mentions, _spans(text, len(mentions))):
        if isinstance(mention, dict):
            fixed.append({**mention, "start": start, "end": end, "label": _label(mention.get("label"))})
    return fixed


def fix_similar(body: dict[str, Any]) -> None:
    """A ``start``/``end`` pair moved onto the first word of ``text`` (or dropped when it has none)."""
    text = body.get("text")
    if isinstance(text, str) and not any(ch.isalnum() for ch in text):
        # Only symbols or control characters ("\u008d"): the model has no token to embed, a 422
        # the schema cannot foresee (found with seed 1 once the operations changed, issue 18).
        body["text"] = text + " x"
    # JSON Schema integers include 3.0, and the generator draws those too.
    if isinstance(body.get("start"), int | float) and isinstance(body.get("text"), str):
        spans = _spans(body["text"], 1)
        if spans:
            body["start"], body["end"] = spans[0]
        else:
            body.pop("start"), body.pop("end", None)


def _known_label(body: dict[str, Any]) -> None:
    label = body.get("label")
    if isinstance(label, str) and label not in MODEL_LABELS:
        body["label"] = MODEL_LABELS[len(label) % len(MODEL_LABELS)]


def _visible(name: Any) -> Any:
    """A name with a letter or digit (the store's rule) that still fits the schema's 1..1024 characters."""
    if isinstance(name, str) and not any(ch.isalnum() for ch in name):
        return name[:1023] + "x"
    return name


def fix_entities(entities: list[Any]) -> None:
    """Knowledge-base import items: distinct external ids, visible names and aliases, known labels."""
    seen: set[str] = set()
    for i, entity in enumerate(entities):
        if not isinstance(entity, dict):
            continue
        key = entity.get("external_id")
        if isinstance(key, str) and key in seen:
            entity["external_id"] = key = f"{key[:500]}-{i}"
        if isinstance(key, str):
            seen.add(key)
        entity["name"] = _visible(entity.get("name"))
        if isinstance(entity.get("aliases"), list):
            entity["aliases"] = [_visible(alias) for alias in entity["aliases"]]
        _known_label(entity)


def _operation(case: Any) -> str:
    return f"{case.method.upper()} {case.operation.path}"


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Apply the cross-field rules above to a positive case as it is generated."""
    repair(case)
    return case


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Once more just before sending: the stateful phase fills in values seen in earlier responses
    (a label echoed by ``/v1/link``, say) after ``map_case`` has run."""
    repair(case)


def repair(case: Any) -> None:
    """The cross-field rules above, applied in place to a positive case (negative ones untouched)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    operation = _operation(case)
    query = case.query if isinstance(case.query, dict) else {}
    if (
        operation == "GET /v1/entities"
        and query.get("q") is not None
        and query.get("sort") not in (None, "mentions")
    ):
        query.pop("sort")
    if not isinstance(case.body, dict):
        return
    body = case.body
    if operation == "POST /v1/documents" and isinstance(body.get("documents"), list):
        seen: set[str] = set()
        for document in body["documents"]:
            if isinstance(document, dict) and isinstance(document.get("id"), str):
                if document["id"] in seen:
                    document["id"] = None  # the service generates one
                else:
                    seen.add(document["id"])
        for document in body["documents"]:
            if isinstance(document, dict) and document.get("mentions") is not None:
                document["mentions"] = fix_mentions(document.get("text"), document["mentions"])
    elif operation == "POST /v1/entities" and isinstance(body.get("entities"), list):
        fix_entities(body["entities"])
    elif operation == "POST /v1/link" and body.get("mentions") is not None:
        body["mentions"] = fix_mentions(body.get("text"), body["mentions"])
    elif operation == "POST /v1/entities/similar":
        fix_similar(body)
    elif operation == "POST /v1/entities/{entity_id}/merge":
        other = body.get("other")
        path_id = (case.path_parameters or {}).get("entity_id")
        try:  # the path parameter may come as a string ("2") from the coverage phase
            same = isinstance(other, int | float) and int(other) == int(path_id)
        except (TypeError, ValueError):
            same = False
        if same:
            body["other"] = int(other) + 1 if other < 2**63 - 1 else int(other) - 1
    elif operation == "POST /v1/entities/{entity_id}/split":
        _known_label(body)
        name = body.get("name")
        if isinstance(name, str) and not any(ch.isalnum() for ch in name):
            body["name"] = None
    elif operation == "PATCH /v1/entities/{entity_id}":
        _known_label(body)
        name = body.get("name")
        if isinstance(name, str) and not any(ch.isalnum() for ch in name):
            body["name"] = name[:511] + "x"
