"""The shipped default model format: a float16 delta over the base encoder."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

import ner
from ner.building import new_span_model
from ner.default_model import export_delta, is_delta_folder, load_delta

TEXTS = [
    "Angela Merkel met Emmanuel Macron in Paris.",
    "北京大学位于中国北京市。",
    "Владимир Путин посетил Москву.",
]


@pytest.fixture
def base(tiny_checkpoint):
    return tiny_checkpoint.parent / "encoder"


def test_delta_round_trip(base, tmp_path):
    model = new_span_model(base, ["LOC", "PER"], seed=3)
    folder = export_delta(model, tmp_path / "delta", "tiny", "0" * 64, card="# card\\n")
    assert is_delta_folder(folder) and (folder / "README.md").exists()
    tensors = load_file(str(folder / "delta.safetensors"))
    assert not any("word_embeddings" in k for k in tensors), "the base's word matrix is not shipped"
    assert all(t.dtype.is_floating_point and t.element_size() == 2 for t in tensors.values())
    again = load_delta(folder, base_folder=base)
    assert again.config.cjk_words and again.labels == ["LOC", "PER"]
    for a, b in zip(model.extract(TEXTS), again.extract(TEXTS)):
        assert [(e.start, e.end, e.label) for e in a] == [(e.start, e.end, e.label) for e in b]
        assert all(abs(x.score - y.score) < 2e-2 for x, y in zip(a, b))  # float16 rounding


def test_default_folder_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SPANLINK_DEFAULT_MODEL", str(tmp_path / "none"))
    with pytest.raises(ner.CheckpointError, match="no default model at"):
        ner.load()
