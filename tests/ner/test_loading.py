"""Loading SpanMarker checkpoints: what works, and the clear errors for what does not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ner
from ner.config import SpanConfig, reduce_labels


@pytest.fixture
def ckpt_copy(tiny_checkpoint, tmp_path) -> Path:
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    return folder


def _edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_load_reads_everything_from_the_folder(tiny_checkpoint, tmp_path):
    # `_name_or_path` points at a folder that no longer exists: nothing may be read from it.
    folder = tmp_path / "moved"
    shutil.copytree(tiny_checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    config["encoder"]["_name_or_path"] = "/nonexistent/or-a-hub-id"
    (folder / "config.json").write_text(json.dumps(config))
    model = ner.load(folder)
    assert model.labels == ["LOC", "MISC", "ORG", "PER"]
    assert model.config.entity_max_length == 8
    assert model.extract("Angela Merkel met Emmanuel Macron in Paris.") == ner.load(tiny_checkpoint).extract(
        "Angela Merkel met Emmanuel Macron in Paris."
    )


def test_missing_folder_and_file_paths(tmp_path):
    with pytest.raises(ner.CheckpointError, match="no model folder"):
        ner.load(tmp_path / "nope")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(ner.CheckpointError, match="is a file"):
        ner.load(tmp_path / "file.bin")


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ner.CheckpointError, match="could not be fetched from the Hugging Face hub"):
        ner.load("tomaarsen/span-marker-mbert-base-multinerd")


def test_not_a_span_marker_config(ckpt_copy):
    _edit_config(ckpt_copy, model_type="bert")
    with pytest.raises(ner.CheckpointError, match="expected 'span-marker'"):
        ner.load(ckpt_copy)


def test_invalid_json_config(ckpt_copy):
    (ckpt_copy / "config.json").write_text("{not json")
    with pytest.raises(ner.CheckpointError, match="not valid JSON"):
        ner.load(ckpt_copy)


def test_unsupported_encoder(ckpt_copy):
    config = json.loads((ckpt_copy / "config.json").read_text())
    config["encoder"]["model_type"] = "deberta-v2"
    (ckpt_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ner.CheckpointError, match="deberta-v2.*not supported"):
        ner.load(ckpt_copy)


def test_corrupt_safetensors(ckpt_copy):
    weights = ckpt_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ner.CheckpointError, match="not a readable safetensors file"):
        ner.load(ckpt_copy)


def test_pickle_only_weights_are_refused_unless_allowed(ckpt_copy):
    state = load_file(str(ckpt_copy / "model.safetensors"))
    (ckpt_copy / "model.safetensors").unlink()
    torch.save(state, ckpt_copy / "pytorch_model.bin")
    with pytest.raises(ner.PickleRefused, match="allow_pickle=True"):
        ner.load(ckpt_copy)
    model = ner.load(ckpt_copy, allow_pickle=True)
    assert len(model.extract(["Paris and Berlin"])) == 1


def test_no_weights(ckpt_copy):
    (ckpt_copy / "model.safetensors").unlink()
    with pytest.raises(ner.CheckpointError, match="has no weights"):
        ner.load(ckpt_copy)


def test_labels_that_do_not_fit_the_classifier(ckpt_copy):
    _edit_config(ckpt_copy, id2label={"0": "O", "1": "PER"}, label2id={"O": 0, "PER": 1})
    with pytest.raises(ner.CheckpointError, match="classifier.weight has shape"):
        ner.load(ckpt_copy)


def test_weights_of_another_shape(ckpt_copy):
    config = json.loads((ckpt_copy / "config.json").read_text())
    config["encoder"]["hidden_size"] = 64
    (ckpt_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ner.CheckpointError, match="has shape"):
        ner.load(ckpt_copy)


def test_missing_tensor(ckpt_copy):
    from safetensors.torch import save_file

    state = load_file(str(ckpt_copy / "model.safetensors"))
    del state["encoder.encoder.layer.1.output.dense.weight"]
    save_file(state, str(ckpt_copy / "model.safetensors"))
    with pytest.raises(ner.CheckpointError, match="layer.1.output.dense.weight"):
        ner.load(ckpt_copy)


def test_unknown_dtype(tiny_checkpoint):
    with pytest.raises(ValueError, match="dtype 'float8'"):
        ner.load(tiny_checkpoint, dtype="float8")


def test_save_pretrained_round_trip(tiny_model, tmp_path):
    texts = ["Angela Merkel met Emmanuel Macron in Paris.", "Владимир Путин посетил Москву."]
    before = tiny_model.extract(texts, embeddings=True)
    folder = tiny_model.save_pretrained(tmp_path / "saved")
    assert (folder / "model.safetensors").exists() and not (folder / "pytorch_model.bin").exists()
    again = ner.load(folder).extract(texts, embeddings=True)
    for a_list, b_list in zip(before, again):
        assert [(a.start, a.end, a.label) for a in a_list] == [(b.start, b.end, b.label) for b in b_list]
        assert all(abs(a.score - b.score) < 1e-6 for a, b in zip(a_list, b_list))


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], ["O", "LOC", "PER"]),  # IOB2
        (["O", "B-PER", "I-PER", "E-PER", "S-PER", "S-ORG"], ["O", "ORG", "PER"]),  # BIOES
        (["O", "B-LOC", "I-LOC", "L-LOC", "U-LOC"], ["O", "LOC"]),  # BILOU
        (["O", "person", "place"], ["O", "person", "place"]),  # no scheme: kept as is
        (["O", "B-", "LOC"], ["O", "B-", "LOC"]),  # "B-" is too short to count as schemed (SpanMarker rule)
    ],
)
def test_label_reduction(labels, expected):
    assert reduce_labels(labels) == expected


def test_config_prefers_reduced_top_level_labels(tiny_checkpoint):
    raw = json.loads((tiny_checkpoint / "config.json").read_text())
    config = SpanConfig.from_dict(raw)
    assert config.labels == ["O", "LOC", "MISC", "ORG", "PER"]
    assert config.outside_id == 0
    # A checkpoint whose top-level labels were dropped falls back to the encoder's, reduced.
    raw.pop("id2label")
    raw.pop("id2reduced_id")
    assert SpanConfig.from_dict(raw).labels == ["O", "LOC", "MISC", "ORG", "PER"]
