"""The Ray executor of the ingest pipeline (``api.ingest_pipeline``): needs ``spanlink[ray]``.

Ray Data reads the files (``read_binary_files``: local paths, and the URIs of the filesystems pyarrow
and Ray know: ``s3://``, ``gs://``, ``abfs://``, ``hdfs://``, ``file://``), its tasks parse them with
the same :func:`api.ingest_sources.parse_file` as the in-process executor, and ``map_batches`` runs
:class:`api.ingest_pipeline.ModelStage` on an actor pool (the model loads once per actor). The
rows come back to the driver *in input order* (``preserve_order``), where the serial writer links
and stores them.

A worker that dies is restarted by Ray and its batch run again (Ray Data's actor pools retry by
default); nothing is written by workers, so a retried batch cannot store anything twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from api.ingest_pipeline import ModelStage, Prepared
from api.ingest_sources import Parsed, Source, parse_file


class RayUnavailable(RuntimeError):
    """``ray[data]`` is not installed, or the cluster cannot be reached."""


def connect(address: str) -> bool:
    """Join (or start) the Ray cluster; True when this call initialized Ray (then shut it down after).

    ``auto`` is Ray's own default: the cluster in ``RAY_ADDRESS``, else a new local one sized to this
    machine; ``ray://host:10001`` is a remote cluster's Ray Client, ``host:6379`` its GCS address.
    """
    try:
        import ray
        import ray.data  # noqa: F401 - ray without the data extra fails here, not mid-job
    except ImportError as exc:
        raise RayUnavailable(f"--ray needs Ray Data: pip install 'spanlink[ray]' ({exc})") from None
    if ray.is_initialized():
        return False
    try:
        ray.init(address=None if address == "auto" else address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster {address!r}: {exc}") from None
    return True


def _document_json(document: Any) -> str:  # noqa: ANN401 - DocumentIn
    mentions = (
        None if document.mentions is None else [[m.start, m.end, m.label, m.score] for m in document.mentions]
    )
    return json.dumps(
        {
            "id": document.external_id,
            "text": document.text,
            "mentions": mentions,
            "language": document.language,
            "metadata": document.metadata,
        },
        ensure_ascii=False,
    )


def _document(payload: str) -> Any:  # noqa: ANN401 - DocumentIn
    from linking.linker import DocumentIn, MentionIn

    data = json.loads(payload)
    mentions = None if data["mentions"] is None else [MentionIn(*m) for m in data["mentions"]]
    return DocumentIn(data["id"], data["text"], mentions, data["language"], data["metadata"])


def _parse_row(row: dict[str, Any], names: dict[str, str], settings: Any) -> list[dict[str, Any]]:  # noqa: ANN401
    """Ray Data ``flat_map``: one file row (path, bytes) -> one row per document, good or bad."""
    started = time.perf_counter()
    name = names.get(row["path"], row["path"])
    parsed = list(parse_file(name, row["bytes"], settings))
    share = (time.perf_counter() - started) / max(1, len(parsed))
    return [
        {
            "where": p.where,
            "doc": "" if p.document is None else _document_json(p.document),
            "error": p.error or "",
            "key": p.key,
            "read_s": share,
        }
        for p in parsed
    ]


class ModelActor:
    """A Ray Data actor: loads the model and the embedder once, then runs the model stage per batch."""

    def __init__(self, settings: Any, stored: frozenset[bytes], device: str | None) -> None:  # noqa: ANN401
        import ner
        from linking.embedding import make_embedder

        model = ner.load(settings.model, device=device or settings.device, backend=settings.backend)
        self.stage = ModelStage(model, make_embedder(settings.vectors, model), stored)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        items = [
            Parsed(where, _document(doc) if doc else None, error or None, bytes(key))
            for where, doc, error, key in zip(batch["where"], batch["doc"], batch["error"], batch["key"])
        ]
        out = self.stage(items, [float(s) for s in batch["read_s"]])
        return {
            "where": [p.where for p in out],
            "status": [p.status for p in out],
            "doc": ["" if p.document is None else _document_json(p.document) for p in out],
            "error": [p.error or "" for p in out],
            "vectors": [b"" if p.vectors is None else p.vectors.astype(np.float32).tobytes() for p in out],
            "read_s": [p.read_seconds for p in out],
            "model_s": [p.model_seconds for p in out],
        }


# CPUs a read-and-parse task reserves: reading is I/O and parsing is cheap next to the model, and a
# whole CPU each would deadlock a cluster whose CPUs the actor pool holds (no task could feed it).
READ_CPUS = 0.5


def _check_capacity(actor_cpus: float) -> None:
    """Warn when the actors leave no room for the read tasks: Ray Data would wait for ever (an
    autoscaling cluster may still grow, so this is not an error)."""
    import sys

    import ray

    total = ray.cluster_resources().get("CPU", 0.0)
    if actor_cpus + READ_CPUS > total:
        print(
            f"warning: the actors reserve {actor_cpus:g} of the cluster's {total:g} CPUs and the read tasks "
            f"need {READ_CPUS:g}: the job waits until the cluster grows (lower --actors or --cpus-per-actor)",
            file=sys.stderr,
        )


def run_ray(
    sources: Sequence[Source],
    settings: Any,  # noqa: ANN401 - ServiceSettings
    *,
    stored: frozenset[bytes],
    dim: int,
    actors: int,
    cpus_per_actor: float,
    gpus_per_actor: float,
    batch_docs: int,
) -> Iterator[Prepared]:
    """The Ray executor: the same stages as ``run_local``, documents yielded in input order."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the writer links in input order
    context.enable_progress_bars = False  # the driver shows one bar of its own
    context.print_on_execution_start = False
    _check_capacity(actors * cpus_per_actor)
    names = {s.location: s.name for s in sources}
    files = ray.data.read_binary_files([s.location for s in sources], include_paths=True, num_cpus=READ_CPUS)
    documents = files.flat_map(
        _parse_row, fn_kwargs={"names": names, "settings": settings}, num_cpus=READ_CPUS
    )
    prepared = documents.map_batches(
        ModelActor,
        fn_constructor_kwargs={
            "settings": settings,
            "stored": stored,
            "device": "cuda" if gpus_per_actor > 0 and settings.device is None else None,
        },
        batch_size=batch_docs,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
        batch_format="numpy",
    )
    for row in prepared.iter_rows():
        document = _document(row["doc"]) if row["doc"] else None
        vectors = None
        if row["vectors"] and document is not None:
            vectors = np.frombuffer(row["vectors"], np.float32).reshape(-1, dim)
        elif document is not None and document.mentions is not None:
            vectors = np.zeros((0, dim), np.float32)
        yield Prepared(
            row["where"],
            row["status"],
            document,
            vectors,
            row["error"] or None,
            float(row["read_s"]),
            float(row["model_s"]),
        )
