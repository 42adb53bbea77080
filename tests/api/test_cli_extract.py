"""`spanlink extract`: JSON lines out, one-line errors and non-zero exits for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_extract_texts_as_arguments(tiny_checkpoint):
    result = runner.invoke(app, ["extract", "--model", str(tiny_checkpoint), "Angela Merkel in Paris.", "x"])
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert [r["text"] for r in rows] == ["Angela Merkel in Paris.", "x"]
    for row in rows:
        for e in row["entities"]:
            assert row["text"][e["start"] : e["end"]] == e["text"]
            assert set(e) == {"start", "end", "text", "label", "score"}


def test_extract_file_with_embeddings(tiny_checkpoint, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("Angela Merkel met Macron.\n\nВладимир Путин в Москве.\n", encoding="utf-8")
    # --exact-offsets: the random checkpoint's spans start or end on punctuation, which the default
    # clean mode no longer offers (ner.words.sentence_safe); the embeddings are what is tested here.
    result = runner.invoke(
        app,
        ["extract", "-m", str(tiny_checkpoint), "--input", str(source), "--embeddings", "--exact-offsets"],
    )
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert [r["text"] for r in rows] == ["Angela Merkel met Macron.", "", "Владимир Путин в Москве."]
    assert rows[1]["entities"] == []
    vectors = [e["embedding"] for r in rows for e in r["entities"]]
    assert vectors and all(len(v) == 32 for v in vectors)


def test_extract_jsonl_input(tiny_checkpoint, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Paris and Berlin"}\n{"text": "Rome", "id": 3}\n', encoding="utf-8")
    result = runner.invoke(app, ["extract", "-m", str(tiny_checkpoint), "-i", str(source)])
    assert result.exit_code == 0, result.output
    assert [r["text"] for r in _lines(result.stdout)] == ["Paris and Berlin", "Rome"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"fine\n\xff\xfe bad\n", "in.txt:2: not valid UTF-8"),  # invalid UTF-8
    ],
)
def test_bad_file_content(tiny_checkpoint, tmp_path, content, message):
    (tmp_path / "in.txt").write_bytes(content)
    result = runner.invoke(app, ["extract", "-m", str(tiny_checkpoint), "-i", str(tmp_path / "in.txt")])
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == "", "nothing is written when the input is bad"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "ok"}\n{"text": \n', "in.jsonl:2: invalid JSON"),
        ('{"body": "no text"}\n', 'needs a string "text" field'),
    ],
)
def test_bad_jsonl(tiny_checkpoint, tmp_path, content, message):
    (tmp_path / "in.jsonl").write_text(content)
    result = runner.invoke(app, ["extract", "-m", str(tiny_checkpoint), "-i", str(tmp_path / "in.jsonl")])
    assert result.exit_code == 1 and message in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["extract", "-m", "/no/such/model", "x"], "no model folder"),
        (["extract", "-m", "{ckpt}", "-i", "/no/such/file.txt"], "cannot read /no/such/file.txt"),
        (["extract", "-m", "{ckpt}"], "nothing to do"),
        (["extract", "-m", "{ckpt}", "--dtype", "float8", "x"], "dtype 'float8'"),
    ],
)
def test_usage_errors_are_one_line(tiny_checkpoint, args, message):
    args = [a.replace("{ckpt}", str(tiny_checkpoint)) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_console_script_runs(tiny_checkpoint):
    proc = subprocess.run(
        [sys.executable, "-m", "api", "extract", "-m", str(tiny_checkpoint), "-i", "-"],
        input="Paris\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert _lines(proc.stdout)[0]["text"] == "Paris"


def test_no_default_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SPANLINK_DEFAULT_MODEL", str(tmp_path / "empty"))
    result = runner.invoke(app, ["extract", "x"])
    assert result.exit_code == 1 and "no default model at" in result.stderr
