"""The CLI's store and its input rules: one default store for every command, read-only commands never
create one, and `spanlink ingest` accepts exactly what `POST /v1/documents` accepts, checking all of
its input before writing anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()
SPAN = ["--vectors", "span"]


def invoke(args: list[str]):  # noqa: ANN201 - click's Result
    return runner.invoke(app, args, env={"COLUMNS": "400"})


def one_error_line(result) -> str:  # noqa: ANN001
    """The failed command's only stderr line (after asserting that it failed cleanly)."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def stored(data_dir: Path) -> dict[str, str]:
    """External id -> text of every document in a store (read without changing it)."""
    from index import Store

    store = Store.open(data_dir / "spanlink.db")
    try:
        with store._read() as session:  # the store has no "list documents"; read the table
            from sqlalchemy import text

            rows = session.execute(text("SELECT external_id, text FROM documents")).all()
        return dict(rows)
    finally:
        store.close(save=False)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh per-user data folder (XDG_DATA_HOME) and working directory; SPANLINK_DATA_DIR unset."""
    monkeypatch.delenv("SPANLINK_DATA_DIR", raising=False)
    monkeypatch.delenv("SPANLINK_DB_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    from api.settings import default_data_dir

    if not str(default_data_dir()).startswith(str(tmp_path)):
        pytest.skip("platformdirs ignores XDG_DATA_HOME on this platform")
    return work


def _jsonl(path: Path, *records: object) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


MERKEL = {
    "id": "m1",
    "text": "Angela Merkel met Emmanuel Macron in Paris.",
    "mentions": [{"start": 0, "end": 13, "label": "PER"}, {"start": 18, "end": 33, "label": "PER"}],
}


# -- one store -----------------------------------------------------------------------------------


def test_ingest_then_similar_and_entity_use_the_same_default_store(home, tiny_checkpoint):
    """The reported defect: ingest wrote ./data, similar read the per-user folder and printed nothing."""
    from api.settings import default_data_dir

    source = _jsonl(home / "news.jsonl", MERKEL)
    ingest = invoke(["ingest", str(source), "-m", str(tiny_checkpoint), *SPAN])
    assert ingest.exit_code == 0, ingest.stderr
    assert (default_data_dir() / "spanlink.db").is_file()
    assert not (home / "data").exists(), "ingest wrote a store in the working directory"

    similar = invoke(["similar", "Angela Merkel", "-m", str(tiny_checkpoint), *SPAN])
    assert similar.exit_code == 0, similar.stderr
    names = {json.loads(line)["entity"]["name"] for line in similar.stdout.splitlines()}
    assert names == {"Angela Merkel", "Emmanuel Macron"}
    entity = invoke(["entity", "1"])
    assert entity.exit_code == 0, entity.stderr
    assert json.loads(entity.stdout)["mentions"][0]["document_id"] == "m1"


def test_every_store_command_shows_the_same_default_in_help():
    """The help is built when the CLI is imported, so this compares with the default of this process's
    environment (no XDG_DATA_HOME override here)."""
    import typer

    from api.settings import default_data_dir

    commands = typer.main.get_command(app).commands
    with_store = [name for name, c in commands.items() if any("--data-dir" in p.opts for p in c.params)]
    assert {"ingest", "similar", "entity", "serve"} <= set(with_store)
    for name in with_store:
        result = invoke([name, "--help"])
        assert result.exit_code == 0
        assert str(default_data_dir()) in result.stdout, f"{name} --help does not show the default store"


@pytest.mark.parametrize("command", [["similar", "Angela Merkel"], ["entity", "1"]])
@pytest.mark.parametrize("where", ["default", "data-dir", "db"])
def test_read_only_commands_never_create_a_store(home, tiny_checkpoint, command, where):
    from api.settings import default_data_dir

    missing = home / "nowhere"
    args = {
        "default": [],
        "data-dir": ["--data-dir", str(missing)],
        "db": ["--db", f"sqlite:///{missing}.db", "--data-dir", str(home / "vectors")],
    }[where]
    model = ["-m", str(tiny_checkpoint), *SPAN] if command[0] == "similar" else []
    line = one_error_line(invoke([*command, *args, *model]))
    assert "no store" in line
    assert not missing.exists() and not Path(f"{missing}.db").exists() and not (home / "vectors").exists()
    assert not default_data_dir().exists()


# -- ingest: the API's rules, all input checked before the first write ---------------------------


@pytest.mark.parametrize("content", ["", "   \n\t\n", "\ufeff"])
def test_ingest_refuses_empty_and_whitespace_files(home, tiny_checkpoint, content):
    (home / "good.txt").write_text("Angela Merkel in Paris.", encoding="utf-8")
    (home / "blank.txt").write_text(content, encoding="utf-8")
    result = invoke(["ingest", "good.txt", "blank.txt", "-m", str(tiny_checkpoint), *SPAN, "--data-dir", "s"])
    assert one_error_line(result).startswith("error: blank.txt: ")
    assert not (home / "s").exists(), "the good file was stored before the bad one was read"


# Records that `POST /v1/documents` refuses (as the second line of the file, after a good one).
BAD_RECORDS = [
    {"text": ""},
    {"text": " \n\t "},
    {"id": "", "text": "x"},
    {"id": 7, "text": "x"},
    {"text": 7},
    {"text": "x", "unknown_field": 1},
    {"text": "Angela", "mentions": [{"start": 0, "end": 9, "label": "PER"}]},
    {
        "text": "Angela Merkel",
        "mentions": [{"start": 0, "end": 6, "label": "PER"}, {"start": 3, "end": 9, "label": "PER"}],
    },
    {"text": "Angela", "mentions": [{"start": 0, "end": 6, "label": ""}]},
    {"text": "Angela", "mentions": [{"start": "0", "end": 6, "label": "PER"}]},
    {"text": "x", "metadata": ["not", "an", "object"]},
    {"text": "x", "language": ""},
]


@pytest.mark.parametrize("record", BAD_RECORDS, ids=lambda r: json.dumps(r)[:40])
def test_ingest_refuses_what_the_api_refuses(home, tiny_checkpoint, record):
    """Each refusal names file:line and carries the API model's own message; nothing is written."""
    from pydantic import ValidationError

    from api.schemas import DocumentCreate

    source = home / "in.jsonl"
    with pytest.raises(ValidationError) as refused:  # an absent id is "file:line" in the CLI
        DocumentCreate.model_validate({"id": f"{source}:2", **record} if "id" not in record else record)
    api_message = str(refused.value.errors()[0]["msg"]).removeprefix("Value error, ")
    _jsonl(source, MERKEL, record)
    line = one_error_line(
        invoke(["ingest", str(source), "-m", str(tiny_checkpoint), *SPAN, "--data-dir", "s"])
    )
    assert line.startswith(f"error: {source}:2: ") and api_message in line
    assert not (home / "s").exists()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"text": "Merkel \\ud800"}\n', "in.jsonl:2: not valid text"),
        (b'{"text": "ok" \n', "in.jsonl:2: invalid JSON"),
        (b"[1, 2]\n", "in.jsonl:2: expected a JSON object"),
        (b'{"text": "Merkel \xed\xa0\x80"}\n', "in.jsonl:2: not valid UTF-8"),  # an encoded surrogate
        (b'{"text": "\xff"}\n', "in.jsonl:2: not valid UTF-8"),
    ],
)
def test_ingest_refuses_text_that_is_not_unicode(home, tiny_checkpoint, raw, message):
    (home / "in.jsonl").write_bytes(json.dumps(MERKEL).encode() + b"\n" + raw)
    line = one_error_line(
        invoke(["ingest", "in.jsonl", "-m", str(tiny_checkpoint), *SPAN, "--data-dir", "s"])
    )
    assert message in line
    assert not (home / "s").exists()


