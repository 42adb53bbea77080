"""The shipped `fine` model (data/fine-model): loads offline by name, with its label hierarchy."""

from __future__ import annotations

import json

import ner
from ner.default_model import embedded_model_dir
from ner.labels import MULTICONER_GROUPS


def test_fine_model_ships_as_a_small_delta_with_the_multiconer_hierarchy():
    folder = embedded_model_dir("fine")
    assert (folder / "delta.safetensors").stat().st_size < 50e6, "the issue caps the delta at 50 MB"
    assert "## Learning curve" in (folder / "README.md").read_text(encoding="utf-8")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["spanlink_label_groups"] == MULTICONER_GROUPS


def test_fine_model_finds_typed_entities_with_their_groups():
    model = ner.load("fine")
    assert model.config.label_groups == MULTICONER_GROUPS
    text = "Angela Merkel met Emmanuel Macron in Paris."
    found = model.extract(text)
    by_text = {e.text: e for e in found}
    assert {"Angela Merkel", "Emmanuel Macron", "Paris"} <= set(by_text)
    assert by_text["Paris"].group == "LOC" and by_text["Angela Merkel"].group == "PER"
    assert all(e.group == MULTICONER_GROUPS[e.label] for e in found)
    people = model.extract(text, labels=["PER"])
    assert {e.text for e in people} == {"Angela Merkel", "Emmanuel Macron"}
