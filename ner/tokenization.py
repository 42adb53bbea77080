"""Subword tokenization and the word <-> token <-> character maps that span prediction needs.

SpanMarker's candidate spans are spans of *words*, where a word is one piece of the tokenizer's
pre-tokenizer (for a plain string) or one element of a pre-tokenized list. To give exactly the same
words as `span_marker` (which runs transformers 4.x), the backend tokenizer is read from
`tokenizer.json` with the adjustments transformers 4.x and span_marker apply on load:

* `add_prefix_space=True` is set on the pre-tokenizer and (RoBERTa) post-processor, as span_marker
  passes it to `AutoTokenizer.from_pretrained`;
* BERT tokenizers get their normalizer's lowercase / strip_accents / chinese-chars settings from
  `tokenizer_config.json`, with BertTokenizerFast's defaults;
* XLM-R tokenizers also split on punctuation (span_marker's `Punctuation()` pre-tokenizer).

Only folders without a `tokenizer.json` go through transformers' converters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import AddedToken, Tokenizer, normalizers, pre_tokenizers, processors

from ner.errors import CheckpointError

START_MARKER, END_MARKER = "<start>", "<end>"
_HUGE = 10**29  # transformers' "no limit" sentinel is 1e30
_CLASS_BY_ENCODER = {
    "bert": "BertTokenizer",
    "roberta": "RobertaTokenizer",
    "xlm-roberta": "XLMRobertaTokenizer",
    "camembert": "CamembertTokenizer",
}


@dataclass
class Encoded:
    """One text (or word list) as the model sees it.

    `word_tokens[w]` is the half-open token range of word w (token 0 is the CLS/BOS token) and
    `word_chars[w]` its character range in the text; both are None for a word that produced no
    token (e.g. a lone zero-width character), which SpanMarker maps to position 0.
    """

    ids: list[int]
    offsets: list[tuple[int, int]]
    word_tokens: list[tuple[int, int] | None]
    word_chars: list[tuple[int, int] | None]

    @property
    def num_words(self) -> int:
        return len(self.word_tokens)

    @property
    def num_tokens(self) -> int:
        return len(self.ids)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def _apply_transformers_v4_adjustments(backend: Tokenizer, tok_config: dict[str, Any]) -> None:
    """What `AutoTokenizer.from_pretrained(path, add_prefix_space=True)` does to tokenizer.json in 4.x."""
    cls = str(tok_config.get("tokenizer_class") or "")
    if backend.pre_tokenizer is not None:
        state = json.loads(backend.pre_tokenizer.__getstate__())
        if state.get("add_prefix_space", True) is not True:
            kind = state.pop("type")
            state["add_prefix_space"] = True
            backend.pre_tokenizer = getattr(pre_tokenizers, kind)(**state)
    if cls.startswith("Bert") and backend.normalizer is not None:
        state = json.loads(backend.normalizer.__getstate__())
        wanted = {
            "lowercase": tok_config.get("do_lower_case", True),
            "strip_accents": tok_config.get("strip_accents"),
            "handle_chinese_chars": tok_config.get("tokenize_chinese_chars", True),
        }
        if any(state.get(k, v) != v for k, v in wanted.items()):
            kind = state.pop("type")
            state.update(wanted)
            backend.normalizer = getattr(normalizers, kind)(**state)
    if cls.startswith("Roberta") and backend.post_processor is not None:
        state = json.loads(backend.post_processor.__getstate__())
        changed = False
        for key, value in (
            ("add_prefix_space", True),
            ("trim_offsets", tok_config.get("trim_offsets", True)),
        ):
            if state.get(key, value) != value:
                state[key], changed = value, True
        if changed:
            kind = state.pop("type")
            for key in ("sep", "cls"):
                if key in state:
                    state[key] = tuple(state[key])
            backend.post_processor = getattr(processors, kind)(**state)
    if cls.startswith("XLMRoberta"):
        # span_marker: "XLM-R is known to have some tokenization issues, so be sure to also split
        # on punctuation."
        backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Punctuation(), backend.pre_tokenizer])


def _load_backend(folder: Path) -> Tokenizer:
    if (folder / "tokenizer.json").is_file():
        try:
            return Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises plain Exception on malformed files
            raise CheckpointError(f"{folder / 'tokenizer.json'} could not be read: {exc}") from None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True).backend_tokenizer
    except Exception as exc:
        raise CheckpointError(
            f"no usable tokenizer in {folder}: expected tokenizer.json "
            f"(or files transformers can convert): {exc}"
        ) from None


def is_cjk(char: str) -> bool:
    """Han, kana, hangul syllables and CJK punctuation: scripts written without spaces between words."""
    code = ord(char)
    return (
        0x3000 <= code <= 0x30FF  # CJK punctuation, hiragana, katakana
        or 0x3400 <= code <= 0x4DBF
        or 0x4E00 <= code <= 0x9FFF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x2FA1F
    )


def cjk_token_words(word_ids: list[int | None], tokens: list[str]) -> list[int | None]:
    """Renumber words so that every subword of a CJK run is a word of its own.

    A Metaspace pre-tokenizer makes a whole unspaced Chinese or Japanese sentence one "word", so no
    entity inside it could ever be a candidate span. Models trained by spanlink treat each CJK
    subword as a word instead (a bare "▁" joins the piece after it). Off for third-party
    checkpoints, whose words must stay span_marker's.
    """
    out: list[int | None] = []
    current, prev_word, prev_cjk, bare = -1, None, False, False
    for word, token in zip(word_ids, tokens):
        if word is None:
            out.append(None)
            continue
        core = token.replace("\u2581", "")
        cjk = bool(core) and all(is_cjk(c) for c in core)
        starts = word != prev_word or cjk or prev_cjk
        if starts and not (bare and word == prev_word):
            current += 1
            bare = not core
        else:
            bare = False
        out.append(current)
        prev_word, prev_cjk = word, cjk
    return out


class SpanTokenizer:
    """Tokenizes texts and word lists without truncation; splitting long inputs is the caller's job."""

    def __init__(
        self,
        backend: Tokenizer,
        tok_config: dict[str, Any],
        model_max_length: int | None,
        cjk_words: bool = False,
    ) -> None:
        self.backend = backend
        self.config = tok_config
        self.cjk_words = cjk_words
        backend.no_truncation()
        backend.no_padding()
        # Markers are special tokens; adding them is a no-op when the checkpoint already has them.
        backend.add_special_tokens(
            [AddedToken(START_MARKER, special=True), AddedToken(END_MARKER, special=True)]
        )
        self.start_id = backend.token_to_id(START_MARKER)
        self.end_id = backend.token_to_id(END_MARKER)
        pad = tok_config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_id = backend.token_to_id(pad) if pad else None
        if self.pad_id is None:
            self.pad_id = 0
        tok_max = int(tok_config.get("model_max_length") or _HUGE)
        # SpanMarker: min(tokenizer.model_max_length, config.model_max_length or 512)
        self.model_max_length = min(tok_max, model_max_length or 512)
        self.num_special = backend.num_special_tokens_to_add(is_pair=False)

    @classmethod
    def from_folder(
        cls, folder: Path, model_max_length: int | None, encoder_type: str = "", cjk_words: bool = False
    ) -> SpanTokenizer:
        """Load from a checkpoint folder; `encoder_type` names the tokenizer class if the config does not."""
        tok_config = _read_json(folder / "tokenizer_config.json")
        if not tok_config.get("tokenizer_class") and encoder_type in _CLASS_BY_ENCODER:
            tok_config["tokenizer_class"] = _CLASS_BY_ENCODER[encoder_type]
        backend = _load_backend(folder)
        _apply_transformers_v4_adjustments(backend, tok_config)
        return cls(backend, tok_config, model_max_length, cjk_words)

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def save(self, folder: Path) -> None:
        """Write tokenizer.json and tokenizer_config.json (transformers and span_marker load them)."""
        self.backend.save(str(folder / "tokenizer.json"))
        config = dict(self.config)
        config["model_max_length"] = self.model_max_length
        (folder / "tokenizer_config.json").write_text(
            json.dumps(config, indent=2, ensure_ascii=False), "utf-8"
        )

    def encode(self, texts: list[str]) -> list[Encoded]:
        return [
            _to_encoded(e, cjk=self.cjk_words)
            for e in self.backend.encode_batch(texts, add_special_tokens=True)
        ]

    def encode_words(self, word_lists: list[list[str]]) -> list[Encoded]:
        encs = self.backend.encode_batch(word_lists, is_pretokenized=True, add_special_tokens=True)
        return [_to_encoded(e, len(words)) for e, words in zip(encs, word_lists)]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text, special tokens included."""
        return [len(e.ids) for e in self.backend.encode_batch_fast(texts, add_special_tokens=True)]


def _to_encoded(enc: Any, num_words: int | None = None, cjk: bool = False) -> Encoded:
    word_ids = cjk_token_words(enc.word_ids, enc.tokens) if cjk else enc.word_ids
    offsets = enc.offsets
    if num_words is None:
        present = [w for w in word_ids if w is not None]
        num_words = max(present) + 1 if present else 0
    first: list[int | None] = [None] * num_words
    last: list[int] = [0] * num_words
    for t, w in enumerate(word_ids):
        if w is None or w >= num_words:
            continue
        if first[w] is None:
            first[w] = t
        last[w] = t + 1
    word_tokens: list[tuple[int, int] | None] = []
    word_chars: list[tuple[int, int] | None] = []
    for w in range(num_words):
        f = first[w]
        if f is None:
            word_tokens.append(None)
            word_chars.append(None)
        else:
            word_tokens.append((f, last[w]))
            word_chars.append((offsets[f][0], offsets[last[w] - 1][1]))
    return Encoded(ids=list(enc.ids), offsets=list(offsets), word_tokens=word_tokens, word_chars=word_chars)


def candidate_spans(num_words: int, entity_max_length: int) -> np.ndarray:
    """All (start, end) word spans of at most `entity_max_length` words, in SpanMarker's order.

    The order (by start, then by end) matters: decoding breaks score ties by it.
    """
    if num_words <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    starts = np.repeat(np.arange(num_words), entity_max_length)
    ends = starts + np.tile(np.arange(1, entity_max_length + 1), num_words)
    keep = ends <= num_words
    return np.stack((starts[keep], ends[keep]), axis=1)


def marker_positions(enc: Encoded, spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token indices of each span's first and last subword (0 for a word without tokens, as SpanMarker)."""
    first = np.array([t[0] if t else 0 for t in enc.word_tokens], dtype=np.int64)
    last = np.array([t[1] - 1 if t else 0 for t in enc.word_tokens], dtype=np.int64)
    if len(spans) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return first[spans[:, 0]], last[spans[:, 1] - 1]
