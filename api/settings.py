"""``ServiceSettings``: every knob of the HTTP service and its CLI, in one pydantic-settings class.

Values come from keyword arguments (the ``spanlink serve`` options), then ``SPANLINK_*``
environment variables, then the defaults below. The class is built through the cached
:func:`get_settings` dependency rather than at import, so tests can override it
(``app.dependency_overrides[get_settings] = ...``) and a bad environment fails at startup, not at
import.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VECTOR_KINDS = ("span", "surface", "mix")
"""Mention vector kinds (``linking.settings.VECTOR_KINDS``; repeated so settings import no model code)."""

PLACEHOLDER_KEYS = ("changethis", "changeme", "secret", "password", "apikey", "api-key")
"""API keys refused outright: copied from an example, they protect nothing."""


def default_data_dir() -> Path:
    """Where the store lives unless told otherwise: the per-user data folder (``platformdirs``).

    A per-user folder rather than ``./data`` so that ``spanlink serve`` and ``spanlink similar``
    find the same store whatever the working directory is.
    """
    import platformdirs

    return Path(platformdirs.user_data_dir("spanlink"))


class ServiceSettings(BaseSettings):
    """Configuration of the service; each field has a default and help text (the one list of tunables).

    >>> ServiceSettings(max_k=100).max_k
    100
    """

    model_config = SettingsConfigDict(env_prefix="SPANLINK_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder of the store: spanlink.db (SQLite) and the FAISS files beside it.",
    )
    db_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the database instead of data_dir/spanlink.db (FAISS files stay "
        "in data_dir); postgresql+psycopg://... is the shared store of several processes. Also read "
        "from SPANLINK_DB.",
    )
    model: str | None = Field(
        None,
        description="NER model: SpanMarker checkpoint folder or hub id, or an embedded model by name "
        "(default, fine). None loads the embedded default.",
    )
    device: str | None = Field(None, description="Torch device for the model: cpu, cuda, ...")
    backend: str | None = Field(
        None,
        description="NER backend: torch, or onnx (ONNX Runtime, CPU; needs spanlink[onnx]). None: onnx for "
        "a `spanlink export` folder, torch otherwise.",
    )
    vectors: str = Field(
        "surface",
        description="Mention vectors for linking: span, surface or mix (as `spanlink ingest --vectors`). "
        "A store must always be written with one kind.",
    )
    factory: str | None = Field(
        None,
        description="FAISS factory string for a new store (Flat, HNSW32, ...); None keeps the saved one.",
    )
    ef_search: int | None = Field(
        None,
        ge=1,
        description="HNSW efSearch of similarity searches (FAISS, or pgvector's hnsw.ef_search); None: the "
        "store's default (96). A 1M-vector PostgreSQL store built with m 32, efConstruction 200 reaches "
        "recall@10 1.0 at 100 (index/README.md).",
    )
    hnsw_m: int | None = Field(
        None,
        ge=2,
        le=100,
        description="pgvector HNSW m of a new PostgreSQL store's indexes; None: 16. 32 for a million "
        "vectors and more, with ef_construction 200 (index/README.md).",
    )
    ef_construction: int | None = Field(
        None,
        ge=1,
        description="HNSW efConstruction of the indexes a new store builds (pgvector; FAISS HNSW); None: "
        "the store's default (40). 200 for a million vectors and more: recall@10 at efSearch 100 goes "
        "from 0.89 to 1.0 at 1M (index/README.md).",
    )
    api_key: SecretStr | None = Field(
        None,
        description="If set, write endpoints need `Authorization: Bearer KEY` or `X-API-Key: KEY`.",
    )
    link_settings: dict[str, float | str] = Field(
        default_factory=dict,
        description='Overrides of linking.LinkSettings as JSON, e.g. {"link_threshold": 1.2}.',
    )
    max_text_chars: int = Field(1_000_000, ge=1, description="Most characters in one text (413 above).")
    max_items: int = Field(64, ge=1, description="Most texts or documents in one request (413 above).")
    max_mentions: int = Field(10_000, ge=1, description="Most given mentions in one document (413 above).")
    max_k: int = Field(1000, ge=1, description="Largest k of a similarity query (422 above).")
    batch_wait_ms: float = Field(
        5.0, ge=0, description="How long the extract queue waits for more requests to batch together."
    )
    batch_max_texts: int = Field(64, ge=1, description="Most texts in one batched model call.")
    step_batches: int = Field(
        1,
        ge=0,
        description="Model batches (each within the model's token budget) in one step of NER work: work "
        "of more steps runs on the long lane, a step at a time, beside short requests; 0 runs each "
        "request whole on one lane, so that one long document holds up every other request.",
    )
    request_timeout_s: float = Field(
        300.0, gt=0, description="How long a request waits for the model before a 503."
    )

    @model_validator(mode="before")
    @classmethod
    def _db_alias(cls, data: Any) -> Any:
        """``SPANLINK_DB`` is the short name of ``SPANLINK_DB_URL`` (the one the docs use)."""
        if isinstance(data, dict) and data.get("db_url") is None and os.environ.get("SPANLINK_DB"):
            return {**data, "db_url": os.environ["SPANLINK_DB"]}
        return data

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value not in (None, "torch", "onnx"):
            raise ValueError(f"backend must be torch or onnx, got {value!r}")
        return value

    @field_validator("vectors")
    @classmethod
    def _known_vectors(cls, value: str) -> str:
        if value not in VECTOR_KINDS:
            raise ValueError(f"vectors must be one of {VECTOR_KINDS}, got {value!r}")
        return value

    @field_validator("api_key")
    @classmethod
    def _real_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if secret == "":
            return None
        if secret.lower() in PLACEHOLDER_KEYS or len(secret) < 8:
            raise ValueError("api_key is a placeholder or shorter than 8 characters; generate a real one")
        return value

    def store_target(self) -> str:
        """The database the store opens: ``db_url`` or ``data_dir/spanlink.db``."""
        return self.db_url or str(self.data_dir / "spanlink.db")


@lru_cache
def get_settings() -> ServiceSettings:
    """The process-wide settings (environment + defaults), built once on first use."""
    return ServiceSettings()


def describe_settings() -> list[tuple[str, object, str]]:
    """``(name, default, help)`` for every setting, in declaration order (drives the README table test)."""
    rows = []
    for name, info in ServiceSettings.model_fields.items():
        default = "per-user data folder" if info.default_factory is not None else info.default
        rows.append((name, default, info.description or ""))
    return rows
