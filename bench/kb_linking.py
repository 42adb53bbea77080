"""Knowledge-base linking with real vectors (issue 18): the test KB and documents, e5-small surface
vectors, the default link settings, a fresh SQLite store.

``tests/linking/test_linker_kb.py`` checks the same documents with hash vectors and names alone;
this shows what the shipped settings do with vectors that mean something: how long importing the
265 entities takes (embedding their names included) and which of the 25 mentions link to the KB
entity they name (or, for the one outside the KB, to none of them).

    OMP_NUM_THREADS=1 .venv/bin/python bench/kb_linking.py

Metrics are prefixed with the dataset name; ``primary_metric`` is ``kb_fixture_accuracy``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index import Store  # noqa: E402
from linking.embedding import make_embedder  # noqa: E402
from linking.linker import Linker  # noqa: E402
from linking.settings import LinkSettings  # noqa: E402
from tests.linking.kb_fixture import knowledge_base  # noqa: E402
from tests.linking.test_linker_kb import DOCUMENTS, doc  # noqa: E402


def main() -> None:
    embedder = make_embedder("surface")
    with (
        tempfile.TemporaryDirectory() as folder,
        Store.open(Path(folder) / "s.db", dim=embedder.dim) as store,
    ):
        linker = Linker(store, settings=LinkSettings(), embedder=embedder)
        started = time.perf_counter()
        imported = linker.import_entities(knowledge_base())
        seconds = time.perf_counter() - started
        ids = {entity.external_id: entity.id for entity, _ in imported}
        correct, wrong = 0, []
        for external_id, text, spans in DOCUMENTS:
            result = linker.ingest_one(doc(external_id, text, [(s, label) for s, label, _ in spans]))
            for mention, (surface, _, kb) in zip(result.mentions, spans, strict=True):
                good = mention.entity_id == ids[kb] if kb else mention.entity_id not in ids.values()
                correct += good
                if not good:
                    got = store.get_entity(mention.entity_id).external_id if mention.entity_id else None
                    wrong.append({"mention": surface, "expected": kb, "linked_to": got})
        total = sum(len(spans) for _, _, spans in DOCUMENTS)
        print(
            json.dumps(
                {
                    "primary_metric": "kb_fixture_accuracy",
                    "kb_fixture_accuracy": round(correct / total, 3),
                    "kb_fixture_mentions": total,
                    "kb_fixture_entities": len(imported),
                    "kb_fixture_import_seconds": round(seconds, 1),
                    "wrong": wrong,
                },
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main()
