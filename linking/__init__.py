"""spanlink linking: mentions to entities (in-document grouping, cross-document and cross-lingual linking).

>>> from index import Store
>>> from linking import DocumentIn, Linker, MentionIn
>>> with Store.open("data/spanlink.db", dim=384) as store:  # doctest: +SKIP
...     linker = Linker(store, ner.load(), embedder=make_embedder("surface"))
...     results = linker.ingest([DocumentIn("news-1", text)])

The public API is re-exported here; see ``linking/README.md`` for the modules behind it.
"""

from linking.core import (
    CandidateScore,
    Decision,
    EntityView,
    GroupView,
    MemoryEntities,
    decide,
    link_embeddings,
    name_similarity,
    score_candidate,
)
from linking.coref import MentionSpan, group_mentions
from linking.embedding import Embedder, MixEmbedder, SpanEmbedder, SurfaceEmbedder, make_embedder
from linking.linker import (
    DocumentIn,
    IngestResult,
    LinkedMention,
    Linker,
    LinkingError,
    LinkResult,
    MentionIn,
)
from linking.metrics import PRF, b_cubed, ceaf_e, clustering_scores, muc, pairwise
from linking.names import form_similarity, name_keys, normalize_name
from linking.settings import VECTOR_KINDS, LinkSettings, describe_settings

__all__ = [
    "PRF",
    "VECTOR_KINDS",
    "CandidateScore",
    "Decision",
    "DocumentIn",
    "Embedder",
    "EntityView",
    "GroupView",
    "IngestResult",
    "LinkResult",
    "LinkSettings",
    "LinkedMention",
    "Linker",
    "LinkingError",
    "MemoryEntities",
    "MentionIn",
    "MentionSpan",
    "MixEmbedder",
    "SpanEmbedder",
    "SurfaceEmbedder",
    "b_cubed",
    "ceaf_e",
    "clustering_scores",
    "decide",
    "describe_settings",
    "form_similarity",
    "group_mentions",
    "link_embeddings",
    "make_embedder",
    "muc",
    "name_keys",
    "name_similarity",
    "normalize_name",
    "pairwise",
    "score_candidate",
]
