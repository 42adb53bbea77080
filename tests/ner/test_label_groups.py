"""Models with a label hierarchy (the `fine` model): entity groups, filters by group, ner.load("fine")."""

from __future__ import annotations

from collections import Counter

import pytest

import ner
from tests.conftest import TINY_FINE_GROUPS
from tests.ner.sentences import SENTENCES

GROUP_OF = dict(TINY_FINE_GROUPS)


@pytest.fixture(scope="module")
def fine_model(tiny_fine_checkpoint):
    return ner.load(tiny_fine_checkpoint)


@pytest.fixture(scope="module")
def found(fine_model):
    return fine_model.extract(SENTENCES, strip_spaces=True)


def test_entities_carry_their_group(fine_model, found):
    assert fine_model.config.label_groups == GROUP_OF
    assert fine_model.groups == ["PER", "GRP", "LOC"]
    entities = [e for row in found for e in row]
    labels = Counter(e.label for e in entities)
    assert set(labels) == set(GROUP_OF), "the fixture model predicts every fine type"
    assert all(e.group == GROUP_OF[e.label] for e in entities)
    assert all(e.to_dict()["group"] == GROUP_OF[e.label] for e in entities)


def test_flat_models_group_is_the_label(tiny_model):
    entities = [e for row in tiny_model.extract(SENTENCES, strip_spaces=True) for e in row]
    assert entities and all(e.group == e.label for e in entities)
    assert tiny_model.groups == tiny_model.labels
    assert tiny_model.expand_labels(["PER"]) == {"PER"}


@pytest.mark.parametrize(
    ("wanted", "kept"),
    [
        (["PER"], {"Artist", "Politician"}),
        (["Artist"], {"Artist"}),
        (["GRP", "HumanSettlement"], {"SportsGRP", "PublicCorp", "HumanSettlement"}),
        (["PER", "Artist"], {"Artist", "Politician"}),
    ],
)
def test_label_filter_understands_groups(fine_model, found, wanted, kept):
    assert fine_model.expand_labels(wanted) == kept
    filtered = fine_model.extract(SENTENCES, strip_spaces=True, labels=wanted)
    expected = [[e for e in row if e.label in kept] for row in found]
    assert [[(e.start, e.end, e.label) for e in row] for row in filtered] == [
        [(e.start, e.end, e.label) for e in row] for row in expected
    ]
    assert any(expected), "the filter keeps something"
    assert fine_model.extract(SENTENCES, strip_spaces=True, labels=[]) == found  # empty: no filter
    one = fine_model.extract(SENTENCES[0], strip_spaces=True, labels=wanted)
    assert [(e.start, e.end) for e in one] == [(e.start, e.end) for e in expected[0]]


def test_unknown_filter_label_is_a_clear_error(fine_model):
    with pytest.raises(ner.InputError, match=r"unknown labels \['Person'\].*groups \['PER', 'GRP', 'LOC'\]"):
        fine_model.extract("Angela Merkel", labels=["Person", "PER"])


def test_hierarchy_survives_save_and_load(fine_model, tmp_path):
    again = ner.load(fine_model.save_pretrained(tmp_path / "saved"))
    assert again.config.label_groups == GROUP_OF


def test_fine_model_by_name(tiny_fine_checkpoint, monkeypatch):
    monkeypatch.setenv("SPANLINK_FINE_MODEL", str(tiny_fine_checkpoint))
    model = ner.load("fine")
    assert model.config.label_groups == GROUP_OF
    assert model.extract("Angela Merkel met Emmanuel Macron in Paris on Monday.")[0].group in {
        "PER",
        "GRP",
        "LOC",
    }


def test_fine_model_absent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SPANLINK_FINE_MODEL", str(tmp_path / "none"))
    with pytest.raises(ner.CheckpointError, match="the fine model is not in this install"):
        ner.load("fine")
    with pytest.raises(ner.CheckpointError, match="the fine model is not in this install"):
        ner.load("fine", backend="onnx")


def test_onnx_export_keeps_the_hierarchy(fine_model, found, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from ner.onnx_export import export_onnx

    onnx_model = ner.load(export_onnx(fine_model, tmp_path / "onnx"))
    assert onnx_model.config.label_groups == GROUP_OF
    again = onnx_model.extract(SENTENCES, strip_spaces=True, labels=["PER"])
    expected = [[(e.start, e.end, e.label, e.group) for e in row if e.group == "PER"] for row in found]
    assert [[(e.start, e.end, e.label, e.group) for e in row] for row in again] == expected


def test_a_delta_folder_keeps_the_hierarchy(tiny_checkpoint, tmp_path, monkeypatch):
    """How data/fine-model ships: `export_delta` of a model whose config has the hierarchy."""
    from ner.building import new_span_model
    from ner.default_model import export_delta, load_delta

    base = tiny_checkpoint.parent / "encoder"
    model = new_span_model(base, sorted(GROUP_OF), seed=3)
    model.config.label_groups = dict(GROUP_OF)
    folder = export_delta(model, tmp_path / "fine-model", "tiny", "0" * 64)
    again = load_delta(folder, base_folder=base)
    assert again.config.label_groups == GROUP_OF and sorted(again.groups) == ["GRP", "LOC", "PER"]
    entities = [e for row in again.extract(SENTENCES, strip_spaces=True) for e in row]
    assert entities and all(e.group == GROUP_OF[e.label] for e in entities)
