"""Build SpanMarker checkpoints with random weights, offline, for tests and benchmarks.

A real checkpoint is hundreds of megabytes and lives on the hub; the exactness tests and the speed
benchmark only need the same *format* and *shape*. `build_checkpoint` builds a small tokenizer from
the given texts (WordPiece like BERT, or Unigram + Metaspace like XLM-R), writes an encoder folder
the way the hub would hold it (what `span_marker` re-reads through `encoder._name_or_path`), and a
SpanMarker checkpoint folder beside it (config, safetensors weights, tokenizer with `<start>`/`<end>`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from ner.config import EncoderConfig, labels_are_schemed, reduce_labels
from ner.encoder import Encoder

TOKENIZER_KINDS = ("wordpiece", "unigram")


@dataclass(frozen=True)
class CheckpointSpec:
    """Shape of a random checkpoint. Defaults give a tiny, fast model for tests."""

    tokenizer: str = "wordpiece"
    labels: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
    entity_max_length: int = 8
    marker_max_length: int = 128
    model_max_length: int = 256
    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 64
    vocab_size: int = 600
    outside_bias: float = 1.0
    classifier_std: float = 0.6
    seed: int = 0
    label_groups: tuple[tuple[str, str], ...] = ()  # (label, group) pairs: a label hierarchy (`ner.labels`)


def _words(tok: Tokenizer, texts: list[str]) -> Counter[str]:
    """Word counts as the tokenizer's own normalizer and pre-tokenizer see them."""
    return Counter(
        word
        for text in texts
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))
    )


def _pieces(words: Counter[str], size: int, continuation: str) -> list[str]:
    """A deterministic subword vocabulary: every character, then byte-pair-style merges.

    The `tokenizers` trainers break ties differently on every run, so a fixture model built twice
    tokenized differently and tests were not repeatable. This is the same idea done plainly: start from
    characters (inside a word marked with `continuation`: WordPiece "##"; Unigram none, its words
    start with "▁"), then merge the most frequent adjacent pair, ties going to the smaller pair,
    until `size` pieces. Every character is in, so nothing in the texts it was built from is unknown.
    """
    split = {w: [c if i == 0 else continuation + c for i, c in enumerate(w)] for w in words}
    pieces = sorted({p for symbols in split.values() for p in symbols})
    known = set(pieces)
    while len(pieces) < size:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, symbols in split.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += words[word]
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merged = a + b.removeprefix(continuation) if continuation else a + b
        for word, symbols in list(split.items()):
            i = 0
            while i < len(symbols) - 1:
                if symbols[i] == a and symbols[i + 1] == b:
                    symbols[i : i + 2] = [merged]
                i += 1
            if len(symbols) == 1:
                del split[word]  # whole: nothing left to merge
        if merged not in known:
            known.add(merged)
            pieces.append(merged)
    return pieces


def _build_tokenizer(kind: str, texts: list[str], vocab_size: int) -> tuple[Tokenizer, dict]:
    """Returns the tokenizer and the tokenizer_config.json contents transformers expects with it."""
    if kind == "wordpiece":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(
            lowercase=False, strip_accents=False, handle_chinese_chars=True
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        pieces = _pieces(_words(tok, texts), vocab_size - len(specials), continuation="##")
        tok.model = models.WordPiece({p: i for i, p in enumerate([*specials, *pieces])}, unk_token="[UNK]")
        tok.add_special_tokens(specials)
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": False,
            "tokenize_chinese_chars": True,
            "strip_accents": None,
            "unk_token": "[UNK]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
        }
        return tok, config
    if kind == "unigram":
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        pieces = _pieces(_words(tok, texts), vocab_size - len(specials), continuation="")
        # Log-probabilities from the rank: longer, more frequent pieces win over their characters.
        scored = [(p, -1.0 - math.log1p(rank)) for rank, p in enumerate(pieces)]
        tok.model = models.Unigram([*((sp, 0.0) for sp in specials), *scored], unk_id=specials.index("<unk>"))
        tok.add_special_tokens(specials)
        bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>",
            pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", bos), ("</s>", eos)],
        )
        config = {
            "tokenizer_class": "XLMRobertaTokenizer",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
        }
        return tok, config
    raise ValueError(f"tokenizer kind {kind!r} is unknown; expected one of {TOKENIZER_KINDS}")


def _write_tokenizer(folder: Path, tok: Tokenizer, config: dict, model_max_length: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({**config, "model_max_length": model_max_length}, indent=2), encoding="utf-8"
    )


