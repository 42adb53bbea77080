"""The ingest pipeline without Ray: PATHS, the model stage's failure isolation, and resumable --bulk runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from api.cli import app
from api.ingest_pipeline import FAILED, READY, SKIPPED, ModelStage
from api.ingest_sources import Parsed, SourceError, document_key, expand
from linking.linker import DocumentIn

runner = CliRunner()


def test_paths_expand_to_files_folders_and_globs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ["a/x.txt", "a/sub/y.jsonl", "a/.hidden/z.txt", "a/.dot.txt", "b.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
    names = [s.name for s in expand(["a", "*.txt", "a/**/*.jsonl", "s3://bucket/prefix/"])]
    assert names == ["a/sub/y.jsonl", "a/x.txt", "b.txt", "a/sub/y.jsonl", "s3://bucket/prefix/"]
    (tmp_path / "empty").mkdir()
    for bad, message in [
        ("missing.txt", "cannot read missing.txt"),
        ("*.csv", "matches no file"),
        ("empty", "without files"),
    ]:
        with pytest.raises(SourceError, match=message):
            expand([bad])


class _Model:
    """Finds one PER at the start of every text; fails on texts holding "BOOM"."""

    def extract(self, texts, strip_spaces=False):  # noqa: ANN001, ANN201, ARG002
        from ner.entities import Entity

        def one(text: str) -> list:
            if "BOOM" in text:
                raise RuntimeError("the model broke")
            return [Entity(start=0, end=5, text=text[:5], label="PER", score=0.9)]

        return one(texts) if isinstance(texts, str) else [one(t) for t in texts]


class _Embedder:
    dim = 4

    def embed(self, text, spans):  # noqa: ANN001, ANN201, ARG002
        return np.ones((len(spans), self.dim), np.float32)


def test_the_model_stage_fails_only_the_document_at_fault():
    docs = [DocumentIn(f"d{i}", text) for i, text in enumerate(["Alice went", "BOOM here", "Carol came"])]
    stored = DocumentIn("d3", "Dave stays")
    items = [
        Parsed(f"f:{i}", d, key=document_key(d.external_id, d.text)) for i, d in enumerate([*docs, stored])
    ]
    items.append(Parsed("f:5", error="invalid JSON"))
    out = ModelStage(_Model(), _Embedder(), frozenset({items[3].key}))(items)
    assert [p.status for p in out] == [READY, FAILED, READY, SKIPPED, FAILED]
    assert "the model broke" in out[1].error and out[4].error == "invalid JSON"
    assert [(m.start, m.end, m.label) for m in out[0].document.mentions] == [(0, 5, "PER")]
    assert out[2].vectors.shape == (1, 4)


def _run(args: list[str]) -> tuple[list[dict], dict]:
    result = runner.invoke(app, ["ingest", *args])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return lines[:-1], lines[-1]["report"]


def test_a_bulk_rerun_skips_what_is_stored_and_replaces_what_changed(tiny_checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rows = [{"id": f"d{i}", "text": f"Angela Merkel met Macron in Paris, part {i}."} for i in range(5)]
    source = folder / "docs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "bad.jsonl").write_text('{"id": "x", "text": ""}\n{"text": 1}\nnot json\n', encoding="utf-8")
    args = [
        str(folder),
        "-m",
        str(tiny_checkpoint),
        "--vectors",
        "span",
        "--data-dir",
        str(tmp_path / "s"),
        "--bulk",
    ]
    stored, report = _run(args)
    assert [line["id"] for line in stored] == [f"d{i}" for i in range(5)]
    assert report["documents"] == 5 and report["skipped"] == 0 and report["failed"] == 3
    assert [f["where"] for f in report["failures"]] == [f"{folder}/bad.jsonl:{n}" for n in (1, 2, 3)]
    assert report["executor"]["kind"] == "in-process"

    rows[2]["text"] = "Olaf Scholz in Berlin."
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    stored, report = _run(args)
    assert [(line["id"], line["replaced"]) for line in stored] == [("d2", True)]
    assert report["skipped"] == 4 and report["documents"] == 1
    assert report["stages"]["write"]["documents_per_second"] > 0


def test_uris_need_ray(tmp_path):
    result = runner.invoke(app, ["ingest", "s3://bucket/docs/", "--data-dir", str(tmp_path / "s")])
    assert result.exit_code == 1 and "add --ray" in result.stderr and not (tmp_path / "s").exists()


def test_ray_without_the_extra_is_one_line(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    (tmp_path / "a.txt").write_text("Angela Merkel", encoding="utf-8")
    monkeypatch.setattr(builtins, "__import__", no_ray)
    result = runner.invoke(
        app, ["ingest", str(tmp_path / "a.txt"), "--data-dir", str(tmp_path / "s"), "--ray", "auto"]
    )
    assert result.exit_code == 1 and "spanlink[ray]" in result.stderr, result.stderr
