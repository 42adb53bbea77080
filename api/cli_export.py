"""`spanlink export`: a model as ONNX graphs for ONNX Runtime (`ner.load(DIR, backend="onnx")`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli import app, fail


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the export to.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Checkpoint folder, hub id, or embedded model: default (default), fine."
        ),
    ] = None,
    export_format: Annotated[
        str, typer.Option("--format", help="Export format; only onnx for now.")
    ] = "onnx",
    quantize: Annotated[
        str | None, typer.Option(help="int8: ONNX Runtime dynamic quantization (smaller, faster, not exact).")
    ] = None,
    opset: Annotated[int, typer.Option(min=17, help="ONNX opset.")] = 17,
    allow_pickle: Annotated[
        bool, typer.Option(help="Accept pickle-only weights (runs code from the file).")
    ] = False,
    surface: Annotated[
        bool,
        typer.Option(
            help="Bundle the surface encoder of linking (e5-small, float32, ~470 MB) as OUT/surface, so "
            "that serving with surface or mix vectors (the default) needs no torch."
        ),
    ] = True,
) -> None:
    """Export a model: text and marker graphs (+ boundary head), tokenizer, config and a manifest.

    Load the folder with `ner.load(OUT)` (the onnx backend is chosen from the folder) or serve it with
    `spanlink serve --model OUT`: on ONNX Runtime, without importing torch (with --no-surface: only
    with --vectors span, or torch installed to export the surface encoder into the cache).
    """
    import json

    import ner
    from linking.surface_onnx import SURFACE_SUBFOLDER, export_surface
    from ner.base_encoder import ensure_base_encoder
    from ner.onnx_export import MANIFEST, export_onnx

    if export_format != "onnx":
        raise fail(f"unknown export format {export_format!r}; spanlink exports onnx")
    if quantize not in (None, "none", "int8"):
        raise fail(f"--quantize must be int8 or none, got {quantize!r}")
    try:
        span_model = ner.load(model, allow_pickle=allow_pickle, backend="torch")
        export_onnx(span_model, out, quantize=quantize, opset=opset, source=model or "default")
        if surface:
            export_surface(ensure_base_encoder(), out / SURFACE_SUBFOLDER, opset=opset)
    except (ner.NerError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    summary = {"out": str(out), **{k: manifest[k] for k in ("precision", "opset", "graphs")}}
    typer.echo(json.dumps({**summary, "surface": str(out / SURFACE_SUBFOLDER) if surface else None}))
