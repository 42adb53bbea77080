"""Where `spanlink ingest` documents come from: PATHS expanded to files, file bytes parsed into records.

One parser serves both executors of the ingest pipeline (``api.ingest_pipeline``): in-process the
driver reads local files itself; on Ray, Ray Data reads them (local paths, or any URI its pyarrow
filesystems know) and its tasks run the same :func:`parse_file` on the bytes. A bad document never
raises here: it becomes a :class:`Parsed` with an error, so that a bulk job reports it and goes on,
while the strict (interactive) ingest stops at the first one, before anything is written.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSONL_SUFFIXES = (".jsonl", ".ndjson")
GLOB_CHARACTERS = "*?["


class SourceError(ValueError):
    """PATHS that name nothing to read (a missing file, a glob that matches nothing, an empty folder)."""


@dataclass(frozen=True)
class Source:
    """One file to read: ``location`` is what the reader opens, ``name`` how its documents are called
    (the path as the user wrote it, so that ids do not depend on the executor or the working folder)."""

    location: str
    name: str


@dataclass(frozen=True)
class Parsed:
    """A document read from a file, or the reason it could not be (``document`` is then None).

    ``where`` is ``file`` or ``file:line``; ``key`` (:func:`document_key`) identifies id and text.
    """

    where: str
    document: Any = None  # a linking.linker.DocumentIn
    error: str | None = None
    key: bytes = b""


def is_uri(path: str) -> bool:
    """Whether a PATH is a URI for Ray Data's filesystems (s3://, gs://, abfs://, hdfs://, file://)."""
    return "://" in path


def is_jsonl(name: str) -> bool:
    return name.lower().endswith(JSONL_SUFFIXES)


def expand(paths: Iterable[str]) -> list[Source]:
    """Files named by PATHS, in the order given: a file; a folder (every non-hidden file below it,
    recursively, sorted); a glob (``**`` recursive, sorted); a URI is passed on as it is (Ray reads it).

    Raises:
        SourceError: a path that names nothing readable.
    """
    sources: list[Source] = []
    for path in paths:
        if is_uri(path):
            sources.append(Source(path, path))
        elif any(c in path for c in GLOB_CHARACTERS) and not Path(path).exists():
            matches = sorted(m for m in glob.glob(path, recursive=True) if Path(m).is_file())
            if not matches:
                raise SourceError(f"{path} matches no file")
            sources += [Source(str(Path(m).absolute()), m) for m in matches]
        elif Path(path).is_dir():
            root = Path(path)
            files = sorted(
                f
                for f in root.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(root).parts)
            )
            if not files:
                raise SourceError(f"cannot read {path}: a folder without files")
            sources += [Source(str(f.absolute()), str(f)) for f in files]
        else:
            try:
                os.stat(path)
            except OSError as exc:
                raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
            sources.append(Source(str(Path(path).absolute()), path))
    return sources


def document_key(external_id: str, text: str) -> bytes:
    """16 bytes naming a document's id and text together: what resuming compares with the store."""
    return content_key(external_id, hashlib.sha256(text.encode("utf-8")).hexdigest())


def content_key(external_id: str, content_hash: str) -> bytes:
    """:func:`document_key` from a stored row (``documents.content_hash`` is the text's sha256)."""
    return hashlib.sha256(external_id.encode("utf-8") + b"\0" + content_hash.encode("ascii")).digest()[:16]


def parse_file(name: str, data: bytes, settings: Any) -> Iterator[Parsed]:  # noqa: ANN401 - ServiceSettings
    """The documents of one file: a text file is one document (its name is its id); a JSON-lines file
    holds one ``POST /v1/documents`` body per line (an absent id becomes ``file:line``, so reading the
    file again names the same documents). Each is checked by the API's rules (:func:`check_record`)."""
    if not is_jsonl(name):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            yield Parsed(f"{name}:{line}", error=f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
            return
        yield _checked(name, {"id": name, "text": text}, settings)
        return
    for number, raw in enumerate(data.split(b"\n"), 1):
        where = f"{name}:{number}"
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            yield Parsed(where, error=f"not valid UTF-8 ({exc.reason} at byte {exc.start} of the line)")
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Parsed(where, error=f"invalid JSON ({exc.msg})")
            continue
        if not isinstance(record, dict):
            yield Parsed(where, error=f'expected a JSON object with "text", got {type(record).__name__}')
            continue
        if record.get("id") is None:
            record["id"] = where
        yield _checked(where, record, settings)


def count_documents(name: str, data: bytes) -> int:
    """How many documents :func:`parse_file` yields for a file (good or bad), without checking them."""
    if not is_jsonl(name):
        return 1
    return sum(1 for raw in data.split(b"\n") if raw.strip())


def _checked(where: str, record: dict[str, Any], settings: Any) -> Parsed:  # noqa: ANN401
    try:
        document = check_record(record, settings)
    except BadDocument as exc:
        return Parsed(where, error=str(exc))
    return Parsed(where, document, key=document_key(document.external_id, document.text))


class BadDocument(ValueError):
    """A record that ``POST /v1/documents`` would refuse; the message says why (without where)."""


def check_record(record: dict[str, Any], settings: Any) -> Any:  # noqa: ANN401 - ServiceSettings -> DocumentIn
    """The record as the HTTP API accepts it (``api.schemas.DocumentCreate`` and the same limits), as a
    ``linking.DocumentIn``. Raises :class:`BadDocument`."""
    from pydantic import ValidationError

    from api.cli import validation_message
    from api.errors import ServiceError
    from api.routes.limits import check_mentions, check_texts
    from api.schemas import DocumentCreate
    from linking.linker import DocumentIn, MentionIn

    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadDocument(f"not valid text (a lone surrogate, {exc.object[exc.start]!r})") from None
    try:
        document = DocumentCreate.model_validate(record)
        check_texts([document.text], "document", settings, [document.id])
        if document.mentions is not None:
            check_mentions(len(document.mentions), f"document {document.id!r}", settings)
    except ValidationError as exc:
        raise BadDocument(validation_message(exc)) from None
    except ServiceError as exc:
        raise BadDocument(exc.message) from None
    mentions = (
        None if document.mentions is None else [MentionIn(m.start, m.end, m.label) for m in document.mentions]
    )
    return DocumentIn(document.id, document.text, mentions, document.language, document.metadata)


def read_local(source: Source) -> bytes:
    """A local file's bytes (the in-process executor's reader). Raises OSError."""
    return Path(source.location).read_bytes()
