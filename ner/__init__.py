"""spanlink's NER engine: SpanMarker checkpoints, run exactly and fast, with span embeddings.

>>> import ner
>>> model = ner.load("path/to/span-marker-checkpoint")
>>> model.extract("Angela Merkel visited Paris.", embeddings=True)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ner.engine import SpanEngine
from ner.entities import Entity
from ner.errors import CheckpointError, InputError, NerError, PickleRefused

if TYPE_CHECKING:
    import torch

    from ner.model import SpanModel

__all__ = [
    "CheckpointError",
    "Entity",
    "InputError",
    "NerError",
    "PickleRefused",
    "SpanEngine",
    "SpanModel",
    "load",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - the torch backend's class, imported on first use
    """`ner.SpanModel` imports torch only when asked for, so that serving an ONNX export never does."""
    if name == "SpanModel":
        from ner.model import SpanModel

        return SpanModel
    raise AttributeError(f"module 'ner' has no attribute {name!r}")


def load(
    name_or_path: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    allow_pickle: bool = False,
    revision: str | None = None,
    backend: str | None = None,
) -> SpanEngine:
    """Load a SpanMarker checkpoint (or a `spanlink export` folder).

    Args:
        name_or_path (str | Path | None): a checkpoint folder (config.json with model_type "span-marker",
            model.safetensors, tokenizer files), or a Hugging Face hub id where the network allows, or
            the name of an embedded model: "default" (`data/default-model`, PER/ORG/LOC/MISC, a delta
            over e5-small) or "fine" (`data/fine-model`, MultiCoNER's 33 types in 6 groups; see
            `ner.labels`). A folder that is called "fine" is loaded as "./fine". Defaults to "default".
        device (str | torch.device | None): "cpu", "cuda", ... Defaults to the CPU.
        dtype (str | torch.dtype | None): "float32" (default, exact), "bfloat16", "float16" (GPU), or
            "int8" (dynamic quantization of the linear layers, CPU). The last three change scores slightly.
        allow_pickle (bool): accept a checkpoint that has only pickle weights. Defaults to False.
        revision (str | None): hub revision. Defaults to the main branch.
        backend (str | None): "torch" or "onnx" (ONNX Runtime on the CPU, dtype "float32" or "int8";
            needs `spanlink[onnx]`; a model that is not an export folder is exported into the cache
            once). Defaults to "onnx" for a `spanlink export` folder and "torch" otherwise.

    Returns:
        SpanEngine: ready for `extract` and `embed_spans`: a `ner.model.SpanModel` on torch, or a
        `ner.onnx_runtime.OnnxSpanModel` (which imports no torch) on ONNX Runtime.

    Raises:
        CheckpointError: missing, corrupt or mismatched files (PickleRefused for pickle-only weights),
            or an embedded model that is not in this install.
    """
    from ner.default_model import (
        EMBEDDED_MODELS,
        default_model_dir,
        embedded_model_dir,
        is_delta_folder,
        load_delta,
    )
    from ner.onnx_format import is_onnx_folder

    if isinstance(name_or_path, str) and name_or_path in EMBEDDED_MODELS:
        name_or_path = embedded_model_dir(name_or_path)

    if backend not in (None, "torch", "onnx"):
        raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    if backend == "onnx" or (backend is None and is_onnx_folder(name_or_path)):
        if device is not None and str(device).split(":")[0] != "cpu":
            raise ValueError("the onnx backend runs on the CPU; use the torch backend for other devices")
        from ner.onnx_runtime import load_onnx

        return load_onnx(name_or_path, dtype=dtype, allow_pickle=allow_pickle, revision=revision)
    if is_onnx_folder(name_or_path):
        raise CheckpointError(f"{name_or_path} is an ONNX export; load it with backend='onnx'")
    if name_or_path is None:
        folder = default_model_dir()
        if not is_delta_folder(folder):
            raise CheckpointError(
                f"no default model at {folder} (set SPANLINK_DEFAULT_MODEL, or name a model: "
                "a SpanMarker checkpoint folder or hub id)"
            )
        return load_delta(folder, device=device, dtype=dtype)
    if is_delta_folder(Path(name_or_path)):
        return load_delta(Path(name_or_path), device=device, dtype=dtype)
    from ner.model import SpanModel

    return SpanModel.from_pretrained(
        name_or_path, device=device, dtype=dtype, allow_pickle=allow_pickle, revision=revision
    )
