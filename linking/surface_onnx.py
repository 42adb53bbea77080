"""The surface encoder (e5, mean-pooled) as an ONNX graph, so that linking runs without torch too.

Surface vectors (`linking.embedding.SurfaceEmbedder`) are sentence embeddings of mention strings.
On the torch backend they come from the transformers model; a service that serves a `spanlink
export` folder on ONNX Runtime gets them from this graph instead, so it never imports torch. The
graph is the encoder plus the masked mean (``input_ids``, ``attention_mask`` -> ``pooled``), in
float32: the vectors equal the torch ones up to float rounding (~1e-6), so a store written by one
backend is searched by the other.

A surface folder holds ``surface.onnx`` (its weights in ``surface.onnx.data``, which ONNX Runtime
memory-maps), the tokenizer files and ``spanlink-surface.json``.
`spanlink export --format onnx` writes one into the export (``surface/``); `surface_folder_for` finds
it there, or exports the encoder into the cache once (which needs torch).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SURFACE_MANIFEST = "spanlink-surface.json"
SURFACE_GRAPH = "surface.onnx"
SURFACE_SUBFOLDER = "surface"
"""Where `spanlink export` puts the surface encoder inside an NER export folder."""


def is_surface_folder(folder: str | Path | None) -> bool:
    """True for a folder written by `export_surface`."""
    return folder is not None and (Path(folder) / SURFACE_MANIFEST).is_file()


def export_surface(encoder_folder: str | Path, out: str | Path, opset: int = 17) -> Path:
    """Write the mean-pooled encoder of ``encoder_folder`` (a transformers folder) to ``out`` as ONNX.

    Written into a temporary sibling and renamed, so a crash leaves no half folder behind.

    Raises:
        RuntimeError: torch or transformers cannot export the encoder.
    """
    import warnings

    import torch

    from linking.embedding import pooled_encoder
    from ner.onnx_export import readable_mode, save_with_external_weights

    out = Path(out)
    # "eager" attention traces to plain MatMul/Softmax; the default (SDPA) adds branches the tracer fixes.
    tokenizer, pooled, dim = pooled_encoder(encoder_folder, attn_implementation="eager")
    example = tokenizer(["query: a b", "query: c"], padding=True, return_tensors="pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            torch.onnx.export(
                pooled,
                (example["input_ids"], example["attention_mask"]),
                str(work / "traced.onnx"),
                input_names=["input_ids", "attention_mask"],
                output_names=["pooled"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "pooled": {0: "batch"},
                },
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        save_with_external_weights(work / "traced.onnx", work / SURFACE_GRAPH)  # memory-mapped at run time
        (work / "traced.onnx").unlink()
        tokenizer.save_pretrained(str(work))
        manifest = {
            "format": "spanlink-surface",
            "format_version": 1,
            "opset": opset,
            "dim": dim,
            "source": str(encoder_folder),
        }
        (work / SURFACE_MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        work.chmod(readable_mode(0o777))  # mkdtemp made it owner-only
        shutil.rmtree(out, ignore_errors=True)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def surface_folder_for(model: Any = None, encoder_folder: str | Path | None = None) -> Path:  # noqa: ANN401
    """The surface export to use: ``encoder_folder`` if it is one, the NER export's ``surface/``, or a
    cached export of the encoder (e5-small by default), made once.

    Raises:
        RuntimeError: no export exists and torch is not installed to make one.
    """
    if is_surface_folder(encoder_folder):
        return Path(encoder_folder)  # type: ignore[arg-type]
    model_folder = getattr(model, "folder", None)
    if encoder_folder is None and model_folder is not None:
        bundled = Path(model_folder) / SURFACE_SUBFOLDER
        if is_surface_folder(bundled):
            return bundled
    from ner.base_encoder import default_cache_dir, ensure_base_encoder
    from ner.onnx_format import folder_key

    source = Path(encoder_folder) if encoder_folder is not None else ensure_base_encoder()
    out = default_cache_dir() / "onnx" / f"surface-{folder_key(source, 'surface')}"
    if is_surface_folder(out):
        return out
    try:
        import torch  # noqa: F401 - only to say clearly why the export cannot be made
    except ImportError:
        raise RuntimeError(
            "surface vectors on the onnx backend need the surface encoder as ONNX, and making it needs "
            "torch: export the model with `spanlink export --format onnx` (it bundles surface/) on a "
            "machine with torch, or use --vectors span"
        ) from None
    from filelock import FileLock

    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not is_surface_folder(out):
            export_surface(source, out)
    return out


class OnnxSurfacePooler:
    """Pooled vectors of already prefixed strings, on ONNX Runtime (what `SurfaceEmbedder` calls).

    Tokenizes with `tokenizers` itself: transformers imports torch whenever torch is installed,
    which would undo the point of this class.
    """

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        from ner.onnx_runtime import open_session

        folder = Path(folder)
        manifest = json.loads((folder / SURFACE_MANIFEST).read_text(encoding="utf-8"))
        self.session = open_session(folder / SURFACE_GRAPH, threads)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        pad = config.get("pad_token") or "<pad>"
        pad = pad["content"] if isinstance(pad, dict) else pad
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad), pad_token=pad)
        self.dim = int(manifest["dim"])

    def __call__(self, strings: list[str], max_length: int) -> np.ndarray:
        self.tokenizer.enable_truncation(max_length)
        encodings = self.tokenizer.encode_batch(strings)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        return self.session.run(["pooled"], feeds)[0]
