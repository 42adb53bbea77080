"""Export a `SpanModel` to ONNX: the text pass and the marker pass as two graphs, like the torch engine.

The torch engine runs each batch's text once, keeps every layer's keys and values, then runs the
marker pairs against that cache (`ner.encoder`). The export keeps that split, so ONNX Runtime does
the same (and no more) work:

* ``text.onnx``: ``ids`` (batch, text), ``valid`` (batch, text) -> ``hidden`` (batch, text, hidden)
  and ``key_i`` / ``value_i`` (batch, heads, text, head_dim) for each layer i;
* ``markers.onnx``: ``start_pos`` / ``end_pos`` (batch, pairs), ``valid`` and the text cache ->
  ``logits`` (batch, pairs, labels) of the span classifier;
* ``boundary.onnx`` (models with a boundary head only): ``hidden`` (tokens, hidden) -> (tokens, 2).

Each graph keeps its weights in a file beside it (``text.onnx.data``, ...), which ONNX Runtime
memory-maps (`save_with_external_weights`). Batch, text and marker lengths are dynamic axes. The
folder also holds ``config.json`` (the SpanMarker config), the tokenizer files and
``spanlink-onnx.json`` (opset, precision, versions).
The marker graph holds only the two marker rows of the word matrix, not the whole table.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from ner.encoder import Encoder, Layer
from ner.onnx_format import (
    BOUNDARY_GRAPH,
    DEFAULT_OPSET,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MARKER_GRAPH,
    PRECISIONS,
    TEXT_GRAPH,
    ExportError,
    is_onnx_folder,
)

__all__ = ["MANIFEST", "PRECISIONS", "ExportError", "export_onnx", "is_onnx_folder"]

# -- the graphs -----------------------------------------------------------------------------------


class _TextGraph(nn.Module):
    """`Encoder.forward_text` with the per-layer cache as separate outputs (no stacking copy)."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, ids: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, ...]:
        positions = (torch.cumsum(torch.ones_like(ids), dim=1) + 1).to(torch.long)  # 2, 3, ... per row
        x = self.encoder.embeddings(ids, positions)
        cache: list[torch.Tensor] = []
        for layer in self.encoder.layers:
            x, k, v = layer.forward_text(x, valid)
            cache += [k, v]
        return (x, *cache)


def _marker_layer(
    layer: Layer, x: torch.Tensor, text_k: torch.Tensor, text_v: torch.Tensor, key_bias: torch.Tensor
) -> torch.Tensor:
    """`Layer.forward_markers` (inference branch) without `roll` and in-place ops, which trace badly.

    Same arithmetic in the same order: softmax over [text keys, own key, partner key] written out.
    """
    q, k, v = layer._split(x)
    p = x.shape[1] // 2
    q = q * (1.0 / math.sqrt(layer.head_dim))
    k_partner = torch.cat((k[:, :, p:], k[:, :, :p]), dim=2)
    v_partner = torch.cat((v[:, :, p:], v[:, :, :p]), dim=2)
    text = torch.matmul(q, text_k.transpose(-1, -2)) + key_bias[:, None, None, :]
    own = (q * k).sum(-1, keepdim=True)
    partner = (q * k_partner).sum(-1, keepdim=True)
    top = torch.maximum(text.amax(-1, keepdim=True), torch.maximum(own, partner))
    text = (text - top).exp()
    own = (own - top).exp()
    partner = (partner - top).exp()
    total = text.sum(-1, keepdim=True) + own + partner
    ctx = (torch.matmul(text, text_v) + own * v + partner * v_partner) / total
    return layer._finish(x, ctx)


