"""The `spanlink` command line.

Every command prints results on stdout (JSON lines) and progress and errors on stderr; a failure is
one `error: ...` line and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="spanlink: multilingual entity extraction, linking and vector search.",
)

# Lines read and written per model call when streaming a file: bounds memory, keeps batches full.
_CHUNK = 256


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _iter_texts(stream, name: str, is_jsonl: bool) -> Iterator[str]:  # noqa: ANN001 - a binary stream
    for number, raw in enumerate(stream, 1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise fail(f"{name}:{number}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        if number == 1:
            line = line.removeprefix("\ufeff")
        if not is_jsonl:
            yield line
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(f"{name}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise fail(f'{name}:{number}: each JSON line needs a string "text" field')
        yield record["text"]


def read_texts(source: str) -> tuple[Iterator[str], int | None]:
    """Texts from a file ('-' = stdin): one per line, or the "text" field of each JSON line (.jsonl).

    A file is checked whole before anything is processed, so a bad line late in it fails the command
    before any output is written; stdin is checked as it streams.
    """
    if source == "-":
        return _iter_texts(sys.stdin.buffer, "<stdin>", False), None
    path = Path(source)
    is_jsonl = path.suffix in (".jsonl", ".ndjson")
    try:
        with path.open("rb") as stream:
            total = sum(1 for _ in _iter_texts(stream, source, is_jsonl))
        return _iter_texts(path.open("rb"), source, is_jsonl), total
    except OSError as exc:
        raise fail(f"cannot read {source}: {exc.strerror or exc}") from None


def _chunks(items: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_model(model: str | None, device: str | None, dtype: str | None, allow_pickle: bool):  # noqa: ANN201
    """`ner.load` with CLI-style errors."""
    import ner

    try:
        return ner.load(model, device=device, dtype=dtype, allow_pickle=allow_pickle)
    except (ner.NerError, ValueError) as exc:
        raise fail(str(exc)) from None


@app.callback()
def _root() -> None:
    """spanlink: multilingual entity extraction, linking and vector search."""


@app.command()
def extract(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to analyse (or use --input).")] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="SpanMarker checkpoint folder or hub id.")
    ] = None,
    input_file: Annotated[
        str | None,
        typer.Option("--input", "-i", help="File with one text per line ('-' = stdin; .jsonl: \"text\")."),
    ] = None,
    embeddings: Annotated[bool, typer.Option(help="Add each entity's span embedding.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Most windows per forward pass.")] = 64,
    min_score: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Drop entities scoring below this.")
    ] = 0.0,
    exact_offsets: Annotated[
        bool, typer.Option(help="Keep span_marker's offsets verbatim (XLM-R ones may start with a space).")
    ] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32 (exact), bfloat16, float16 or int8.")] = None,
    allow_pickle: Annotated[
        bool, typer.Option(help="Accept pickle-only weights (runs code from the file).")
    ] = False,
) -> None:
    """Extract entities; writes one JSON line {"text", "entities"} per input text."""
    if texts and input_file:
        raise fail("give texts as arguments or --input, not both")
    if not texts and input_file is None:
        raise fail("nothing to do: give TEXT arguments or --input FILE ('-' for stdin)")
    if input_file is not None:
        stream, total = read_texts(input_file)
    else:
        stream, total = iter(texts or []), len(texts or [])
    span_model = load_model(model, device, dtype, allow_pickle)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="text", desc="extract", file=sys.stderr, disable=input_file is None)
    out = sys.stdout
    for chunk in _chunks(stream, _CHUNK):
        results = span_model.extract(
            chunk,
            batch_size=batch_size,
            embeddings=embeddings,
            min_score=min_score,
            strip_spaces=not exact_offsets,
        )
        for text, entities in zip(chunk, results):
            out.write(
                json.dumps({"text": text, "entities": [e.to_dict() for e in entities]}, ensure_ascii=False)
            )
            out.write("\n")
        out.flush()
        bar.update(len(chunk))
    bar.close()


# Commands defined in sibling modules register themselves on `app` when imported.
from api import cli_linking, cli_serve, cli_train  # noqa: E402, F401


def main() -> None:
    app()
