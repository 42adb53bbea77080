"""The configuration of a span model, read from and written to a SpanMarker `config.json`.

SpanMarker stores two configs in one file: its own keys (`entity_max_length`, `marker_max_length`,
`model_max_length`, the reduced `id2label`) at the top level and the encoder's full config under
`encoder`. Reading the file is all spanlink needs; unlike `span_marker`, nothing is re-read from
`encoder["_name_or_path"]`, which would reach for the network (or a folder that no longer exists).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ner.errors import CheckpointError

#: Encoder families spanlink runs natively. All are BERT-shaped post-LN transformers with learned
#: absolute positions, which SpanMarker's marker position ids rely on.
SUPPORTED_ENCODERS = ("bert", "roberta", "xlm-roberta", "camembert")

#: Activation names as transformers spells them.
ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "silu", "swish")

SCHEME_PREFIXES = "BIELSU"
DEFAULT_MODEL_MAX_LENGTH = 512  # SpanMarker's `model_max_length_default`

SPANLINK_CONFIG_VERSION = 1


@dataclass(frozen=True)
class EncoderConfig:
    """The transformer shape, as found under `encoder` in a SpanMarker config."""

    model_type: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    pad_token_id: int = 0
    hidden_dropout_prob: float = 0.1

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EncoderConfig:
        model_type = raw.get("model_type")
        if model_type not in SUPPORTED_ENCODERS:
            raise CheckpointError(
                f"encoder model_type {model_type!r} is not supported; "
                f"spanlink runs {', '.join(SUPPORTED_ENCODERS)}"
            )
        act = raw.get("hidden_act", "gelu")
        if act not in ACTIVATIONS:
            raise CheckpointError(
                f"encoder hidden_act {act!r} is not supported; expected one of {ACTIVATIONS}"
            )
        try:
            return cls(
                model_type=model_type,
                vocab_size=int(raw["vocab_size"]),
                hidden_size=int(raw["hidden_size"]),
                num_hidden_layers=int(raw["num_hidden_layers"]),
                num_attention_heads=int(raw["num_attention_heads"]),
                intermediate_size=int(raw["intermediate_size"]),
                hidden_act=act,
                layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
                max_position_embeddings=int(raw.get("max_position_embeddings", 512)),
                type_vocab_size=int(raw.get("type_vocab_size", 2)),
                pad_token_id=int(raw.get("pad_token_id") or 0),
                hidden_dropout_prob=float(raw.get("hidden_dropout_prob", 0.1)),
            )
        except KeyError as exc:
            raise CheckpointError(f"encoder config lacks the key {exc.args[0]!r}") from None


def labels_are_schemed(labels: list[str]) -> bool:
    """SpanMarker's `are_labels_schemed`: every label is "O" or looks like "B-PER"."""
    return bool(labels) and all(
        label == "O" or (len(label) > 2 and label[0] in SCHEME_PREFIXES and label[1] == "-")
        for label in labels
    )


def reduce_labels(labels: list[str]) -> list[str]:
    """Map a tagging scheme's labels (B-PER, I-PER, ...) to span labels, "O" first, then sorted."""
    if not labels_are_schemed(labels):
        return list(labels)
    return ["O"] + sorted({label[2:] for label in labels if label != "O"})


def _ordered_labels(id2label: dict[Any, str]) -> list[str]:
    pairs = sorted((int(k), v) for k, v in id2label.items())
    if [k for k, _ in pairs] != list(range(len(pairs))):
        raise CheckpointError(f"id2label ids must be 0..{len(pairs) - 1}, got {[k for k, _ in pairs]}")
    return [v for _, v in pairs]


def _label_groups(raw: Any, labels: list[str]) -> dict[str, str]:
    """`spanlink_label_groups` checked against the labels: every entity label in exactly one group."""
    if not raw:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) and v for v in raw.values()):
        raise CheckpointError("spanlink_label_groups must map each label to a group name")
    entity = [label for label in labels if label != "O"]
    missing = [label for label in entity if label not in raw]
    unknown = [label for label in raw if label not in entity]
    if missing or unknown:
        raise CheckpointError(
            f"spanlink_label_groups must name a group for exactly the model's labels "
            f"(missing {missing[:5]}, unknown {unknown[:5]})"
        )
    return {label: raw[label] for label in entity}


