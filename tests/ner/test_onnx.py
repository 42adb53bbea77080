"""The ONNX Runtime backend gives the torch backend's output (so span_marker's) on the exactness checkpoints.

The checkpoints are `tests/ner/test_exactness.py`'s tiny random ones (both tokenizer families,
several label schemes, entity_max_length 2-8), exported here with `ner.onnx_export`. Float32 ONNX
must find the same entities with the same offsets, scores and embeddings within 1e-4. The tests
skip when onnxruntime is missing, except in CI (`CI=true`), where they must run.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

import ner  # noqa: E402
from ner.onnx_export import MANIFEST, export_onnx  # noqa: E402
from ner.random_checkpoint import build_checkpoint  # noqa: E402
from tests.ner.sentences import EXTRA_TEXTS, SENTENCES, WORD_LISTS  # noqa: E402
from tests.ner.test_exactness import SPECS  # noqa: E402

TEXTS = [t for t in SENTENCES if t]


@pytest.fixture(scope="session")
def pairs(tmp_path_factory) -> dict[str, tuple[ner.SpanModel, ner.SpanModel]]:
    """(torch model, ONNX model) per exactness checkpoint."""
    root = tmp_path_factory.mktemp("onnx")
    texts = SENTENCES + EXTRA_TEXTS + [" ".join(w) for w in WORD_LISTS]
    out = {}
    for name, spec in SPECS.items():
        torch_model = ner.load(build_checkpoint(root / name, texts, spec))
        folder = export_onnx(torch_model, root / f"{name}-onnx")
        out[name] = (torch_model, ner.load(folder))
    return out


def _assert_same(ours: list[ner.Entity], theirs: list[ner.Entity], what: str) -> None:
    assert [(e.start, e.end, e.label, e.word_start, e.word_end) for e in ours] == [
        (e.start, e.end, e.label, e.word_start, e.word_end) for e in theirs
    ], what
    for a, b in zip(ours, theirs):
        assert abs(a.score - b.score) < 1e-4, f"{what}: score {a.score} vs {b.score}"
        if a.embedding is not None or b.embedding is not None:
            assert np.abs(a.embedding - b.embedding).max() < 1e-4, f"{what}: embeddings differ"


@pytest.mark.parametrize("name", list(SPECS))
def test_texts_match_torch(name, pairs):
    torch_model, onnx_model = pairs[name]
    assert onnx_model.backend == "onnx" and onnx_model.dtype == "float32"
    expected = torch_model.extract(TEXTS, embeddings=True)
    ours = onnx_model.extract(TEXTS, embeddings=True)
    assert sum(len(e) for e in ours) > 0, "a checkpoint that predicts nothing proves nothing"
    for text, a, b in zip(TEXTS, ours, expected):
        _assert_same(a, b, f"{name}: {text!r}")


@pytest.mark.parametrize("name", list(SPECS))
def test_word_lists_match_torch(name, pairs):
    torch_model, onnx_model = pairs[name]
    for words, a, b in zip(WORD_LISTS, onnx_model.extract(WORD_LISTS), torch_model.extract(WORD_LISTS)):
        _assert_same(a, b, f"{name}: {words!r}")


def test_shapes_are_dynamic(pairs):
    """Many small batches and marker chunks: other batch, text and marker lengths than the export's."""
    torch_model, onnx_model = pairs["uni-iob2-5"]
    onnx_model.token_budget, onnx_model.marker_budget = 256, 64
    try:
        for text, expected in zip(SENTENCES, torch_model.extract(SENTENCES, embeddings=True)):
            _assert_same(onnx_model.extract(text, embeddings=True), expected, repr(text))
    finally:
        onnx_model.token_budget, onnx_model.marker_budget = 8192, 8192


def test_embed_spans_and_long_texts_match_torch(pairs):
    torch_model, onnx_model = pairs["wp-iob2-8"]
    text = " ".join(TEXTS)
    spans = [(0, 5), (3, 17), (len(text) - 9, len(text))]
    assert np.abs(onnx_model.embed_spans(text, spans) - torch_model.embed_spans(text, spans)).max() < 1e-4
    long_text = " ".join([text] * 6)  # longer than the model's limit: several windows
    _assert_same(onnx_model.extract(long_text), torch_model.extract(long_text), "long text")


def test_boundary_head_prunes_the_same_candidates(tiny_checkpoint, tmp_path):
    from ner.building import new_span_model

    torch_model = new_span_model(tiny_checkpoint.parent / "encoder", ["LOC", "PER"], seed=5)
    torch_model.config.prune_threshold = 0.5  # a random head at 0.5 keeps some candidates, not all
    onnx_model = ner.load(export_onnx(torch_model, tmp_path / "onnx"))
    assert onnx_model.manifest["graphs"]["boundary"] == "boundary.onnx"
    expected = torch_model.score_candidates(TEXTS).scored
    ours = onnx_model.score_candidates(TEXTS).scored
    kept = sum(len(seg.spans) for seg, _ in ours)
    assert 0 < kept < sum(len(seg.enc.word_chars) for seg, _ in ours) * 8
    for (seg, probs), (ref_seg, ref_probs) in zip(ours, expected):
        assert np.array_equal(seg.spans, ref_seg.spans)
        assert np.abs(probs - ref_probs).max() < 1e-4 if len(probs) else len(ref_probs) == 0


