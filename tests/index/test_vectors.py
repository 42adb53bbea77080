"""VectorIndex: exact and approximate search against brute force, removal, atomic save/load."""

import os

import numpy as np
import pytest
from conftest import DIM, clustered

from index import InvalidInput, VectorIndex
from index.vectors import normalize_rows


def exact_topk(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int):
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def assert_same_hits_allowing_ties(scores, ids, ref_scores, ref_ids, atol=1e-5):
    """Results equal the reference, but ids may swap among equal scores (faiss check_ref_knn_with_draws)."""
    np.testing.assert_allclose(scores, ref_scores, atol=atol)
    for row in range(len(ids)):
        for value in np.unique(np.round(ref_scores[row], 4)):
            mask_ref = np.isclose(ref_scores[row], value, atol=atol)
            if mask_ref.all() or mask_ref[-1]:
                continue  # ties at the cut-off may legitimately pick different ids
            assert set(ids[row][np.isclose(scores[row], value, atol=atol)]) == set(ref_ids[row][mask_ref])


@pytest.fixture
def data(rng):
    _, vectors, _ = clustered(rng, 20, 25)
    vectors = normalize_rows(vectors, DIM)
    ids = rng.permutation(10_000)[: len(vectors)].astype(np.int64)  # sparse, unordered database ids
    queries = normalize_rows(rng.standard_normal((30, DIM)), DIM)
    return ids, vectors, queries


def test_flat_equals_brute_force(data):
    ids, vectors, queries = data
    index = VectorIndex.build(DIM, "Flat", ids, vectors)
    scores, found = index.search(queries, 10)
    assert_same_hits_allowing_ties(scores, found, *exact_topk(vectors, ids, queries, 10))
    np.testing.assert_array_equal(index.ids(), np.sort(ids))


def test_ties_are_tolerated_by_the_comparison():
    vectors = normalize_rows(np.repeat(np.eye(DIM, dtype=np.float32)[:1], 5, axis=0), DIM)
    ids = np.arange(5, dtype=np.int64) * 7
    index = VectorIndex.build(DIM, "Flat", ids, vectors)
    scores, found = index.search(vectors[:1], 3)
    ref_scores, ref_ids = exact_topk(vectors, ids, vectors[:1], 3)
    assert_same_hits_allowing_ties(scores, found, ref_scores, ref_ids)
    assert set(found[0]) <= set(ids)


def test_hnsw_recall_against_flat(data):
    ids, vectors, queries = data
    hnsw = VectorIndex.build(DIM, "HNSW16", ids, vectors, ef_search=64)
    _, approx = hnsw.search(queries, 10)
    _, exact = exact_topk(vectors, ids, queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95


@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "HNSW16_SQ8", "IVF8,Flat"])  # all but Flat: tombstones
def test_remove_and_replace(data, factory):
    ids, vectors, queries = data
    index = VectorIndex.build(DIM, factory, ids, vectors, nprobe=8)
    assert index.effective_factory == factory
    gone = ids[:50]
    index.apply(remove=gone)
    assert index.ntotal == len(ids) - 50
    np.testing.assert_array_equal(index.ids(), np.sort(ids[50:]))
    _, found = index.search(vectors[:50], 5)
    assert not set(found.ravel()) & set(gone.tolist())
    # Replacing a vector moves the id: searching by the new vector finds it first.
    new_vector = normalize_rows(-vectors[60], DIM)
    index.apply(ids=ids[60:61], vectors=new_vector)
    assert index.ntotal == len(ids) - 50
    scores, found = index.search(new_vector, 1)
    assert found[0, 0] == ids[60] and scores[0, 0] == pytest.approx(
        1.0, abs=1e-2 if "SQ8" in factory else 1e-5
    )
    _, found = index.search(vectors[60:61], 20)
    assert ids[60] not in found[0][:1]
    # A small move is written in place in Flat storage (no tombstone) and found with its new score;
    # other storages (SQ8, IVF lists) tombstone the old slot and add the vector again.
    dead_before = index._index.ntotal - index.ntotal
    nudged = normalize_rows(vectors[70] + 0.05 * normalize_rows(vectors[71], DIM)[0], DIM)
    index.apply(ids=ids[70:71], vectors=nudged)
    in_place = factory in ("Flat", "HNSW16")
    assert index._index.ntotal - index.ntotal == dead_before + (not in_place)
    assert index.ntotal == len(ids) - 50
    scores, found = index.search(nudged, 1)
    assert found[0, 0] == ids[70] and scores[0, 0] == pytest.approx(
        1.0, abs=1e-2 if "SQ8" in factory else 1e-5
    )
    np.testing.assert_array_equal(index.ids(), np.sort(ids[50:]))


