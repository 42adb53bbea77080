"""spanlink index: SQL storage of documents, mentions, entities and aliases, with FAISS search.

The public API is re-exported here; see ``index/README.md`` for the modules behind it.
"""

from index.errors import InvalidInput, NotFound, SchemaMismatch, StoreClosed, StoreError
from index.records import (
    AddResult,
    AliasPublic,
    DocumentCreate,
    DocumentPublic,
    EntityCreate,
    EntityHit,
    EntityPublic,
    KnownEntity,
    MentionCreate,
    MentionHit,
    MentionPublic,
    NewEntity,
    StoreStats,
    name_problem,
    normalize_surface,
)
from index.schema import SCHEMA_VERSION
from index.settings import StoreSettings, describe_settings
from index.store import ConsistencyReport, Store
from index.vectors import VectorIndex

__all__ = [
    "SCHEMA_VERSION",
    "AddResult",
    "AliasPublic",
    "ConsistencyReport",
    "DocumentCreate",
    "DocumentPublic",
    "EntityCreate",
    "EntityHit",
    "EntityPublic",
    "InvalidInput",
    "KnownEntity",
    "MentionCreate",
    "MentionHit",
    "MentionPublic",
    "NewEntity",
    "NotFound",
    "SchemaMismatch",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreSettings",
    "StoreStats",
    "VectorIndex",
    "describe_settings",
    "name_problem",
    "normalize_surface",
]
