"""`SpanModel`: the torch backend of `ner.engine.SpanEngine`, and the model that trains.

It holds the encoder (`ner.encoder`, which runs each batch's text once and then all marker pairs
against the cached keys and values), the span classifier and the optional boundary head as torch
modules; loads and saves SpanMarker checkpoints; and quantizes or casts them (int8, bfloat16,
float16). Planning, decoding and embeddings are the engine's, shared with the ONNX backend.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from ner.config import SpanConfig
from ner.encoder import Encoder
from ner.engine import ExtractJob, SpanEngine
from ner.errors import CheckpointError
from ner.loading import read_weights, resolve_checkpoint
from ner.segments import Segment
from ner.tokenization import SpanTokenizer

__all__ = ["BOUNDARY_BIAS", "BOUNDARY_WEIGHT", "DTYPES", "ExtractJob", "Segment", "SpanModel"]


DTYPES = ("float32", "bfloat16", "float16", "int8")
BOUNDARY_WEIGHT, BOUNDARY_BIAS = "spanlink.boundary.weight", "spanlink.boundary.bias"


def _resolve_dtype(dtype: str | torch.dtype | None) -> str:
    if dtype is None:
        return "float32"
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; expected one of {DTYPES}")
    return name


class SpanModel(SpanEngine):
    """A SpanMarker-architecture span classifier on torch. Create it with `ner.load` / `from_pretrained`.

    The API (`extract`, `embed_spans`, `score_candidates`, ...) is `SpanEngine`'s; this class adds
    devices, dtypes, `save_pretrained` and the modules that `ner.training` trains.
    """

    backend = "torch"

    def __init__(
        self,
        config: SpanConfig,
        tokenizer: SpanTokenizer,
        encoder: Encoder,
        classifier: nn.Linear,
        *,
        name: str = "",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        boundary: nn.Linear | None = None,
    ) -> None:
        super().__init__(
            config, tokenizer, name=name, boundary=boundary.eval() if boundary is not None else None
        )
        self.encoder = encoder.eval()
        self.classifier = classifier.eval()
        self.device = torch.device(device or "cpu")
        self.dtype = _resolve_dtype(dtype)
        if self.dtype == "int8":
            if self.device.type != "cpu":
                raise ValueError("dtype 'int8' (dynamic quantization) runs on the CPU only")
            self.encoder = torch.ao.quantization.quantize_dynamic(
                self.encoder, {nn.Linear}, dtype=torch.qint8
            )
        else:
            torch_dtype = getattr(torch, self.dtype)
            self.encoder.to(self.device, torch_dtype)
            self.classifier.to(self.device, torch_dtype)
            if self.boundary is not None:
                self.boundary.to(self.device, torch_dtype)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        allow_pickle: bool = False,
        revision: str | None = None,
    ) -> SpanModel:
        """Load a SpanMarker checkpoint folder or hub id; see `ner.load`."""
        folder = resolve_checkpoint(name_or_path, revision)
        config = SpanConfig.from_file(folder / "config.json")
        tokenizer = SpanTokenizer.from_folder(
            folder, config.model_max_length, config.encoder.model_type, config.cjk_words
        )
        state = read_weights(folder, allow_pickle=allow_pickle)
        encoder = Encoder(config.encoder)
        encoder.load_hf_state_dict(state)
        if "classifier.weight" not in state:
            raise CheckpointError(f"{folder}: the weights lack the span classifier ('classifier.weight')")
        weight, bias = state["classifier.weight"], state.get("classifier.bias")
        expected = (len(config.labels), 2 * config.encoder.hidden_size)
        if tuple(weight.shape) != expected:
            raise CheckpointError(
                f"{folder}: classifier.weight has shape {tuple(weight.shape)} but the config's "
                f"{len(config.labels)} labels {config.labels} and hidden size imply {expected}"
            )
        classifier = nn.Linear(expected[1], expected[0], bias=bias is not None)
        with torch.no_grad():
            classifier.weight.copy_(weight)
            if bias is not None:
                classifier.bias.copy_(bias)
        boundary = None
        if BOUNDARY_WEIGHT in state:
            boundary = nn.Linear(config.encoder.hidden_size, 2)
            with torch.no_grad():
                boundary.weight.copy_(state[BOUNDARY_WEIGHT])
                boundary.bias.copy_(state[BOUNDARY_BIAS])
        if len(tokenizer) > config.encoder.vocab_size:
            raise CheckpointError(
                f"{folder}: the tokenizer has {len(tokenizer)} tokens but the embeddings only "
                f"{config.encoder.vocab_size}; tokenizer and weights do not belong together"
            )
        return cls(
            config,
            tokenizer,
            encoder,
            classifier,
            name=str(name_or_path),
            device=device,
            dtype=dtype,
            boundary=boundary,
        )

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a SpanMarker checkpoint (config.json, model.safetensors, tokenizer) that both spanlink
        and `span_marker` load."""
        if self.dtype == "int8":
            raise ValueError("a dynamically quantized model cannot be saved; save the float model instead")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.float().cpu() for k, v in self.encoder.hf_state_dict().items()}
        state["classifier.weight"] = self.classifier.weight.detach().float().cpu().contiguous()
        if self.classifier.bias is not None:
            state["classifier.bias"] = self.classifier.bias.detach().float().cpu().contiguous()
        if self.boundary is not None:  # span_marker ignores these (with an "unused weights" warning)
            state[BOUNDARY_WEIGHT] = self.boundary.weight.detach().float().cpu().contiguous()
            state[BOUNDARY_BIAS] = self.boundary.bias.detach().float().cpu().contiguous()
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2), encoding="utf-8")
        self.tokenizer.save(folder)
        return folder

    # -- the passes on torch -----------------------------------------------------------------------

    def _encode_text(self, batch: list[Segment]) -> tuple[torch.Tensor, list, torch.Tensor]:
        ids, valid = (torch.from_numpy(a) for a in self._text_arrays(batch))
        positions = (torch.arange(ids.shape[1]) + 2).expand(*ids.shape)
        ids, valid, positions = ids.to(self.device), valid.to(self.device), positions.to(self.device)
        hidden, cache = self.encoder.forward_text(ids, positions, valid)
        return hidden, cache, valid

    def _logits(self, batch: list[Segment], cache: list, valid: torch.Tensor) -> torch.Tensor:
        """(batch, most spans, labels) logits for the spans of each segment (padding rows are junk)."""
        start_pos, end_pos = (torch.from_numpy(a) for a in self._marker_arrays(batch))
        p = start_pos.shape[1]
        chunk = max(1, self.marker_budget // (2 * len(batch)))
        logits = []
        for c0 in range(0, p, chunk):
            c1 = min(p, c0 + chunk)
            n = c1 - c0
            ids = torch.cat(
                (
                    torch.full((len(batch), n), self.tokenizer.start_id),
                    torch.full((len(batch), n), self.tokenizer.end_id),
                ),
                dim=1,
            )
            pos = torch.cat((start_pos[:, c0:c1], end_pos[:, c0:c1]), dim=1)
            states = self.encoder.forward_markers(ids.to(self.device), pos.to(self.device), cache, valid)
            features = torch.cat((states[:, :n], states[:, n:]), dim=-1)
            if self.classifier.training:
                features = torch.nn.functional.dropout(features, self.config.encoder.hidden_dropout_prob)
            logits.append(self.classifier(features))
        return torch.cat(logits, dim=1)

    def boundary_logits(
        self, hidden: torch.Tensor, seg: Segment, row: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-word (start, end) logits: the head on each word's first and last subword state."""
        first, last = self._word_edges(seg)
        logits = self.boundary(hidden[row])  # (tokens, 2)
        return logits[first, 0], logits[last, 1]

    def _inference(self) -> AbstractContextManager:
        return torch.inference_mode()

    def _boundary_probs(self, hidden: torch.Tensor, seg: Segment, row: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.boundary_logits(hidden, seg, row)
        return torch.sigmoid(start.float()).cpu().numpy(), torch.sigmoid(end.float()).cpu().numpy()

    def _class_probs(self, batch: list[Segment], cache: list, valid: torch.Tensor) -> np.ndarray:
        return torch.softmax(self._logits(batch, cache, valid).float(), dim=-1).cpu().numpy()

    def _rows_mean(self, states: torch.Tensor, rows: slice | list[int]) -> np.ndarray:
        return states[rows].float().mean(0).cpu().numpy()
