"""The `spanlink` command line.

Every command prints results on stdout (JSON lines) and progress and errors on stderr; a failure is
one `error: ...` line and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

DEBUG_VARIABLE = "SPANLINK_DEBUG"
"""Set to 1 to get the traceback of an unexpected error instead of its one-line summary."""


class _OneLineErrors(TyperGroup):
    """The command group: every failure ends as one `error: ...` line on stderr and a non-zero exit.

    Typer prints usage errors in a multi-line box and lets unexpected exceptions out as tracebacks;
    both are turned into one line here, at the single entry point that the console script, `python -m
    api` and typer's test runner all go through. Deliberate failures (:func:`fail`) print their own
    line; an error that reaches the last branch is a bug to handle at its source, so its line says
    "unexpected" (the CLI tests look for that word) and ``SPANLINK_DEBUG=1`` shows its traceback.
    """

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:  # noqa: ANN401
        code = _run_group(lambda: super(_OneLineErrors, self).main(*args, standalone_mode=False, **kwargs))
        if standalone_mode:
            sys.exit(code)
        return code


TORCH_MISSING = (
    "this needs torch, which is not installed here; an environment without torch "
    "(scripts/setup --onnx-serve) runs `spanlink export` folders only: extract, evaluate, ingest, "
    "similar, entity and serve with --model EXPORT_DIR"
)


def _run_group(call: Any) -> int:  # noqa: ANN401 - a zero-argument callable
    """Run the click group without standalone mode and map every outcome to an exit status.

    Click's exceptions are recognised by class name: typer vendors its own copy of click from 0.20
    on, so ``click.UsageError`` is not the class a newer typer raises.
    """
    try:
        result = call()
    except Exception as exc:
        kinds = {cls.__name__ for cls in type(exc).__mro__}
        if "NoArgsIsHelpError" in kinds:  # bare `spanlink`: the help, as typer would show it
            exc.show()
            return exc.exit_code
        if "UsageError" in kinds:
            ctx = getattr(exc, "ctx", None)
            where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            typer.echo(f"error: {_one_line(exc.format_message())}{where}", err=True)
            return exc.exit_code
        if "ClickException" in kinds:
            typer.echo(f"error: {_one_line(exc.format_message())}", err=True)
            return exc.exit_code
        if "Abort" in kinds:
            typer.echo("error: aborted", err=True)
            return 1
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        if isinstance(exc, ModuleNotFoundError) and exc.name == "torch":
            typer.echo(f"error: {TORCH_MISSING}", err=True)
            return 1
        typer.echo(
            f"error: unexpected {type(exc).__name__}: {_one_line(str(exc))} "
            f"(set {DEBUG_VARIABLE}=1 for the traceback)",
            err=True,
        )
        return 1
    return result if isinstance(result, int) else 0


def _one_line(message: str) -> str:
    return " ".join(message.split())


app = typer.Typer(
    cls=_OneLineErrors,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="spanlink: multilingual entity extraction, linking and vector search.",
)

# Lines read and written per model call when streaming a file: bounds memory, keeps batches full.
_CHUNK = 256


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error on stderr and return the Exit to raise (newlines in ``message`` are folded)."""
    typer.echo(f"error: {' '.join(message.splitlines())}", err=True)
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
        check_text(record["text"], f"{name}:{number}")
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


def finite(value: float | None) -> float | None:
    """Option callback: NaN and infinity are not numbers a command can use (`--epochs inf` never ends)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


def check_text(text: str, where: str) -> None:
    """Refuse text that is not Unicode: lone surrogates come from undecodable command-line bytes
    (Python maps them to U+DC80..U+DCFF) or from JSON escapes such as "\\ud800", and crash the
    tokenizer and the database alike."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise fail(
            f"{where}: not valid text (lone surrogate {text[exc.start]!r} at character {exc.start})"
        ) from None


