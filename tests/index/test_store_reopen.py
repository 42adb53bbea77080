"""Open-time check: a FAISS file that matches the database is loaded, any other is rebuilt."""

import threading

import numpy as np
import pytest
from conftest import DIM, assert_consistent, make_doc
from sqlalchemy import text

from index import Store, StoreClosed


def fill(store, rng, n_docs=6):
    for i in range(n_docs):
        store.add_document(make_doc(f"d{i}", [f"N{i}a", f"N{i}b"], rng.standard_normal((2, DIM))))


def reasons(store):
    return {c.kind: (c.loaded, c.reason) for c in store.open_checks}


def test_clean_close_then_reopen_loads_files(tmp_path, rng):
    with Store.open(tmp_path / "s.db", dim=DIM) as store:
        fill(store, rng)
        query = rng.standard_normal(DIM)
        before = [(h.entity.id, round(h.score, 5)) for h in store.similar_entities(query, k=5)]
    assert (tmp_path / "s.db.entities.faiss").exists() and (tmp_path / "s.db.mentions.faiss").exists()
    with Store.open(tmp_path / "s.db") as store:
        assert all(loaded for loaded, _ in reasons(store).values()), reasons(store)
        assert [(h.entity.id, round(h.score, 5)) for h in store.similar_entities(query, k=5)] == before
        assert_consistent(store)


def test_unsaved_changes_are_rebuilt(tmp_path, rng):
    store = Store.open(tmp_path / "s.db", dim=DIM)
    fill(store, rng, 3)
    store.save_vectors()
    fill(store, rng, 5)  # replaces d0..d2 (new centroids, same entity count) and adds d3, d4
    store.delete_document(external_id="d4")
    store.close(save=False)  # as if the process died after the commits
    with Store.open(tmp_path / "s.db") as reopened:
        assert reasons(reopened)["entities"][0] is False
        assert "generation" in reasons(reopened)["entities"][1]
        assert_consistent(reopened)
        assert reopened.stats().mention_vectors == reopened.stats().mentions == 8


@pytest.mark.parametrize("factory", ["Flat", "HNSW16"])
def test_stale_mention_index_is_repaired_in_place_not_rebuilt(tmp_path, rng, factory):
    store = Store.open(tmp_path / "s.db", dim=DIM, factory=factory)
    fill(store, rng, 8)
    store.save_vectors()
    late = rng.standard_normal((2, DIM))
    store.add_document(make_doc("late", ["Late A", "Late B"], late))
    store.delete_document(external_id="d1")
    store.close(save=False)  # died before saving: FAISS lacks "late" and still holds d1's mentions
    with Store.open(tmp_path / "s.db") as reopened:
        loaded, reason = reasons(reopened)["mentions"]
        assert loaded and "2 added, 2 removed" in reason, reason
        assert reasons(reopened)["entities"][0] is False  # centroids change in place: rebuilt
        assert_consistent(reopened)
        hit = reopened.similar_mentions(late[0], k=1)[0]
        assert hit.mention.text == "Late A" and hit.score == pytest.approx(1.0, abs=1e-5)
    with Store.open(tmp_path / "s.db") as again:  # the repaired file was saved
        assert all(loaded for loaded, _ in reasons(again).values()), reasons(again)


def test_a_large_change_is_rebuilt_rather_than_patched(tmp_path, rng, monkeypatch):
    import index.sync

    monkeypatch.setattr(index.sync, "REPAIR_ALWAYS", 0)
    monkeypatch.setattr(index.sync, "REPAIR_MAX_FRACTION", 0.05)
    store = Store.open(tmp_path / "s.db", dim=DIM)
    fill(store, rng, 8)
    store.save_vectors()
    store.delete_document(external_id="d1")  # 2 of 14 vectors: over 5%
    store.close(save=False)
    with Store.open(tmp_path / "s.db") as reopened:
        assert reasons(reopened)["mentions"][0] is False
        assert_consistent(reopened)


