"""Label hierarchies: fine entity types grouped under coarse ones (MultiCoNER's 33 types in 6 groups).

A model with a hierarchy keeps its fine types as classifier labels and records each type's group in
its config (`SpanConfig.label_groups`). Users may then ask for a group where they would ask for a
label (``labels=["PER"]`` means every person subtype), linking compares groups rather than fine
types, and training can mix corpora annotated only with groups (CoNLL's PER/ORG/LOC) with fully
fine-annotated ones: a coarse span may be any fine type of its group (`ner.training_data`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: MultiCoNER v2 (SemEval-2023 Task 2): fine type -> group.
MULTICONER_GROUPS: dict[str, str] = {
    **dict.fromkeys(
        ("Artist", "Athlete", "Politician", "Scientist", "SportsManager", "Cleric", "OtherPER"), "PER"
    ),
    **dict.fromkeys(
        (
            "MusicalGRP",
            "PublicCorp",
            "PrivateCorp",
            "AerospaceManufacturer",
            "CarManufacturer",
            "SportsGRP",
            "ORG",
        ),
        "GRP",
    ),
    **dict.fromkeys(("Facility", "HumanSettlement", "Station", "OtherLOC"), "LOC"),
    **dict.fromkeys(("VisualWork", "MusicalWork", "WrittenWork", "ArtWork", "Software"), "CW"),
    **dict.fromkeys(("Clothing", "Vehicle", "Food", "Drink", "OtherPROD"), "PROD"),
    **dict.fromkeys(
        ("Medication/Vaccine", "MedicalProcedure", "AnatomicalStructure", "Symptom", "Disease"), "MED"
    ),
}

#: Named hierarchies `spanlink train --label-groups` accepts besides a JSON file.
PRESETS: dict[str, dict[str, str]] = {"multiconer": MULTICONER_GROUPS}


def groups(label_groups: Mapping[str, str]) -> list[str]:
    """The group names, in first-seen order."""
    return list(dict.fromkeys(label_groups.values()))


def members(label_groups: Mapping[str, str], group: str) -> list[str]:
    """The fine labels of a group."""
    return [label for label, g in label_groups.items() if g == group]


def expand(label_groups: Mapping[str, str], wanted: Iterable[str]) -> set[str]:
    """Labels a filter means: a group name stands for all its members, a fine label for itself."""
    out: set[str] = set()
    for name in wanted:
        inside = members(label_groups, name)
        out.update(inside or [name])
    return out
