"""The ONNX Runtime backend: `SpanModel`'s planning and decoding, the two forward passes on ORT.

`OnnxSpanModel` is a `SpanModel` whose encoder is a pair of ONNX Runtime sessions (`ner.onnx_export`
writes them): the text graph stands in for `Encoder.forward_text` and returns the per-layer keys
and values as ORT values, which go to the marker graph without a copy through numpy; only
`_logits` differs, because the marker graph already ends in the span classifier. Windows, batching,
marker chunking, pruning, decoding and span embeddings are the torch engine's own code, so the
output is the same up to float rounding.

`load_onnx` opens an exported folder, or exports a model spanlink loads into the cache first.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ner.config import SpanConfig
from ner.errors import CheckpointError
from ner.model import SpanModel
from ner.onnx_export import MANIFEST, PRECISIONS, ExportError, export_onnx, is_onnx_folder
from ner.segments import Segment
from ner.tokenization import SpanTokenizer


def _ort():  # noqa: ANN202 - the onnxruntime module, imported on first use
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("the ONNX backend needs onnxruntime: pip install 'spanlink[onnx]'") from None
    return onnxruntime


def _session(path: Path, threads: int | None):  # noqa: ANN202 - onnxruntime.InferenceSession
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class _TextEncoder(nn.Module):
    """Duck-types `Encoder.forward_text` for `SpanModel._encode_text` and `embed_spans`."""

    def __init__(self, session) -> None:  # noqa: ANN001 - onnxruntime.InferenceSession
        super().__init__()
        self.session = session
        self.cache_names = [o.name for o in session.get_outputs()[1:]]

    def forward_text(self, ids: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor):  # noqa: ANN201
        """(hidden states as a torch tensor, the layers' keys and values as ORT values)."""
        del positions  # the graph numbers the text from 2 itself, as SpanMarker does
        ort = _ort()
        # An OrtValue made from a numpy array borrows its memory: keep the arrays alive until the run ends.
        ids_np, valid_np = np.ascontiguousarray(ids.cpu().numpy()), np.ascontiguousarray(valid.cpu().numpy())
        feeds = {
            "ids": ort.OrtValue.ortvalue_from_numpy(ids_np),
            "valid": ort.OrtValue.ortvalue_from_numpy(valid_np),
        }
        outs = self.session.run_with_ort_values(["hidden", *self.cache_names], feeds)
        return torch.from_numpy(np.array(outs[0].numpy())), list(outs[1:])


class _Boundary(nn.Module):
    """Duck-types the boundary `nn.Linear` (`SpanModel.boundary_logits` calls it on one row's states)."""

    def __init__(self, session) -> None:  # noqa: ANN001 - onnxruntime.InferenceSession
        super().__init__()
        self.session = session

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(hidden.float().cpu().numpy())
        return torch.from_numpy(self.session.run(["logits"], {"hidden": x})[0])


class OnnxSpanModel(SpanModel):
    """A `SpanModel` running on ONNX Runtime (CPU). Create it with `ner.load(..., backend="onnx")`.

    The API is `SpanModel`'s (`extract`, `embed_spans`, `score_candidates`, ...); `save_pretrained`
    and training need the torch backend.
    """

    backend = "onnx"

    def __init__(
        self,
        folder: Path,
        config: SpanConfig,
        tokenizer: SpanTokenizer,
        manifest: dict,
        *,
        name: str = "",
        threads: int | None = None,
    ) -> None:
        text = _session(folder / manifest["graphs"]["text"], threads)
        markers = _session(folder / manifest["graphs"]["markers"], threads)
        boundary = manifest["graphs"].get("boundary")
        super().__init__(
            config,
            tokenizer,
            _TextEncoder(text),  # type: ignore[arg-type]
            nn.Identity(),  # type: ignore[arg-type] - the classifier is inside the marker graph
            name=name,
            boundary=_Boundary(_session(folder / boundary, threads)) if boundary else None,  # type: ignore[arg-type]
        )
        self.dtype = manifest["precision"]
        self.folder = folder
        self.manifest = manifest
        self.marker_session = markers

    def _logits(self, batch: list[Segment], cache: list, valid: torch.Tensor) -> torch.Tensor:
        """As `SpanModel._logits`: the same marker chunks, each one run of the marker graph."""
        ort = _ort()
        p = max(len(s.spans) for s in batch)
        start_pos = np.full((len(batch), p), 2, dtype=np.int64)
        end_pos = np.full((len(batch), p), 2, dtype=np.int64)
        for b, seg in enumerate(batch):
            start_pos[b, : len(seg.spans)] = seg.starts + 2
            end_pos[b, : len(seg.spans)] = seg.ends + 2
        valid_np = np.ascontiguousarray(valid.cpu().numpy())  # borrowed by the OrtValue: keep it alive
        feeds = {"valid": ort.OrtValue.ortvalue_from_numpy(valid_np)}
        feeds.update(zip(self.encoder.cache_names, cache))
        chunk = max(1, self.marker_budget // (2 * len(batch)))
        logits = []
        for c0 in range(0, p, chunk):
            c1 = min(p, c0 + chunk)
            starts = np.ascontiguousarray(start_pos[:, c0:c1])
            ends = np.ascontiguousarray(end_pos[:, c0:c1])
            feeds["start_pos"] = ort.OrtValue.ortvalue_from_numpy(starts)
            feeds["end_pos"] = ort.OrtValue.ortvalue_from_numpy(ends)
            logits.append(self.marker_session.run_with_ort_values(["logits"], feeds)[0].numpy())
        return torch.from_numpy(np.concatenate(logits, axis=1))

    def save_pretrained(self, folder: str | Path) -> Path:
        raise ValueError(
            "an ONNX model cannot be saved as a SpanMarker checkpoint; export it from the torch one"
        )


def open_onnx_folder(folder: str | Path, *, name: str = "", threads: int | None = None) -> OnnxSpanModel:
    """Open a folder written by `ner.onnx_export.export_onnx`.

    Raises:
        CheckpointError: the manifest is missing, malformed or of an unknown format version.
    """
    folder = Path(folder).expanduser()
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format_version") != 1 or manifest.get("precision") not in PRECISIONS:
            raise ValueError(f"unsupported format version or precision in {manifest!r:.200}")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder} is not a spanlink ONNX export: {exc}") from None
    config = SpanConfig.from_file(folder / "config.json")
    tokenizer = SpanTokenizer.from_folder(
        folder, config.model_max_length, config.encoder.model_type, config.cjk_words
    )
    return OnnxSpanModel(folder, config, tokenizer, manifest, name=name or str(folder), threads=threads)


def _export_key(name_or_path: str | Path | None, precision: str, revision: str | None) -> str:
    """Cache key of an on-the-fly export: the source's files (name, size, mtime) and the precision."""
    from ner.default_model import default_model_dir

    folder = default_model_dir() if name_or_path is None else Path(name_or_path).expanduser()
    parts = [str(folder.resolve()) if folder.exists() else str(name_or_path), precision, str(revision)]
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file():
                stat = path.stat()
                parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def load_onnx(
    name_or_path: str | Path | None = None,
    *,
    dtype: str | None = None,
    allow_pickle: bool = False,
    revision: str | None = None,
    threads: int | None = None,
) -> OnnxSpanModel:
    """An ONNX export folder as is; any other model spanlink loads is exported into the cache first.

    The export of a model folder is cached under ``<cache>/onnx/`` (``$SPANLINK_CACHE_DIR``), keyed by
    the folder's files, so it happens once per model version and precision.

    Raises:
        ValueError: a precision the backend does not run.
        ExportError / CheckpointError: as `export_onnx` and `ner.load`.
    """
    precision = "float32" if dtype is None else str(dtype).removeprefix("torch.")
    if is_onnx_folder(name_or_path):
        model = open_onnx_folder(name_or_path, threads=threads)  # type: ignore[arg-type]
        if dtype is not None and model.dtype != precision:
            raise ValueError(f"{name_or_path} was exported as {model.dtype}, not {precision}")
        return model
    if precision not in PRECISIONS:
        raise ValueError(f"the onnx backend runs {PRECISIONS}, not {dtype!r}")
    _ort()
    from filelock import FileLock

    from ner.base_encoder import default_cache_dir

    out = default_cache_dir() / "onnx" / _export_key(name_or_path, precision, revision)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not is_onnx_folder(out):
            import ner

            source = ner.load(name_or_path, allow_pickle=allow_pickle, revision=revision, backend="torch")
            export_onnx(source, out, quantize=precision, source=str(name_or_path or "default"))
    name = str(name_or_path) if name_or_path is not None else "default"
    return open_onnx_folder(out, name=name, threads=threads)
