"""The layout of a `spanlink export` folder: names shared by the exporter (torch) and the runtime (not).

Kept apart from `ner.onnx_export` so that opening and serving an export imports no torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ner.errors import NerError

MANIFEST = "spanlink-onnx.json"
FORMAT = "spanlink-onnx"
FORMAT_VERSION = 1
DEFAULT_OPSET = 17
PRECISIONS = ("float32", "int8")
TEXT_GRAPH, MARKER_GRAPH, BOUNDARY_GRAPH = "text.onnx", "markers.onnx", "boundary.onnx"


class ExportError(NerError):
    """The model cannot be exported (missing onnx package, unsupported precision, exporter failure)."""


def is_onnx_folder(path: str | Path | None) -> bool:
    """True for a folder written by `export_onnx` (it has the manifest)."""
    return path is not None and (Path(path).expanduser() / MANIFEST).is_file()


def folder_key(folder: Path, *parts: str) -> str:
    """A cache key for an export made from ``folder``: its path, its files (name, size, mtime), ``parts``.

    Any change to the source's files gives a new key, so a stale export is never reused.
    """
    keyed = [str(folder.resolve()) if folder.exists() else str(folder), *parts]
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file():
                stat = path.stat()
                keyed.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(keyed).encode()).hexdigest()[:16]