def validation_message(exc: Any) -> str:  # noqa: ANN401 - a pydantic ValidationError
    """A pydantic ValidationError as one line: where (``mentions.0.start``) and what, first error first."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where + ': ' if where else ''}{message}{more}"


def check_out_folder(folder: Path, option: str = "--out") -> None:
    """An output folder must be a folder, or creatable; checked before the work, not when saving."""
    if folder.exists() and not folder.is_dir():
        raise fail(f"{option} {folder} is not a folder")
    existing = next((parent for parent in folder.absolute().parents if parent.exists()), None)
    if not folder.exists() and existing is not None and not existing.is_dir():
        raise fail(f"{option} {folder} cannot be created: {existing} is not a folder")


def save_model(span_model: Any, folder: Path) -> None:  # noqa: ANN401 - a ner.SpanModel
    """``save_pretrained`` with a one-line error (a full disk, a read-only folder)."""
    try:
        span_model.save_pretrained(folder)
    except OSError as exc:
        raise fail(f"cannot write {folder}: {exc.strerror or exc}") from None


def check_device(device: str | None) -> None:
    """Fail with one line, before any model loads, on a device torch does not know or cannot use here.

    torch itself raises a RuntimeError for an unknown type ("tpu") and an AssertionError for "cuda" on
    a CPU-only build, both deep inside model loading.
    """
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise fail(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    available = {
        "cpu": lambda: True,
        "cuda": torch.cuda.is_available,
        "mps": lambda: torch.backends.mps.is_available(),
        "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available(),
    }
    if parsed.type not in available:
        raise fail(f"--device {device!r}: spanlink runs on {', '.join(available)}, not {parsed.type}")
    if not available[parsed.type]():
        raise fail(f"--device {device!r}: no {parsed.type} device is available to torch {torch.__version__}")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise fail(f"--device {device!r}: there are {torch.cuda.device_count()} CUDA devices")


BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="NER backend: torch, or onnx (ONNX Runtime on the CPU; needs spanlink[onnx]). "
        "Default: onnx for a `spanlink export` folder, torch otherwise.",
    ),
]


ModelOption = Annotated[
    str | None, typer.Option("--model", "-m", help="NER model (default: the embedded model).")
]


def check_backend(backend: str | None) -> None:
    """Refuse an unknown --backend before any model loads."""
    if backend not in (None, "torch", "onnx"):
        raise fail(f"--backend must be torch or onnx, got {backend!r}")


def load_model(  # noqa: ANN201
    model: str | None, device: str | None, dtype: str | None, allow_pickle: bool, backend: str | None = None
):
    """`ner.load` with CLI-style errors."""
    import ner

    check_device(device)
    check_backend(backend)
    try:
        return ner.load(model, device=device, dtype=dtype, allow_pickle=allow_pickle, backend=backend)
    except (ner.NerError, ValueError) as exc:
        raise fail(str(exc)) from None


@app.callback()
def _root() -> None:
    """spanlink: multilingual entity extraction, linking and vector search."""


@app.command()
def extract(
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to analyse (or use --input).")] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Checkpoint folder, hub id, or embedded model: default, fine."),
    ] = None,
    input_file: Annotated[
        str | None,
        typer.Option("--input", "-i", help="File with one text per line ('-' = stdin; .jsonl: \"text\")."),
    ] = None,
    embeddings: Annotated[bool, typer.Option(help="Add each entity's span embedding.")] = False,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label", "-l", help="Keep only this type (repeatable); a group (PER) keeps all its fine types."
        ),
    ] = None,
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
    backend: BackendOption = None,
) -> None:
    """Extract entities; writes one JSON line {"text", "entities"} per input text."""
    if texts and input_file:
        raise fail("give texts as arguments or --input, not both")
    if not texts and input_file is None:
        raise fail("nothing to do: give TEXT arguments or --input FILE ('-' for stdin)")
    if input_file is not None:
        stream, total = read_texts(input_file)
    else:
        for number, text in enumerate(texts or [], 1):
            check_text(text, f"TEXT {number}")
        stream, total = iter(texts or []), len(texts or [])
    check_backend(backend)
    span_model = load_model(model, device, dtype, allow_pickle, backend)
    if label:
        try:
            span_model.expand_labels(label)
        except ValueError as exc:  # ner.InputError
            raise fail(str(exc)) from None
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
            labels=label or None,
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
from api import cli_export, cli_kb, cli_linking, cli_serve, cli_store, cli_train  # noqa: E402, F401


def main() -> None:
    app()