def build_checkpoint(folder: Path, texts: list[str], spec: CheckpointSpec = CheckpointSpec()) -> Path:
    """Write `<folder>/encoder` (plain encoder + tokenizer) and `<folder>/checkpoint` (SpanMarker).

    Args:
        folder (Path): where to write; created if needed.
        texts (list[str]): text the tokenizer is trained on; include every script the model will see.
        spec (CheckpointSpec): model shape, labels and seed.

    Returns:
        Path: the SpanMarker checkpoint folder.
    """
    torch.manual_seed(spec.seed)
    tok, tok_config = _build_tokenizer(spec.tokenizer, texts, spec.vocab_size)
    enc_dir, ckpt_dir = folder / "encoder", folder / "checkpoint"
    _write_tokenizer(enc_dir, tok, tok_config, spec.model_max_length)

    base_vocab = tok.get_vocab_size()
    pad_id = tok.token_to_id("[PAD]" if spec.tokenizer == "wordpiece" else "<pad>")
    is_bert = spec.tokenizer == "wordpiece"
    encoder_raw = {
        "model_type": "bert" if is_bert else "xlm-roberta",
        "architectures": ["BertModel" if is_bert else "XLMRobertaModel"],
        "vocab_size": base_vocab,
        "hidden_size": spec.hidden_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "intermediate_size": spec.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": spec.model_max_length + 2,
        "type_vocab_size": 2 if is_bert else 1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12 if is_bert else 1e-5,
        "pad_token_id": pad_id,
        "position_embedding_type": "absolute",
    }
    (enc_dir / "config.json").write_text(json.dumps(encoder_raw, indent=2), encoding="utf-8")

    # The checkpoint's tokenizer has the two markers appended, as span_marker adds them.
    tok.add_special_tokens(["<start>", "<end>"])
    _write_tokenizer(ckpt_dir, tok, tok_config, spec.model_max_length)
    vocab = ((base_vocab + 2 + 7) // 8) * 8  # span_marker resizes with pad_to_multiple_of=8
    schemed = list(spec.labels)
    span_labels = reduce_labels(schemed)
    encoder_cfg = EncoderConfig.from_dict({**encoder_raw, "vocab_size": vocab})
    encoder = Encoder(encoder_cfg)
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if "norm" in name:
                param.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
            else:
                param.normal_(0.0, 0.05 if name.endswith("weight") else 0.02)
    state = encoder.hf_state_dict()
    # The encoder folder is a complete Hugging Face BertModel/XLMRobertaModel folder, usable as a
    # base for training (markers rows are simply not used there).
    bare = {
        k.removeprefix("encoder."): v[:base_vocab] if "word_embeddings" in k else v for k, v in state.items()
    }
    save_file(
        {k: v.contiguous() for k, v in bare.items()},
        str(enc_dir / "model.safetensors"),
        metadata={"format": "pt"},
    )
    classifier_w = (
        torch.randn(len(span_labels), 2 * spec.hidden_size) * spec.classifier_std / spec.hidden_size**0.5
    )
    classifier_b = torch.zeros(len(span_labels))
    classifier_b[0] = spec.outside_bias
    state["classifier.weight"] = classifier_w
    state["classifier.bias"] = classifier_b
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(ckpt_dir / "model.safetensors"),
        metadata={"format": "pt"},
    )

    encoder_section = {
        **encoder_raw,
        "_name_or_path": str(enc_dir.resolve()),
        "vocab_size": vocab,
        "id2label": dict(enumerate(schemed)),
        "label2id": {label: i for i, label in enumerate(schemed)},
    }
    span_config = {
        "model_type": "span-marker",
        "architectures": ["SpanMarkerModel"],
        "encoder": encoder_section,
        "id2label": dict(enumerate(span_labels)),
        "label2id": {label: i for i, label in enumerate(span_labels)},
        "entity_max_length": spec.entity_max_length,
        "marker_max_length": spec.marker_max_length,
        "model_max_length": spec.model_max_length,
        "max_next_context": None,
        "max_prev_context": None,
        "trained_with_document_context": False,
        "span_marker_version": "1.8.1",
    }
    if spec.label_groups:
        span_config["spanlink_label_groups"] = dict(spec.label_groups)
    if labels_are_schemed(schemed):
        span_config["id2reduced_id"] = {
            i: span_labels.index(label[2:] if label != "O" else label) for i, label in enumerate(schemed)
        }
    (ckpt_dir / "config.json").write_text(json.dumps(span_config, indent=2), encoding="utf-8")
    return ckpt_dir
