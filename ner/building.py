"""A new, untrained span model on top of a plain encoder: the starting point of `spanlink train`.

The result is a SpanMarker model in every respect (config layout, parameter names, marker tokens),
so what training writes loads in spanlink and in `span_marker` alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ner.config import SpanConfig
from ner.encoder import Encoder
from ner.errors import CheckpointError
from ner.loading import read_weights, resolve_checkpoint
from ner.model import SpanModel
from ner.tokenization import SpanTokenizer

SPAN_MARKER_FORMAT_VERSION = "1.8.1"  # the span_marker release whose checkpoint layout we write


def base_encoder_folder(base: str | Path) -> Path:
    """ "e5-small" (the embedded default, converted on first use), a local encoder folder, or a hub id."""
    if str(base) == "e5-small":
        from ner.base_encoder import ensure_base_encoder

        return ensure_base_encoder("e5-small")
    return resolve_checkpoint(base)


def _encoder_prefix(state: dict[str, torch.Tensor]) -> str:
    """'' for a bare BertModel, 'bert.' / 'roberta.' for task-model checkpoints."""
    for key in state:
        if key.endswith("embeddings.word_embeddings.weight"):
            return key.removesuffix("embeddings.word_embeddings.weight")
    raise CheckpointError("the base encoder's weights have no embeddings.word_embeddings.weight")


def new_span_model(
    base: str | Path,
    labels: list[str],
    *,
    entity_max_length: int = 8,
    model_max_length: int = 256,
    marker_max_length: int = 128,
    cjk_words: bool = True,
    seed: int = 0,
) -> SpanModel:
    """Wrap a BERT-family encoder into a SpanMarker model with fresh markers and classifier.

    Args:
        base (str | Path): "e5-small", an encoder folder (config.json, safetensors, tokenizer) or hub id.
        labels (list[str]): entity types, without "O" (it is added first, as SpanMarker orders them).
        entity_max_length (int): longest candidate span in words. Defaults to 8.
        model_max_length (int): longest input in tokens. Defaults to 256.
        marker_max_length (int): kept in the config for span_marker. Defaults to 128.
        cjk_words (bool): treat every CJK subword as a word (see `ner.tokenization.cjk_token_words`).
        seed (int): initialises the new weights. Defaults to 0.

    Returns:
        SpanModel: in float32 on the CPU, in eval mode.
    """
    if not labels or "O" in labels:
        raise ValueError(f"labels must be the entity types without 'O', got {labels}")
    folder = base_encoder_folder(base)
    try:
        enc_raw: dict[str, Any] = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder} has no readable config.json: {exc}") from None
    if enc_raw.get("model_type") == "span-marker":
        raise CheckpointError(
            f"{folder} is already a SpanMarker model; load it with ner.load to fine-tune further"
        )
    span_labels = ["O", *sorted(labels)]
    tokenizer = SpanTokenizer.from_folder(folder, model_max_length, enc_raw.get("model_type", ""), cjk_words)
    state = read_weights(folder)
    prefix = _encoder_prefix(state)
    words = state[prefix + "embeddings.word_embeddings.weight"]
    # span_marker resizes to len(tokenizer) with pad_to_multiple_of=8; never shrink a larger table.
    vocab = max(-(-len(tokenizer) // 8) * 8, words.shape[0])
    encoder_section = {
        **enc_raw,
        "_name_or_path": str(folder),
        "vocab_size": vocab,
        "id2label": {str(i): label for i, label in enumerate(span_labels)},
        "label2id": {label: i for i, label in enumerate(span_labels)},
    }
    raw = {
        "model_type": "span-marker",
        "architectures": ["SpanMarkerModel"],
        "encoder": encoder_section,
        "entity_max_length": entity_max_length,
        "marker_max_length": marker_max_length,
        "model_max_length": model_max_length,
        "max_prev_context": None,
        "max_next_context": None,
        "trained_with_document_context": False,
        "span_marker_version": SPAN_MARKER_FORMAT_VERSION,
        "spanlink_cjk_words": cjk_words,
    }
    config = SpanConfig.from_dict(raw)
    generator = torch.Generator().manual_seed(seed)
    words = torch.cat((words, torch.zeros(vocab - words.shape[0], words.shape[1])))
    for marker in (tokenizer.start_id, tokenizer.end_id):  # fresh rows, as span_marker's resize gives
        words[marker] = torch.randn(words.shape[1], generator=generator) * 0.02
    state = {**state, prefix + "embeddings.word_embeddings.weight": words}
    encoder = Encoder(config.encoder)
    encoder.load_hf_state_dict(state, prefix=prefix)
    classifier = nn.Linear(2 * config.encoder.hidden_size, len(span_labels))
    boundary = nn.Linear(config.encoder.hidden_size, 2)
    with torch.no_grad():
        for layer in (classifier, boundary):
            layer.weight.normal_(0.0, 0.02, generator=generator)
            layer.bias.zero_()
    return SpanModel(config, tokenizer, encoder, classifier, name=f"new model on {base}", boundary=boundary)


def is_span_model(base: str | Path) -> bool:
    """Whether `base` names a trained span model (a SpanMarker checkpoint, a delta folder or "default")
    rather than a plain encoder."""
    from ner.default_model import is_delta_folder

    if str(base) == "e5-small":
        return False
    if str(base) == "default" or is_delta_folder(Path(base)):
        return True
    try:
        raw = json.loads((resolve_checkpoint(base) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # new_span_model reports the unreadable folder
    return raw.get("model_type") == "span-marker"


def trained_span_model(
    base: str | Path,
    labels: list[str] | None = None,
    *,
    entity_max_length: int | None = None,
    model_max_length: int | None = None,
    new_head: bool = False,
    seed: int = 0,
) -> SpanModel:
    """A trained span model as the starting point of more training (more steps, more data, a new domain).

    Its classifier is kept, so the label set must be the one it was trained for; calibration shifts
    (`ner.calibration`) are taken out of the biases, since the loss is defined on the raw ones and the
    trained model should be calibrated afresh.

    Args:
        base (str | Path): "default" (the shipped model), a SpanMarker checkpoint or delta folder, or hub id.
        labels (list[str] | None): the entity types to train, without "O"; must be the model's own.
            Defaults to them (training data may hold only some of them).
        entity_max_length (int | None): must match the model's when given.
        model_max_length (int | None): must match the model's when given.
        new_head (bool): learn other labels: keep the encoder, markers and boundary head, and start
            a fresh classifier for `labels` (what an entity is carries over; its types are new).
        seed (int): initialises a new classifier. Defaults to 0.

    Raises:
        ValueError: other labels or lengths than the model's.
    """
    import ner
    from ner.calibration import reset_label_shifts

    model = ner.load(None if str(base) == "default" else base)
    own = sorted(label for label in model.config.labels if label != "O")
    if new_head:
        if not labels or "O" in labels:
            raise ValueError(f"a new classifier needs the entity types without 'O', got {labels}")
        _replace_classifier(model, labels, seed)
    elif labels is not None and sorted(labels) != own:
        raise ValueError(
            f"{base} was trained for labels {own}, not {sorted(labels)}; to learn other labels start "
            "a new classifier on its encoder (--new-head) or keep its labels"
        )
    for name, wanted, have in (
        ("entity_max_length", entity_max_length, model.config.entity_max_length),
        ("model_max_length", model_max_length, model.config.model_max_length),
    ):
        if wanted is not None and wanted != have:
            raise ValueError(f"{base} has {name} {have}; it cannot be trained at {wanted}")
    reset_label_shifts(model)
    return model


def _replace_classifier(model: SpanModel, labels: list[str], seed: int) -> None:
    """A fresh classifier for `labels` ("O" first, then sorted, as SpanMarker orders them)."""
    span_labels = ["O", *sorted(labels)]
    model.config.labels = span_labels
    model.config.label_groups = {}
    encoder = model.config.raw.setdefault("encoder", {})
    encoder["id2label"] = {str(i): label for i, label in enumerate(span_labels)}
    encoder["label2id"] = {label: i for i, label in enumerate(span_labels)}
    for key in ("id2label", "label2id", "id2reduced_id", "spanlink_label_shifts"):
        model.config.raw.pop(key, None)
    generator = torch.Generator().manual_seed(seed)
    classifier = nn.Linear(model.classifier.in_features, len(span_labels))
    with torch.no_grad():
        classifier.weight.normal_(0.0, 0.02, generator=generator)
        classifier.bias.zero_()
    model.classifier = classifier.to(model.device)