def test_centroid_change_with_same_ids_is_detected(tmp_path, rng):
    store = Store.open(tmp_path / "s.db", dim=DIM)
    first = store.add_document(make_doc("d0", ["Ann"], rng.standard_normal((1, DIM)))).document
    ann = first.mentions[0].entity_id
    store.save_vectors()
    new_vector = rng.standard_normal(DIM)
    store.add_document(make_doc("d1", ["Ann"], new_vector[None], entity_ids=[ann]))
    store.delete_document(external_id="d1")
    store.add_document(make_doc("d1", ["Ann"], new_vector[None], entity_ids=[ann]))
    store.delete_document(external_id="d0")  # same entity and mention counts as at save time
    store.close(save=False)
    with Store.open(tmp_path / "s.db") as reopened:
        assert reasons(reopened)["entities"][0] is False
        hit = reopened.similar_entities(new_vector, k=1)[0]
        assert hit.entity.id == ann and hit.score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage"])
def test_damaged_file_is_rebuilt(tmp_path, rng, damage):
    with Store.open(tmp_path / "s.db", dim=DIM) as store:
        fill(store, rng)
    path = tmp_path / "s.db.mentions.faiss"
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.write_bytes(b"\x00" * 64)
    with Store.open(tmp_path / "s.db") as store:
        assert reasons(store)["mentions"][0] is False and reasons(store)["entities"][0] is True
        assert_consistent(store)


def test_rows_deleted_behind_the_store_are_detected(tmp_path, rng):
    with Store.open(tmp_path / "s.db", dim=DIM) as store:
        fill(store, rng)
        with store.engine.begin() as conn:  # another tool edits the database directly
            conn.execute(text("DELETE FROM mentions WHERE id = (SELECT max(id) FROM mentions)"))
        report = store.check()
        assert report.faiss_mismatch == ["mentions"] and len(report.bad_mention_counts) == 1
    with Store.open(tmp_path / "s.db") as store:
        assert "holds 12 vectors, the database 11" in reasons(store)["mentions"][1]
        assert store.check().faiss_mismatch == []


def test_changing_the_factory_rebuilds(tmp_path, rng):
    with Store.open(tmp_path / "s.db", dim=DIM) as store:
        fill(store, rng)
        query = rng.standard_normal(DIM)
        flat = [h.entity.id for h in store.similar_entities(query, k=3)]
    with Store.open(tmp_path / "s.db", factory="HNSW16") as store:
        assert "factory changed" in reasons(store)["entities"][1]
        assert store.stats().effective_factories == {"entities": "HNSW16", "mentions": "HNSW16"}
        assert [h.entity.id for h in store.similar_entities(query, k=3)] == flat  # tiny index: exact
    with Store.open(tmp_path / "s.db", factory="HNSW16") as store:
        assert all(loaded for loaded, _ in reasons(store).values())


def test_hnsw_tombstones_survive_reopen_and_compact(tmp_path, rng):
    with Store.open(tmp_path / "s.db", dim=DIM, factory="HNSW16") as store:
        fill(store, rng, 10)
        store.delete_document(external_id="d0")
        assert_consistent(store)
    with Store.open(tmp_path / "s.db") as store:
        assert reasons(store)["mentions"][0] is True, reasons(store)
        assert_consistent(store)
        for i in range(1, 10):  # tombstones pass the threshold: the store compacts itself
            store.delete_document(external_id=f"d{i}")
            assert_consistent(store)
        assert store.stats().mention_vectors == 0


def test_closed_store_refuses_use(tmp_path):
    store = Store.open(tmp_path / "s.db", dim=DIM)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosed):
        store.stats()


def test_concurrent_writers_and_readers_stay_consistent(store, rng):
    vectors = rng.standard_normal((4, 50, DIM)).astype(np.float32)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(25):
                store.add_document(
                    make_doc(f"w{w}-{i}", [f"P{w}x{i}", f"Q{w}x{i}"], vectors[w, 2 * i : 2 * i + 2])
                )
                if i % 5 == 4:
                    store.delete_document(external_id=f"w{w}-{i - 2}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                store.similar_mentions(rng.standard_normal(DIM), k=3)
                store.search_entities("p")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)] + [
        threading.Thread(target=reader)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    stats = store.stats()
    assert stats.documents == 4 * 20 and stats.mentions == 4 * 40 == stats.mention_vectors
    assert stats.entities == 4 * 40 == stats.entity_vectors
    assert_consistent(store)