class _MarkerGraph(nn.Module):
    """`Encoder.forward_markers` plus the span classifier, for one chunk of marker pairs."""

    def __init__(self, encoder: Encoder, classifier: nn.Linear, start_id: int, end_id: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = classifier
        emb = encoder.embeddings
        if emb.marker_rows is not None:  # trained with a frozen word matrix: the rows live apart
            rows = emb.marker_rows.detach()[[start_id - emb.first_marker_id, end_id - emb.first_marker_id]]
        else:
            rows = emb.word.weight.detach()[[start_id, end_id]]
        self.register_buffer("marker_rows", rows.clone())

    def forward(
        self, start_pos: torch.Tensor, end_pos: torch.Tensor, valid: torch.Tensor, *cache: torch.Tensor
    ):
        emb = self.encoder.embeddings
        positions = torch.cat((start_pos, end_pos), dim=1)
        which = torch.cat((torch.zeros_like(start_pos), torch.ones_like(end_pos)), dim=1)
        x = emb.norm(self.marker_rows[which] + emb.position(positions) + emb.token_type.weight[0])
        key_bias = torch.zeros_like(valid, dtype=x.dtype).masked_fill(~valid, float("-inf"))
        for i, layer in enumerate(self.encoder.layers):
            x = _marker_layer(layer, x, cache[2 * i], cache[2 * i + 1], key_bias)
        p = start_pos.shape[1]
        return self.classifier(torch.cat((x[:, :p], x[:, p:]), dim=-1))


# -- export ---------------------------------------------------------------------------------------


def _versions() -> dict[str, str | None]:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {p: version(p) for p in ("spanlink", "torch", "onnx", "onnxruntime")}


def _export(
    module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict, opset: int
) -> None:
    import warnings

    # The exporter restores the module's training flag afterwards, recursively: a wrapper left in
    # training mode (the default for a new module) would switch the caller's encoder to training.
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter: dynamic axes as given, no onnxscript needed
        )