def test_manifest_records_opset_precision_and_versions(pairs):
    _, onnx_model = pairs["wp-bioes-2"]
    manifest = json.loads((onnx_model.folder / MANIFEST).read_text())
    assert manifest["opset"] >= 17 and manifest["precision"] == "float32"
    assert manifest["versions"]["torch"] and manifest["versions"]["onnxruntime"]
    assert manifest["graphs"]["boundary"] is None
    assert (onnx_model.folder / "tokenizer.json").is_file() and (onnx_model.folder / "config.json").is_file()


def test_int8_export_is_quantized_and_close(pairs, tmp_path):
    import onnx

    torch_model, _ = pairs["wp-plain-4"]
    model = ner.load(export_onnx(torch_model, tmp_path / "int8", quantize="int8"))
    assert model.dtype == "int8"
    ops = {node.op_type for node in onnx.load(str(tmp_path / "int8" / "text.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops
    ours = model.score_candidates(TEXTS).scored
    ref = torch_model.score_candidates(TEXTS).scored
    assert max(np.abs(a[1] - b[1]).max() for a, b in zip(ours, ref) if len(a[1])) < 0.1


def test_load_with_backend_exports_once_into_the_cache(pairs, monkeypatch, tmp_path):
    monkeypatch.setenv("SPANLINK_CACHE_DIR", str(tmp_path))
    torch_model, _ = pairs["wp-plain-4"]
    checkpoint = tmp_path / "ckpt"
    torch_model.save_pretrained(checkpoint)
    first = ner.load(checkpoint, backend="onnx")
    assert first.folder.parent == tmp_path / "onnx"
    mtime = (first.folder / "text.onnx").stat().st_mtime_ns
    again = ner.load(checkpoint, backend="onnx")
    assert again.folder == first.folder and (again.folder / "text.onnx").stat().st_mtime_ns == mtime
    _assert_same(again.extract(TEXTS[0]), torch_model.extract(TEXTS[0]), "cached export")
    with pytest.raises(ValueError, match="onnx backend runs"):
        ner.load(checkpoint, backend="onnx", dtype="bfloat16")
    with pytest.raises(ner.CheckpointError, match="ONNX export"):
        ner.load(first.folder, backend="torch")


def test_cli_export(pairs, tmp_path):
    from typer.testing import CliRunner

    from api.cli import app

    torch_model, _ = pairs["wp-plain-4"]
    checkpoint = torch_model.save_pretrained(tmp_path / "ckpt")
    runner = CliRunner()
    # --no-surface: without linking's surface encoder (tests/api/test_serve_without_torch.py bundles it)
    args = ["export", "--model", str(checkpoint), "--out", str(tmp_path / "out"), "--no-surface"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["precision"] == "float32" and summary["surface"] is None
    assert not (tmp_path / "out" / "surface").exists()
    _assert_same(ner.load(tmp_path / "out").extract(TEXTS[1]), torch_model.extract(TEXTS[1]), "cli export")
    bad = runner.invoke(
        app, ["export", "--model", str(checkpoint), "--out", str(tmp_path / "x"), "--format", "tf"]
    )
    assert bad.exit_code != 0 and "unknown export format" in bad.output


def test_service_runs_on_the_onnx_backend(pairs, tmp_path, monkeypatch):
    """`SPANLINK_BACKEND=onnx spanlink serve`: the settings field reaches `ner.load`."""
    from api.service import Service
    from api.settings import ServiceSettings

    torch_model, _ = pairs["wp-iob2-8"]
    checkpoint = torch_model.save_pretrained(tmp_path / "ckpt")
    monkeypatch.setenv("SPANLINK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SPANLINK_BACKEND", "onnx")
    settings = ServiceSettings(model=str(checkpoint), vectors="span", data_dir=tmp_path / "store")
    service = Service.open(settings)
    try:
        assert service.model.backend == "onnx"
        expected = torch_model.extract(TEXTS[:4], strip_spaces=True)
        for ours, theirs in zip(service.extract(TEXTS[:4]), expected):
            _assert_same(ours, theirs, "service")
    finally:
        service.close()


def test_cli_backend_option_runs_extract_on_onnx(pairs, tmp_path, monkeypatch):
    """`spanlink extract --backend onnx` (as evaluate/ingest/serve/similar) reaches `ner.load`."""
    from typer.testing import CliRunner

    from api.cli import app

    monkeypatch.setenv("SPANLINK_CACHE_DIR", str(tmp_path / "cache"))
    torch_model, _ = pairs["wp-iob2-8"]
    checkpoint = torch_model.save_pretrained(tmp_path / "ckpt")
    runner = CliRunner()
    result = runner.invoke(app, ["extract", "--backend", "onnx", "--model", str(checkpoint), *TEXTS[:3]])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cache" / "onnx").is_dir()  # the checkpoint was exported for the onnx backend
    found = [json.loads(line)["entities"] for line in result.stdout.strip().splitlines()]
    expected = torch_model.extract(TEXTS[:3], strip_spaces=True)
    assert [[(e["start"], e["end"], e["label"]) for e in f] for f in found] == [
        [(e.start, e.end, e.label) for e in x] for x in expected
    ]
    bad = runner.invoke(app, ["extract", "--backend", "tensorrt", "--model", str(checkpoint), "x"])
    assert bad.exit_code != 0 and "--backend must be torch or onnx" in bad.output
