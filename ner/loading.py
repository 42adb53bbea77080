"""Find a checkpoint folder (local or on the hub) and read its weights, safely.

Weights are read from safetensors. A folder with only pickle weights (`pytorch_model.bin`) is
refused unless the caller opts in, because unpickling runs code from the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ner.errors import CheckpointError, PickleRefused

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HUB_FILES = [
    "config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "vocab.json",
    "merges.txt",
]


def resolve_checkpoint(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local folder as is, or a hub id downloaded to the hub cache.

    Raises:
        CheckpointError: neither a folder nor a downloadable hub id.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(
            f"{path} is a file; a model is a folder with config.json, weights and tokenizer"
        )
    text = str(name_or_path)
    if not _HUB_ID.match(text):
        raise CheckpointError(f"no model folder at {path}")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, revision=revision, allow_patterns=_HUB_FILES))
    except Exception as exc:  # network, auth, unknown repo: all mean "cannot get it"
        raise CheckpointError(
            f"{text!r} is not a local folder and could not be fetched from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}); pass the path of a downloaded checkpoint folder instead"
        ) from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (corrupt or truncated?): {exc}"
        ) from None


def read_weights(folder: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint, from `model.safetensors`, its shards, or (opt-in) pickle.

    Raises:
        PickleRefused: only `pytorch_model.bin` is present and `allow_pickle` is False.
        CheckpointError: no weights, or unreadable ones.
    """
    single = folder / "model.safetensors"
    if single.is_file():
        return _load_safetensors(single)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{index} is malformed: {exc}") from None
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(_load_safetensors(folder / shard))
        return state
    pickle = folder / "pytorch_model.bin"
    if pickle.is_file():
        if not allow_pickle:
            raise PickleRefused(
                f"{folder} holds only pickle weights (pytorch_model.bin); loading them can run "
                "arbitrary code. If you trust the file, pass allow_pickle=True (CLI: --allow-pickle), "
                "or re-save it once with "
                "span_marker's save_pretrained(..., safe_serialization=True)."
            )
        try:
            return torch.load(pickle, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{pickle} could not be read: {exc}") from None
    raise CheckpointError(f"{folder} has no weights: expected model.safetensors")
