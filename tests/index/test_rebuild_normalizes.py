"""A FAISS entity index rebuilt from the database ranks by cosine, as one kept up to date by writes does.

Entity centroids are stored unnormalized (the exact mean of their mentions' unit vectors, shorter
than 1 when the mentions differ); FAISS searches by inner product, so the rebuild must normalize
them, or entities with spread-out mentions sink in every similar-entity search and linking
candidate list after a reopen that rebuilds (a factory change, a crash, a lost file).
"""

import numpy as np

from index import DocumentCreate, MentionCreate, NewEntity, Store


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_rebuilt_entity_index_ranks_by_cosine(tmp_path):
    db = tmp_path / "spanlink.db"
    query = unit(1, 0, 0, 0)
    near = unit(0.9, np.sqrt(1 - 0.81), 0, 0)  # cosine 0.9 with the query, one mention: norm 1
    left, right = unit(0.5, 0, np.sqrt(0.75), 0), unit(0.5, 0, -np.sqrt(0.75), 0)  # mean: 0.5 * query
    with Store.open(db, dim=4) as store:
        store.add_document(
            DocumentCreate(
                "a", "Anna", [MentionCreate(0, 4, "PER", near, new_entity=NewEntity("Anna", "PER"))]
            )
        )
        result = store.add_document(
            DocumentCreate(
                "b", "Bert", [MentionCreate(0, 4, "PER", left, new_entity=NewEntity("Bert", "PER"))]
            )
        )
        bert = result.document.mentions[0].entity_id
        store.add_document(DocumentCreate("c", "Bert", [MentionCreate(0, 4, "PER", right, entity_id=bert)]))
        before = [(h.entity.name, round(h.score, 4)) for h in store.similar_entities(query, k=2)]
    assert before == [("Bert", 1.0), ("Anna", 0.9)]
    with Store.open(db, factory="HNSW32") as store:  # another factory: both indexes rebuilt
        assert [c.loaded for c in store.open_checks] == [False, False]  # rebuilt, not loaded
        after = [(h.entity.name, round(h.score, 4)) for h in store.similar_entities(query, k=2)]
    assert after == before
