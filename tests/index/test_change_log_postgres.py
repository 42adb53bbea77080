"""The entity change log of a shared store stays bounded: pruned to its last generations, with
readers that fell behind the pruned part told to reload (``index.postgres``)."""

import pytest
from sqlalchemy import func, select

from index import EntityCreate, Store, postgres
from index.schema import EntityChange

pytestmark = pytest.mark.postgres


@pytest.fixture
def small_log(monkeypatch):
    monkeypatch.setattr(postgres, "CHANGE_LOG_RETAIN", 6)
    monkeypatch.setattr(postgres, "CHANGE_LOG_PRUNE_EVERY", 4)


def log_rows(store: Store) -> tuple[int, int | None]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(EntityChange)).scalar_one()
        oldest = conn.execute(select(func.min(EntityChange.generation))).scalar()
    return rows, oldest


def test_the_log_is_pruned_and_bounded(pg_url, small_log):
    with Store.open(pg_url, dim=4) as store:
        ids, sizes = [], []
        for i in range(40):
            ids.append(store.upsert_entity(EntityCreate(f"Entity {i}", "PER")).id)
            rows, oldest = log_rows(store)
            sizes.append(rows)
            generation = store.entity_generation()
            assert generation == i + 1
            # pruned to RETAIN on every PRUNE_EVERY-th commit: never more than RETAIN + PRUNE_EVERY - 1
            assert rows <= 6 + 4 - 1
            assert oldest is None or oldest > generation - 6 - 4
        assert sizes[:8] == [1, 2, 3, 4, 5, 6, 7, 6]  # the first prune, at generation 8
        assert max(sizes) == 9 and min(sizes[8:]) == 6  # bounded from then on
        # the last prune ran at generation 40: everything at or below 34 is gone
        assert log_rows(store) == (6, 35)
        assert store.entity_changes(34) == (40, set(ids[34:]))  # the log still reaches back to 34
        assert store.entity_changes(39) == (40, {ids[39]})
        assert store.entity_changes(40) == (40, set())
        assert store.entity_changes(33) == (40, None)  # pruned past: reload everything
        assert store.entity_changes(0) == (40, None)


def test_without_pruning_the_log_keeps_every_change(pg_url):
    with Store.open(pg_url, dim=4) as store:
        ids = [store.upsert_entity(EntityCreate(f"Entity {i}", "PER")).id for i in range(5)]
        assert log_rows(store) == (5, 1)
        assert store.entity_changes(0) == (5, set(ids))
