"""How long a full garbage collection pauses the service, with and without `gc.freeze()`.

A loaded model (tokenizer vocabularies, modules) is some 170k long-lived Python objects. Every full
(generation-2) collection walks all of them, and one can start inside any request; the HTTP service
freezes what it loaded at start-up (`api/main.py`), so collections skip it. This prints the pause of a
full collection after loading the model, before and after freezing, as JSON:

    .venv/bin/python bench/gc_pause.py [--model PATH] [--repeat 20]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time


def _pauses(repeat: int) -> list[float]:
    pauses = []
    for _ in range(repeat):
        start = time.perf_counter()
        gc.collect()
        pauses.append((time.perf_counter() - start) * 1e3)
    return pauses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model folder (default: the shipped model).")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    import ner

    model = ner.load(args.model)
    objects = len(gc.get_objects())
    loaded = _pauses(args.repeat)
    gc.freeze()
    frozen = _pauses(args.repeat)
    report = {
        "model": model.name,
        "tracked_objects": objects,
        "full_collection_ms_median": round(statistics.median(loaded), 3),
        "full_collection_ms_frozen_median": round(statistics.median(frozen), 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