@pytest.mark.parametrize("factory", ["Flat", "HNSW16", "IVF8,Flat"])
def test_save_and_load_round_trip(tmp_path, data, factory):
    ids, vectors, queries = data
    index = VectorIndex.build(DIM, factory, ids, vectors, nprobe=8)
    index.apply(remove=ids[:3])
    index.generation = 42
    path = tmp_path / "v.faiss"
    index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["v.faiss"]  # no temp file left behind
    loaded = VectorIndex.load(path)
    assert loaded is not None
    assert (loaded.factory, loaded.generation, loaded.dim) == (factory, 42, DIM)
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    np.testing.assert_array_equal(loaded.search(queries, 5)[1], index.search(queries, 5)[1])


def test_unreadable_file_loads_as_none(tmp_path):
    path = tmp_path / "v.faiss"
    assert VectorIndex.load(path) is None
    path.write_bytes(b"SPLKVEC1 garbage")
    assert VectorIndex.load(path) is None


def test_ivf_falls_back_to_flat_until_it_can_train(rng):
    few = normalize_rows(rng.standard_normal((20, DIM)), DIM)
    index = VectorIndex.build(DIM, "IVF8,Flat", np.arange(20), few)
    assert index.effective_factory == "Flat" and index.factory == "IVF8,Flat"
    many = normalize_rows(rng.standard_normal((8 * 39, DIM)), DIM)
    index = VectorIndex.build(DIM, "IVF8,Flat", np.arange(len(many)), many, nprobe=8)
    assert index.effective_factory == "IVF8,Flat"
    _, found = index.search(many[:5], 1)
    assert found[:, 0].tolist() == [0, 1, 2, 3, 4]  # nprobe = nlist: exact


def test_bad_input_is_refused():
    with pytest.raises(InvalidInput):
        normalize_rows(np.zeros(DIM), DIM)
    with pytest.raises(InvalidInput):
        normalize_rows(np.ones(DIM + 1), DIM)
    with pytest.raises(InvalidInput):
        normalize_rows(np.full(DIM, np.nan), DIM)
    with pytest.raises(InvalidInput, match="factory"):
        VectorIndex.build(DIM, "NotAnIndex", np.arange(1), normalize_rows(np.ones(DIM), DIM))


def test_bulk_builds_use_build_threads_and_restore_the_query_setting(data, monkeypatch):
    import faiss

    ids, vectors, _ = data
    seen = []
    original = VectorIndex._build

    def spy(self, *args):
        seen.append(faiss.omp_get_max_threads())
        return original(self, *args)

    monkeypatch.setattr(VectorIndex, "_build", spy)
    faiss.omp_set_num_threads(1)
    try:
        VectorIndex.build(DIM, "HNSW16", ids, vectors, build_threads=3)
        assert seen == [3] and faiss.omp_get_max_threads() == 1
        VectorIndex.build(DIM, "Flat", ids, vectors)  # 0: one per core
        assert seen[-1] == (os.cpu_count() or 1) and faiss.omp_get_max_threads() == 1
    finally:
        faiss.omp_set_num_threads(os.cpu_count() or 1)
