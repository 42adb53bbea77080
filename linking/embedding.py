"""Mention vectors for linking: contextual span embeddings, surface-form embeddings, or both.

An embedder maps ``(text, spans)`` to one L2-normalized float32 row per span. Three kinds
(``VECTOR_KINDS``): ``span`` is the NER encoder's contextual span vector (``embed_spans``);
``surface`` is a sentence embedding of the mention string alone ("query: Wielka Brytania"),
which e5 places close to its translations ("query: Великобритания") whatever the context;
``mix`` adds the two normalized vectors. Surface vectors are cached by string, since names
repeat across a corpus far more than they vary.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from linking.settings import VECTOR_KINDS


class Embedder(Protocol):
    """What the linker needs: a vector size and one normalized vector per character span."""

    dim: int

    def embed(self, text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray: ...


def _normalize(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


class SpanEmbedder:
    """Contextual span vectors from a ``ner.SpanEngine`` (mean of the span's final subword states)."""

    def __init__(self, model) -> None:  # noqa: ANN001 - a ner.SpanEngine
        self.model = model
        self.dim = int(model.hidden_size)

    def embed(self, text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        if not spans:
            return np.zeros((0, self.dim), np.float32)
        return _normalize(self.model.embed_spans(text, list(spans)))


SURFACE_MAX_TOKENS = 64
"""Mention strings are short; longer ones are cut to this many tokens."""


def pooled_encoder(folder: str | Path, **load: Any) -> tuple[Any, Any, int]:  # noqa: ANN401
    """(tokenizer, module, hidden size) of the surface encoder, on torch (transformers).

    The module maps (input_ids, attention_mask) to the mean of the last states over the real
    tokens: the pooling of surface vectors, here and in the ONNX graph that `linking.surface_onnx`
    traces from this same module, so the two backends cannot drift apart. ``load`` goes to
    ``AutoModel.from_pretrained``.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1)

    encoder = AutoModel.from_pretrained(str(folder), add_pooling_layer=False, **load).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return tokenizer, Pooled(encoder).eval(), int(encoder.config.hidden_size)


def _torch_pooler(folder: str | Path | None):  # noqa: ANN202 - (strings, max_length) -> array, and dim
    """Masked-mean e5 states on torch (transformers), for `SurfaceEmbedder`."""
    import torch

    if folder is None:
        from ner.base_encoder import ensure_base_encoder

        folder = ensure_base_encoder()
    tokenizer, pooled, dim = pooled_encoder(folder)

    def pool(strings: list[str], max_length: int) -> np.ndarray:
        batch = tokenizer(strings, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            return pooled(batch["input_ids"], batch["attention_mask"]).float().numpy()

    return pool, dim


class SurfaceEmbedder:
    """Mean-pooled e5 sentence embeddings of the mention strings, with e5's ``"query: "`` prefix.

    Args:
        folder (str | Path | None): A BERT-family encoder folder. Defaults to the bundled e5-small
            (``ner.base_encoder.ensure_base_encoder()``).
        batch_size (int): Strings per forward pass. Defaults to 64.
        cache_file (str | Path | None): An ``.npz`` of earlier vectors (strings + matrix), read
            here and written by ``save_cache``; for repeated evaluations. Defaults to None.
        backend (str): ``"torch"`` (transformers) or ``"onnx"`` (ONNX Runtime, no torch: the
            encoder as exported by `linking.surface_onnx`; ``folder`` may be such an export).
            The two give the same vectors up to float rounding. Defaults to "torch".
        model: the NER model; on the onnx backend, an export folder that bundles ``surface/`` is
            used from there. Defaults to None.
    """

    def __init__(
        self,
        folder: str | Path | None = None,
        batch_size: int = 64,
        cache_file: str | Path | None = None,
        backend: str = "torch",
        model=None,  # noqa: ANN001 - the NER model, whose ONNX export may bundle the surface encoder
    ) -> None:
        if backend == "onnx":
            from linking.surface_onnx import OnnxSurfacePooler, surface_folder_for

            pooler = OnnxSurfacePooler(surface_folder_for(model, folder))
            self._pool, self.dim = pooler, pooler.dim
        elif backend == "torch":
            self._pool, self.dim = _torch_pooler(folder)
        else:
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        self.batch_size = batch_size
        self.cache: dict[str, np.ndarray] = {}
        self.cache_file = Path(cache_file) if cache_file is not None else None
        if self.cache_file is not None and self.cache_file.exists():
            with np.load(self.cache_file, allow_pickle=False) as saved:
                self.cache = dict(zip(saved["strings"].tolist(), saved["vectors"]))

    def save_cache(self) -> None:
        """Write the string -> vector cache to ``cache_file`` (no-op without one)."""
        if self.cache_file is None or not self.cache:
            return
        strings = list(self.cache)
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            self.cache_file, strings=np.array(strings), vectors=np.stack([self.cache[s] for s in strings])
        )

    def embed_strings(self, strings: Sequence[str]) -> np.ndarray:
        """One normalized vector per string (cached)."""
        missing = [s for s in dict.fromkeys(strings) if s not in self.cache]
        for at in range(0, len(missing), self.batch_size):
            chunk = missing[at : at + self.batch_size]
            pooled = self._pool(["query: " + s for s in chunk], SURFACE_MAX_TOKENS)
            for s, row in zip(chunk, _normalize(pooled)):
                self.cache[s] = row
        if not strings:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.cache[s] for s in strings])

    def embed(self, text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        return self.embed_strings([" ".join(text[s:e].split()) for s, e in spans])


class MixEmbedder:
    """The normalized sum of a span and a surface embedding (same size required)."""

    def __init__(self, span: Embedder, surface: Embedder) -> None:
        if span.dim != surface.dim:
            raise ValueError(f"mix needs equal vector sizes, got {span.dim} and {surface.dim}")
        self.span, self.surface, self.dim = span, surface, span.dim

    def embed(self, text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        if not spans:
            return np.zeros((0, self.dim), np.float32)
        return _normalize(self.span.embed(text, spans) + self.surface.embed(text, spans))


def make_embedder(  # noqa: ANN201
    kind: str,
    model=None,
    surface_folder: str | Path | None = None,
    cache_file: str | Path | None = None,  # noqa: ANN001
    backend: str | None = None,
):
    """Build the embedder for ``kind`` (one of ``VECTOR_KINDS``).

    Args:
        kind (str): ``"span"``, ``"surface"`` or ``"mix"``.
        model (ner.SpanEngine | None): Needed for ``span`` and ``mix``.
        surface_folder (str | Path | None): Encoder for surface vectors. Defaults to e5-small.
        cache_file (str | Path | None): Surface vector cache (see ``SurfaceEmbedder``). Defaults to None.
        backend (str | None): Where surface vectors run: "torch" or "onnx". Defaults to the NER
            model's backend (torch without a model), so a service on ONNX Runtime imports no torch.

    Returns:
        Embedder: ``SpanEmbedder``, ``SurfaceEmbedder`` or ``MixEmbedder``.

    Raises:
        ValueError: Unknown kind, or a span kind without a model.
    """
    if kind not in VECTOR_KINDS:
        raise ValueError(f"vector kind must be one of {VECTOR_KINDS}, got {kind!r}")
    if kind in ("span", "mix") and model is None:
        raise ValueError(f"vector kind {kind!r} needs a NER model (ner.load) for its span embeddings")
    if kind == "span":
        return SpanEmbedder(model)
    backend = backend or getattr(model, "backend", None) or "torch"
    surface = SurfaceEmbedder(surface_folder, cache_file=cache_file, backend=backend, model=model)
    return surface if kind == "surface" else MixEmbedder(SpanEmbedder(model), surface)
