"""`spanlink ingest` and `spanlink eval-linking` (api/cli_linking.py) with a tiny random checkpoint."""

import json

from typer.testing import CliRunner

from api.cli import app
from tests.linking.bsnlp_fixture import write_corpus

runner = CliRunner()


def test_eval_linking_with_gold_mentions(tiny_checkpoint, tmp_path):
    data = write_corpus(tmp_path / "bsnlp")
    result = runner.invoke(
        app,
        [
            "eval-linking",
            "--data",
            str(data),
            "--topics",
            "brexit,ec",
            "--gold-mentions",
            "--model",
            str(tiny_checkpoint),
            "--vectors",
            "span",
            "--settings",
            '{"vector_weight": 0.0, "link_threshold": 0.9}',
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mentions"]["scored"] == 16 and report["overall"]["b3"]["f1"] == 1.0
    assert set(report["per_language"]) == {"cs", "pl", "ru"}
    assert report["ingest"]["documents_per_second"] > 0


def test_eval_linking_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SPANLINK_DEFAULT_MODEL", str(tmp_path / "missing"))
    data = write_corpus(tmp_path / "bsnlp")
    result = runner.invoke(app, ["eval-linking", "--data", str(data), "--topics", "ec"])
    assert result.exit_code == 1 and "no default model" in result.stderr  # predicted mentions need one
    result = runner.invoke(app, ["eval-linking", "--data", str(tmp_path), "--topics", "x", "--gold-mentions"])
    assert result.exit_code == 1 and "no BSNLP topic folder" in result.stderr


def test_ingest_text_and_jsonl_then_reingest_replaces(tiny_checkpoint, tmp_path):
    (tmp_path / "a.txt").write_text("Nigel Farage visited London.", encoding="utf-8")
    rows = [
        {"id": "j1", "text": "Farage spoke in Paris.", "metadata": {"src": "x"}},
        {"id": "j2", "text": "Theresa May", "mentions": [{"start": 0, "end": 11, "label": "PER"}]},
    ]
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    args = [
        "ingest",
        str(tmp_path / "a.txt"),
        str(tmp_path / "b.jsonl"),
        "--data-dir",
        str(tmp_path / "store"),
        "--model",
        str(tiny_checkpoint),
        "--vectors",
        "span",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert [line["id"] for line in lines] == [str(tmp_path / "a.txt"), "j1", "j2"]
    assert lines[2]["mentions"] == 1 and not any(line["replaced"] for line in lines)
    assert (tmp_path / "store" / "spanlink.db").exists()
    again = runner.invoke(app, [*args, "--consolidate"])
    *documents, summary = [json.loads(line) for line in again.stdout.splitlines()]
    assert len(documents) == 3 and all(line["replaced"] for line in documents)
    merged = {int(k): v for k, v in summary["consolidated"].items()}
    for gone, kept in merged.items():  # whatever the random model's vectors merged is really gone
        assert runner.invoke(app, ["entity", str(gone), "--data-dir", str(tmp_path / "store")]).exit_code != 0
        assert runner.invoke(app, ["entity", str(kept), "--data-dir", str(tmp_path / "store")]).exit_code == 0


def test_ingest_bad_jsonl(tiny_checkpoint, tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}\n', encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(tmp_path / "bad.jsonl"), "--model", str(tiny_checkpoint)])
    assert result.exit_code == 1 and "bad.jsonl:1: text: Field required" in result.stderr


def test_ingest_without_a_default_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SPANLINK_DEFAULT_MODEL", str(tmp_path / "missing"))
    (tmp_path / "a.txt").write_text("Nigel Farage", encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(tmp_path / "a.txt"), "--data-dir", str(tmp_path / "s")])
    assert result.exit_code == 1 and "no default model" in result.stderr


def test_eval_linking_with_predicted_mentions_reports_detection(tiny_checkpoint, tmp_path):
    data = write_corpus(tmp_path / "bsnlp")
    args = [
        "eval-linking",
        "--data",
        str(data),
        "--topics",
        "ec",
        "--model",
        str(tiny_checkpoint),
        "--vectors",
        "span",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["mention_detection"]) == {"precision", "recall", "f1"}
    assert report["mentions"]["gold"] == 6 and not report["mentions"]["gold_mentions_given"]
    assert report["mentions"]["scored"] <= report["mentions"]["gold"]
    span_only, typed = report["mention_detection_span_only"], report["mention_detection"]
    assert span_only["recall"] == round(report["mentions"]["scored"] / 6, 4) >= typed["recall"]