@dataclass
class SpanConfig:
    """Everything a span model needs besides weights and tokenizer.

    Args:
        encoder (EncoderConfig): the transformer shape.
        labels (list[str]): span labels; index = classifier output.
        entity_max_length (int): longest candidate span, in words. Defaults to 8.
        marker_max_length (int): SpanMarker's markers per sample; kept for compatibility (spanlink packs
            by token budget instead). Defaults to 128.
        model_max_length (int | None): longest text in tokens, special tokens included. Defaults to None
            (the tokenizer's limit, else 512).
        cjk_words (bool): every subword of a CJK run is a word (spanlink-trained models; see
            `ner.tokenization.cjk_token_words`). Defaults to False, as span_marker.
        prune_threshold (float | None): with a boundary head, extraction by default only classifies
            spans whose first and last word score at least this as entity start / end. None: off.
        label_groups (dict[str, str]): fine label -> its group (``"Artist" -> "PER"``) for models
            with a label hierarchy (`ner.labels`); empty for flat label sets, where each label is
            its own group.
        raw (dict): the original config, preserved on save.
    """

    encoder: EncoderConfig
    labels: list[str]
    entity_max_length: int = 8
    marker_max_length: int = 128
    model_max_length: int | None = None
    cjk_words: bool = False
    prune_threshold: float | None = None
    label_groups: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def outside_id(self) -> int:
        return self.labels.index("O")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SpanConfig:
        if raw.get("model_type") != "span-marker":
            raise CheckpointError(
                f"config.json has model_type {raw.get('model_type')!r}, expected 'span-marker': "
                "this is not a SpanMarker checkpoint (to train one from a plain encoder, "
                "use `spanlink train`)"
            )
        enc_raw = raw.get("encoder")
        if not isinstance(enc_raw, dict):
            raise CheckpointError("config.json lacks the `encoder` section of a SpanMarker config")
        top = raw.get("id2label")
        default_labels = {"0": "LABEL_0", "1": "LABEL_1"}
        if top and {str(k): v for k, v in top.items()} != default_labels:
            labels = _ordered_labels(top)
        elif enc_raw.get("id2label"):
            labels = _ordered_labels(enc_raw["id2label"])
        else:
            raise CheckpointError("config.json names no labels (`id2label`)")
        if "id2reduced_id" not in raw:
            labels = reduce_labels(labels)
        if "O" not in labels:
            raise CheckpointError(f"the labels must contain 'O', got {labels}")
        mml = raw.get("model_max_length")
        return cls(
            encoder=EncoderConfig.from_dict(enc_raw),
            labels=labels,
            entity_max_length=int(raw.get("entity_max_length", 8)),
            marker_max_length=int(raw.get("marker_max_length", 128)),
            model_max_length=int(mml) if mml is not None else None,
            cjk_words=bool(raw.get("spanlink_cjk_words", False)),
            prune_threshold=raw.get("spanlink_prune_threshold"),
            label_groups=_label_groups(raw.get("spanlink_label_groups"), labels),
            raw=copy.deepcopy(raw),
        )

    @classmethod
    def from_file(cls, path: Path) -> SpanConfig:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(
                f"{path} not found: a SpanMarker checkpoint folder has a config.json"
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise CheckpointError(f"{path} must hold a JSON object")
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        """A SpanMarker-format config (loadable by `span_marker` too), keeping unknown keys."""
        out = copy.deepcopy(self.raw)
        id2label = dict(enumerate(self.labels))
        out.update(
            model_type="span-marker",
            entity_max_length=self.entity_max_length,
            marker_max_length=self.marker_max_length,
            model_max_length=self.model_max_length,
            id2label={str(k): v for k, v in id2label.items()},
            label2id={v: k for k, v in id2label.items()},
            spanlink_config_version=SPANLINK_CONFIG_VERSION,
            spanlink_cjk_words=self.cjk_words,
            spanlink_prune_threshold=self.prune_threshold,
        )
        if self.label_groups:
            out["spanlink_label_groups"] = dict(self.label_groups)
        else:
            out.pop("spanlink_label_groups", None)
        return out

    def group_of(self, label: str) -> str:
        """The group a label belongs to (itself for flat label sets and for "O")."""
        return self.label_groups.get(label, label)
