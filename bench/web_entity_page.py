"""Server time of the web page of an entity with 10k mentions in a 100k-mention store (issue 17: < 300 ms).

The store is built directly through ``index.Store`` (no NER, no linking) with random 384-d vectors:
one entity with ``--entity-mentions`` mentions (20 per document) and ``--mentions`` in all, the rest
spread over ``--entities`` other entities. The page is then rendered in-process by the real app
(``api.main.create_app`` over a ``Service`` with a random 384-d model for the labels and the linker)
and timed from request to full response body, for the first, a middle and the last page of mentions.

    .venv/bin/python bench/web_entity_page.py                       # 100k mentions, 10k on the entity
    .venv/bin/python bench/web_entity_page.py --workdir /tmp/webbench  # keep (and reuse) the store

Prints one JSON object; ``primary_metric`` is ``web_entity_page_p50_ms`` (page 1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIM = 384
PER_DOCUMENT = 20


def build_store(path: Path, *, mentions: int, entity_mentions: int, entities: int, seed: int = 0) -> int:
    """Write the store; returns the id of the entity with ``entity_mentions`` mentions."""
    from index import DocumentCreate, MentionCreate, NewEntity, Store

    rng = np.random.default_rng(seed)
    sentence = "{name} said the talks in Brussels went well. "
    with Store.open(path, dim=DIM) as store:
        target = None
        known: dict[int, int] = {}  # other entity index -> id
        batch: list[DocumentCreate] = []
        for d in range(mentions // PER_DOCUMENT):
            on_target = d < entity_mentions // PER_DOCUMENT
            picks = [-1] * PER_DOCUMENT if on_target else list(rng.integers(0, entities, PER_DOCUMENT))
            names = ["Angela Merkel" if p < 0 else f"Person {p}" for p in picks]
            text = "".join(sentence.format(name=name) for name in names)
            spans, at = [], 0
            vectors = rng.standard_normal((PER_DOCUMENT, DIM)).astype(np.float32)
            for name, pick, vector in zip(names, picks, vectors):
                start = text.index(name, at)
                at = start + len(name)
                if pick < 0:
                    link = (
                        {"entity_id": target} if target else {"new_entity": NewEntity("Angela Merkel", "PER")}
                    )
                else:
                    link = (
                        {"entity_id": known[pick]}
                        if pick in known
                        else {"new_entity": NewEntity(name, "PER")}
                    )
                spans.append(MentionCreate(start, at, "PER", vector, **link))
            doc = DocumentCreate(f"doc-{d:06}", text, spans, metadata={"source": "bench"})
            if target is None or any(m.new_entity is not None for m in spans):
                if batch:
                    store.add_documents(batch)
                    batch = []
                result = store.add_document(doc)
                for m, pick in zip(result.document.mentions, picks):
                    if pick < 0:
                        target = m.entity_id
                    else:
                        known[pick] = m.entity_id
            else:
                batch.append(doc)
                if len(batch) == 500:
                    store.add_documents(batch)
                    batch = []
        if batch:
            store.add_documents(batch)
        assert target is not None
        return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mentions", type=int, default=100_000)
    parser.add_argument("--entity-mentions", type=int, default=10_000)
    parser.add_argument("--entities", type=int, default=20_000, help="other entities the rest link to")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    import ner
    from api.main import create_app
    from api.service import Service, open_store
    from api.settings import ServiceSettings
    from linking.embedding import SpanEmbedder
    from ner.random_checkpoint import CheckpointSpec, build_checkpoint
    from tests.ner.sentences import SENTENCES

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="web-bench-"))
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    marker = data / "target.json"
    started = time.perf_counter()
    if not marker.exists():
        target = build_store(
            data / "spanlink.db",
            mentions=args.mentions,
            entity_mentions=args.entity_mentions,
            entities=args.entities,
        )
        marker.write_text(json.dumps({"entity_id": target}))
    target = json.loads(marker.read_text())["entity_id"]
    build_s = time.perf_counter() - started

    spec = CheckpointSpec(
        labels=("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"),
        hidden_size=DIM,
    )
    checkpoint = workdir / "model" / "checkpoint"
    if not checkpoint.exists():
        build_checkpoint(workdir / "model", SENTENCES, spec)
    model = ner.load(checkpoint)
    settings = ServiceSettings(model=str(checkpoint), vectors="span", data_dir=data)
    embedder = SpanEmbedder(model)
    service = Service(settings, model, open_store(settings, embedder.dim), embedder)
    stats = service.stats()
    entity = service.get_entity(target)
    last_page = -(-entity.mention_count // 50)
    out: dict[str, object] = {
        "store": {"mentions": stats.mentions, "entities": stats.entities, "documents": stats.documents},
        "entity_mentions": entity.mention_count,
        "build_or_reuse_s": round(build_s, 1),
    }
    with TestClient(create_app(settings, service=service)) as client:
        pages = [("page1", 1), ("middle", last_page // 2), ("last", last_page)]
        for name, page in pages:
            url = f"/entities/{target}?page={page}"
            assert client.get(url).status_code == 200  # warm-up: first-use imports and caches
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200 and f"page {page} of {last_page}" in response.text
            out[f"web_entity_page_{name}_ms"] = {
                "p50": round(statistics.median(times), 1),
                "p95": round(sorted(times)[int(0.95 * (len(times) - 1))], 1),
                "max": round(max(times), 1),
            }
        for name, url in (("search", "/entities?q=person+1"), ("list_last_seen", "/entities?sort=last_seen")):
            client.get(url)
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                assert client.get(url).status_code == 200
                times.append((time.perf_counter() - t0) * 1000)
            out[f"web_entities_{name}_ms"] = {
                "p50": round(statistics.median(times), 1),
                "max": round(max(times), 1),
            }
    p50 = out["web_entity_page_page1_ms"]["p50"]  # type: ignore[index]
    out["primary_metric"] = "web_entity_page_p50_ms"
    out["web_entity_page_p50_ms"] = p50
    out["target_ms"] = 300
    out["ok"] = all(
        v["p50"] < 300 for k, v in out.items() if k.startswith("web_entity_page_") and isinstance(v, dict)
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
