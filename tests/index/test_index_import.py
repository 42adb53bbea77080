"""Pin the import paths the linking and api layers use."""

import importlib

import index

PUBLIC = {
    "index": [
        "Store",
        "StoreSettings",
        "DocumentCreate",
        "MentionCreate",
        "NewEntity",
        "EntityCreate",
        "DocumentPublic",
        "MentionPublic",
        "EntityPublic",
        "AliasPublic",
        "EntityHit",
        "MentionHit",
        "AddResult",
        "StoreStats",
        "ConsistencyReport",
        "NotFound",
        "InvalidInput",
        "SchemaMismatch",
        "StoreClosed",
        "StoreError",
        "VectorIndex",
        "normalize_surface",
        "describe_settings",
    ],
    "index.store": ["Store", "ConsistencyReport"],
    "index.errors": ["StoreError", "NotFound", "InvalidInput", "SchemaMismatch", "StoreClosed"],
    "index.records": ["DocumentCreate", "MentionCreate", "EntityCreate", "NewEntity", "normalize_surface"],
    "index.schema": ["Base", "Document", "Mention", "Entity", "Alias", "SCHEMA_VERSION"],
    "index.vectors": ["VectorIndex", "normalize_rows"],
    "index.settings": ["StoreSettings", "describe_settings"],
}


def test_public_names_importable():
    for module_name, names in PUBLIC.items():
        module = importlib.import_module(module_name)
        missing = [name for name in names if not hasattr(module, name)]
        assert not missing, (module_name, missing)
    assert set(PUBLIC["index"]) <= set(index.__all__)


def test_index_does_not_import_other_layers():
    # The dependency direction is api -> linking/index -> ner; index stays at the bottom.
    import pathlib

    root = pathlib.Path(index.__file__).parent
    for path in root.glob("*.py"):
        source = path.read_text()
        for other in ("ner", "linking", "api"):
            assert f"import {other}" not in source and f"from {other}" not in source, (path.name, other)