def export_onnx(
    model,  # noqa: ANN001 - ner.SpanModel (float32, CPU); not imported to keep this module light
    out: str | Path,
    *,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    source: str = "",
) -> Path:
    """Write `model` to `out` as ONNX graphs, tokenizer files, config and manifest (module docstring).

    Args:
        model (SpanModel): a float32 torch model (as `ner.load` returns it).
        out (str | Path): the folder to write (created; existing graphs are replaced).
        quantize (str | None): "int8" for ONNX Runtime dynamic quantization of most linear layers and
            the word embeddings (weights int8, activations quantized per call). Defaults to float32.
        opset (int): ONNX opset, at least 17. Defaults to 17.
        source (str): what the model was loaded from, recorded in the manifest.

    Returns:
        Path: `out`.

    Raises:
        ExportError: onnx is not installed, the model is not float32, or the exporter failed.
    """
    if quantize not in (None, "none", "float32", "int8"):
        raise ExportError(f"quantize must be 'int8' or none, got {quantize!r}")
    precision = "int8" if quantize == "int8" else "float32"
    if getattr(model, "dtype", "float32") != "float32" or getattr(model, "encoder", None) is None:
        raise ExportError("export needs the float32 torch model (ner.load(..., dtype='float32'))")
    if opset < 17:
        raise ExportError(f"opset {opset} is too old: the graphs need opset 17 or newer")
    try:
        import onnx  # noqa: F401 - the exporter needs it
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'spanlink[onnx]'") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    encoder, classifier = model.encoder.float().cpu().eval(), model.classifier.float().cpu().eval()
    layers = len(encoder.layers)
    cache_names = [f"{kind}_{i}" for i in range(layers) for kind in ("key", "value")]
    cache_axes = {name: {0: "batch", 2: "text"} for name in cache_names}
    tok = model.tokenizer
    b, t = 2, 7
    ids = torch.full((b, t), tok.pad_id, dtype=torch.long)
    ids[:, 1:-1] = min(5, model.config.encoder.vocab_size - 1)
    valid = torch.ones((b, t), dtype=torch.bool)
    valid[1, -2:] = False
    graphs = Path(tempfile.mkdtemp(prefix="spanlink-onnx-", dir=out))
    try:
        with torch.no_grad():
            cache = _TextGraph(encoder)(ids, valid)[1:]
        _export(
            _TextGraph(encoder),
            (ids, valid),
            graphs / TEXT_GRAPH,
            ["ids", "valid"],
            ["hidden", *cache_names],
            {
                "ids": {0: "batch", 1: "text"},
                "valid": {0: "batch", 1: "text"},
                "hidden": {0: "batch", 1: "text"},
                **cache_axes,
            },
            opset,
        )
        start_pos = torch.tensor([[2, 3, 4], [2, 3, 5]])
        end_pos = torch.tensor([[2, 4, 5], [3, 4, 5]])
        _export(
            _MarkerGraph(encoder, classifier, tok.start_id, tok.end_id),
            (start_pos, end_pos, valid, *cache),
            graphs / MARKER_GRAPH,
            ["start_pos", "end_pos", "valid", *cache_names],
            ["logits"],
            {
                "start_pos": {0: "batch", 1: "pairs"},
                "end_pos": {0: "batch", 1: "pairs"},
                "valid": {0: "batch", 1: "text"},
                "logits": {0: "batch", 1: "pairs"},
                **cache_axes,
            },
            opset,
        )
        names = [TEXT_GRAPH, MARKER_GRAPH]
        if model.boundary is not None:
            boundary = model.boundary.float().cpu().eval()
            _export(
                boundary,
                (torch.zeros(t, model.hidden_size),),
                graphs / BOUNDARY_GRAPH,
                ["hidden"],
                ["logits"],
                {"hidden": {0: "tokens"}, "logits": {0: "tokens"}},
                opset,
            )
            names.append(BOUNDARY_GRAPH)
        for name in names:
            graph = graphs / name
            if precision == "int8" and name != BOUNDARY_GRAPH:  # the boundary head is one tiny product
                graph = graphs / f"int8-{name}"
                _quantize_int8(graphs / name, graph)
            save_with_external_weights(graph, graphs / "final" / name)
            for path in (graphs / "final").glob(f"{name}*"):  # the graph and its weights file
                path.replace(out / path.name)
        if model.boundary is None:
            for path in (out / BOUNDARY_GRAPH, out / f"{BOUNDARY_GRAPH}{WEIGHTS_SUFFIX}"):
                path.unlink(missing_ok=True)
    finally:
        shutil.rmtree(graphs, ignore_errors=True)
    (out / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2), encoding="utf-8")
    model.tokenizer.save(out)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "opset": opset,
        "precision": precision,
        "num_layers": layers,
        "graphs": {
            "text": TEXT_GRAPH,
            "markers": MARKER_GRAPH,
            "boundary": BOUNDARY_GRAPH if model.boundary is not None else None,
        },
        "cache_names": cache_names,
        "source": source or getattr(model, "name", ""),
        "versions": _versions(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


WEIGHTS_SUFFIX = ".data"


def save_with_external_weights(src: Path, dst: Path) -> Path:
    """Re-save the graph at ``src`` as ``dst`` plus ``dst.data``, which holds its weights.

    ONNX Runtime memory-maps external weights instead of copying them into the process, and the
    word-embedding table (250k rows, 384 MB in float32) is then read only where a text's tokens
    touch it: a service holding the default model's int8 graphs and linking's surface encoder
    stays hundreds of MB smaller than with the weights inside the graph files (README, Backends).
    """
    import onnx

    dst.parent.mkdir(parents=True, exist_ok=True)
    weights = dst.with_name(dst.name + WEIGHTS_SUFFIX)
    weights.unlink(missing_ok=True)  # onnx appends to an existing weights file
    onnx.save_model(
        onnx.load(str(src)),
        str(dst),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=weights.name,
        size_threshold=1024,
    )
    if weights.exists():  # (a graph whose tensors are all under 1 KB keeps them inside)
        weights.chmod(readable_mode(0o666))  # onnx creates it owner-only; a service may run as another user
    return dst


def readable_mode(mode: int) -> int:
    """``mode`` as this process's umask leaves it (what a plain ``open`` or ``mkdir`` would give)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _quantize_int8(src: Path, dst: Path) -> None:
    """ONNX Runtime dynamic quantization: int8 weights (per channel), activations quantized per call.

    Only matrix products with a constant weight are quantized: the attention products of two
    activations stay float32. The feed-forward output projections stay float32 too: their inputs
    (after GELU) have the widest range, and quantizing them cost the default model 0.8 CoNLL F1
    (400 test sentences: 83.94 against 84.70 for float32; 84.16 with them kept in float32).
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise ExportError("int8 export needs onnx and onnxruntime: pip install 'spanlink[onnx]'") from None
    import logging

    graph = onnx.load(str(src), load_external_data=False).graph
    keep_float = [node.name for node in graph.node if "/ffn_out" in node.name]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" note is for static quantization
    try:
        quantize_dynamic(
            src,
            dst,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=keep_float,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        root.setLevel(level)
