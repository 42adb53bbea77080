"""The ONNX Runtime backend: `SpanEngine` with its two forward passes on ORT, and no torch.

`OnnxSpanModel` runs the graphs that `ner.onnx_export` writes: the text graph returns the hidden
states and the per-layer keys and values as ORT values, which go to the marker graph without a copy
through numpy; the marker graph already ends in the span classifier. Windows, batching, marker
chunking, pruning, decoding and span embeddings are the engine's own code (`ner.engine`), shared
with the torch backend, so the output is the same up to float rounding.

Nothing here imports torch: a service that serves an exported folder runs on onnxruntime, numpy and
tokenizers alone (`tests/ner/test_onnx_without_torch.py` checks that with torch made unimportable).
Only exporting (`load_onnx` on a model that is not an export yet) needs torch.

`load_onnx` opens an exported folder, or exports a model spanlink loads into the cache first.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from ner.config import SpanConfig
from ner.engine import SpanEngine
from ner.errors import CheckpointError
from ner.onnx_format import MANIFEST, PRECISIONS, ExportError, folder_key, is_onnx_folder
from ner.segments import Segment
from ner.tokenization import SpanTokenizer


def _ort():  # noqa: ANN202 - the onnxruntime module, imported on first use
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("the ONNX backend needs onnxruntime: pip install 'spanlink[onnx]'") from None
    return onnxruntime


def open_session(path: Path, threads: int | None = None):  # noqa: ANN201 - onnxruntime.InferenceSession
    """An ONNX Runtime CPU session with every graph optimisation (and ``threads`` intra-op threads)."""
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


class OnnxSpanModel(SpanEngine):
    """A span classifier running on ONNX Runtime (CPU). Create it with `ner.load(..., backend="onnx")`.

    The API is `SpanEngine`'s (`extract`, `embed_spans`, `score_candidates`, ...); `save_pretrained`
    and training need the torch backend.
    """

    backend = "onnx"
    device = "cpu"

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
        boundary = manifest["graphs"].get("boundary")
        super().__init__(
            config,
            tokenizer,
            name=name,
            boundary=open_session(folder / boundary, threads) if boundary else None,
        )
        self.text_session = open_session(folder / manifest["graphs"]["text"], threads)
        self.marker_session = open_session(folder / manifest["graphs"]["markers"], threads)
        self.cache_names = [o.name for o in self.text_session.get_outputs()[1:]]
        self.dtype = manifest["precision"]
        self.folder = folder
        self.manifest = manifest

    def _inference(self) -> AbstractContextManager:
        return nullcontext()

    def _encode_text(self, batch: list[Segment]) -> tuple[np.ndarray, list, np.ndarray]:
        """As `SpanModel._encode_text`; the graph numbers the text from 2 itself, as SpanMarker does."""
        ort = _ort()
        ids, valid = self._text_arrays(batch)
        # An OrtValue made from a numpy array borrows its memory: the arrays outlive the run here.
        feeds = {name: ort.OrtValue.ortvalue_from_numpy(a) for name, a in (("ids", ids), ("valid", valid))}
        outs = self.text_session.run_with_ort_values(["hidden", *self.cache_names], feeds)
        return np.array(outs[0].numpy()), list(outs[1:]), valid

    def _class_probs(self, batch: list[Segment], cache: list, valid: np.ndarray) -> np.ndarray:
        """As `SpanModel._class_probs`: the same marker chunks, each one run of the marker graph."""
        ort = _ort()
        start_pos, end_pos = self._marker_arrays(batch)
        p = start_pos.shape[1]
        feeds = {"valid": ort.OrtValue.ortvalue_from_numpy(valid)}  # borrowed: `valid` stays alive
        feeds.update(zip(self.cache_names, cache))
        chunk = max(1, self.marker_budget // (2 * len(batch)))
        logits = []
        for c0 in range(0, p, chunk):
            c1 = min(p, c0 + chunk)
            starts = np.ascontiguousarray(start_pos[:, c0:c1])
            ends = np.ascontiguousarray(end_pos[:, c0:c1])
            feeds["start_pos"] = ort.OrtValue.ortvalue_from_numpy(starts)
            feeds["end_pos"] = ort.OrtValue.ortvalue_from_numpy(ends)
            logits.append(self.marker_session.run_with_ort_values(["logits"], feeds)[0].numpy())
        return _softmax(np.concatenate(logits, axis=1).astype(np.float32, copy=False))

    def _boundary_probs(self, hidden: np.ndarray, seg: Segment, row: int) -> tuple[np.ndarray, np.ndarray]:
        first, last = self._word_edges(seg)
        states = np.ascontiguousarray(hidden[row], dtype=np.float32)
        logits = self.boundary.run(["logits"], {"hidden": states})[0]  # (tokens, 2)
        return _sigmoid(logits[first, 0]), _sigmoid(logits[last, 1])

    def _rows_mean(self, states: Any, rows: slice | list[int]) -> np.ndarray:
        return states[rows].astype(np.float32, copy=False).mean(0)

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
    return folder_key(folder, precision, str(revision))


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
            from ner.onnx_export import export_onnx  # exporting needs torch; running does not

            source = ner.load(name_or_path, allow_pickle=allow_pickle, revision=revision, backend="torch")
            export_onnx(source, out, quantize=precision, source=str(name_or_path or "default"))
    name = str(name_or_path) if name_or_path is not None else "default"
    return open_onnx_folder(out, name=name, threads=threads)