def test_ingest_uses_the_api_request_model(home, tiny_checkpoint, monkeypatch):
    """One rule for API and CLI: a rule added to ``api.schemas.DocumentCreate`` applies to ingest too."""
    from pydantic import model_validator

    import api.schemas

    class Stricter(api.schemas.DocumentCreate):
        @model_validator(mode="after")
        def _no_secrets(self):  # noqa: ANN202
            if "SECRET" in self.text:
                raise ValueError("a rule only the API model knows")
            return self

    monkeypatch.setattr(api.schemas, "DocumentCreate", Stricter)
    source = _jsonl(home / "in.jsonl", MERKEL, {"text": "a SECRET text"})
    line = one_error_line(
        invoke(["ingest", str(source), "-m", str(tiny_checkpoint), *SPAN, "--data-dir", "s"])
    )
    assert line.endswith("in.jsonl:2: a rule only the API model knows")


def test_ingest_applies_the_api_limits(home, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("SPANLINK_MAX_TEXT_CHARS", "20")
    source = _jsonl(home / "in.jsonl", {"text": "short"}, {"text": "a text of more than twenty characters"})
    line = one_error_line(
        invoke(["ingest", str(source), "-m", str(tiny_checkpoint), *SPAN, "--data-dir", "s"])
    )
    assert "in.jsonl:2: " in line and "at most 20" in line
    assert not (home / "s").exists()


def test_ingest_refuses_one_id_twice(home, tiny_checkpoint):
    """The API refuses a batch naming an id twice; the CLI silently replaced the first document."""
    first = _jsonl(home / "a.jsonl", MERKEL)
    second = _jsonl(home / "b.jsonl", {"text": "other"}, {"id": "m1", "text": "Olaf Scholz"})
    result = invoke(["ingest", str(first), str(second), "-m", str(tiny_checkpoint), *SPAN, "--data-dir", "s"])
    line = one_error_line(result)
    assert f"{second}:2: " in line and "'m1'" in line and f"{first}:1" in line
    assert not (home / "s").exists()


def test_a_refused_input_leaves_an_existing_store_unchanged(home, tiny_checkpoint):
    args = ["-m", str(tiny_checkpoint), *SPAN, "--data-dir", "s"]
    assert invoke(["ingest", str(_jsonl(home / "a.jsonl", MERKEL)), *args]).exit_code == 0
    before = stored(home / "s")
    replacing = {**MERKEL, "text": "Giorgia Meloni visited Rome.", "mentions": None}
    bad = _jsonl(home / "b.jsonl", {"id": "new", "text": "Olaf Scholz"}, replacing, {"text": "  "})
    one_error_line(invoke(["ingest", str(bad), *args]))
    assert stored(home / "s") == before == {"m1": MERKEL["text"]}


def test_ingest_without_ids_names_documents_by_file_and_line(home, tiny_checkpoint):
    source = _jsonl(home / "in.jsonl", {"text": "Angela Merkel"}, {"id": None, "text": "Olaf Scholz"})
    result = invoke(["ingest", str(source), "-m", str(tiny_checkpoint), *SPAN, "--data-dir", "s"])
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [f"{source}:1", f"{source}:2"]


@pytest.fixture(scope="module")
def spacey_checkpoint(tiny_xlmr_checkpoint, tmp_path_factory) -> Path:
    """The XLM-R-style tiny checkpoint with its 'O' logit pushed down, so it finds entities, and with
    Metaspace offsets that include the space before a word unless stripped."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("spacey") / "model"
    shutil.copytree(tiny_xlmr_checkpoint, folder)
    weights = load_file(folder / "model.safetensors")
    bias = weights["classifier.bias"].clone()
    bias[0] -= 20.0
    weights["classifier.bias"] = bias
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_ingest_treats_found_spans_as_the_service_does(home, spacey_checkpoint):
    """The service extracts with ``strip_spaces=True`` and leaves out spans that cannot name an entity;
    the CLI stored " Merkel" with its space, and a found "." made the whole ingest fail."""
    import ner
    from api.service import nameable

    text = "Angela Merkel met Emmanuel Macron in Paris."
    (home / "doc.txt").write_text(text, encoding="utf-8")
    result = invoke(["ingest", "doc.txt", "-m", str(spacey_checkpoint), *SPAN, "--data-dir", "s"])
    assert result.exit_code == 0, result.stderr
    model = ner.load(spacey_checkpoint)
    found = model.extract(text, strip_spaces=True)
    expected = [(e.start, e.end) for e in found if nameable(e.text)]
    # The exact (span_marker) mode finds the "."; strip_spaces=True no longer offers it as a
    # candidate (ner.words.sentence_safe), and whatever remains unnameable is left out too.
    assert any(not nameable(e.text) for e in model.extract(text)), "the model must find a '.' span"
    assert any(text[start - 1] == " " for start, _ in expected if start), "the model must find later words"

    from index import Store

    store = Store.open(home / "s" / "spanlink.db")
    try:
        mentions = store.get_document(external_id="doc.txt").mentions
    finally:
        store.close(save=False)
    assert [(m.start, m.end) for m in mentions] == expected
    assert all(m.text == m.text.strip() for m in mentions)
