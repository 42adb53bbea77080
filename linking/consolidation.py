"""Entity-to-entity merging after ingest: undo the splits that online linking cannot avoid.

Linking is greedy and online: when "Theresa May" first appears in Czech and "Тереза Мей" in
Bulgarian before either entity knows the other's forms, two entities are born, and from then on
each attracts the mentions of its own script. Once both have gathered aliases and a centroid, the
entities themselves can be compared with the same score as a group against a candidate
(``core.decide``), using each entity's name and most frequent aliases as its forms. Because a
false merge costs more than a missed one, an entity joins another only at ``link_threshold +
merge_margin``, and only into a larger one, smallest entities first, so chains resolve in one pass.

``plan_merges`` only plans (on a copy of the table); ``Linker.consolidate`` applies the plan to
the store with ``Store.merge_entities``, and the evaluation applies it to its in-memory ids.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

from linking.core import EntityView, GroupView, MemoryEntities, decide
from linking.settings import NEVER, LinkSettings


@dataclass(frozen=True)
class PlannedMerge:
    """Merge entity ``source`` into ``target`` (ids as they are when the plan is applied in order)."""

    source: int
    target: int
    score: float


def entity_forms(entity: EntityView, limit: int) -> list[str]:
    """The entity's name and its ``limit`` most frequent aliases (its evidence as a "group")."""
    aliases = entity.aliases
    if entity.alias_counts:
        aliases = sorted(aliases, key=lambda a: -entity.alias_counts.get(a, 0))
    return [entity.name, *aliases[:limit]]


def plan_merges(table: MemoryEntities, settings: LinkSettings) -> list[PlannedMerge]:
    """Decide which entities of ``table`` are one; ``table`` itself is left unchanged.

    Args:
        table (MemoryEntities): The entities (the linker's cache, or the evaluation's table).
        settings (LinkSettings): Scores and thresholds; ``merge_margin`` and ``merge_forms`` here.

    Returns:
        list[PlannedMerge]: Merges in the order to apply them (a later step may merge an earlier
        target on; ``resolve`` gives the final home of each merged-away entity).
    """
    work = copy.deepcopy(table)
    threshold = settings.link_threshold + settings.merge_margin
    # Entities meet on their names; a surname alias scored as a surname of another entity's full
    # name would merge namesakes ("Вара" / "Varadkar"), so the inflected-surname rule is off here.
    settings = dataclasses.replace(settings, surname_cosine=NEVER)
    plan: list[PlannedMerge] = []
    for entity in sorted(work.entities.values(), key=lambda e: (e.mention_count, -e.id)):
        if entity.id not in work.entities:
            continue
        view = GroupView(
            entity_forms(entity, settings.merge_forms), entity.label, entity.vector, entity.label_group
        )
        larger = [
            c
            for c in work.candidates(view, settings)
            if c.id != entity.id and (c.mention_count, -c.id) > (entity.mention_count, -entity.id)
        ]
        decision = decide(view, larger, settings)
        if decision.entity_id is not None and decision.score >= threshold:
            plan.append(PlannedMerge(entity.id, decision.entity_id, decision.score))
            work.merge(decision.entity_id, entity.id)
    return plan


def resolve(plan: list[PlannedMerge]) -> dict[int, int]:
    """Where each merged-away entity ended up (following chains: a -> b, b -> c gives a -> c)."""
    into = {step.source: step.target for step in plan}
    final = {}
    for source in into:
        target = into[source]
        while target in into:
            target = into[target]
        final[source] = target
    return final
