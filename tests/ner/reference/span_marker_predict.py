"""Run span_marker 1.8.1's `predict` on jobs read from stdin; print the entities as JSON.

Runs in the reference environment (.venv-ref: span_marker needs transformers<5), never imported
by spanlink. Input: [{"checkpoint": path, "texts": [...], "word_lists": [[...], ...]}, ...].
Output: one {"texts": [[[start, end, label, score], ...], ...], "word_lists": [...]} per job.
"""

import json
import sys

from span_marker import SpanMarkerModel


def as_rows(prediction, key_start, key_end):
    return [[e[key_start], e[key_end], e["label"], e["score"]] for e in prediction]


def main() -> None:
    jobs = json.load(sys.stdin)
    out = []
    for job in jobs:
        model = SpanMarkerModel.from_pretrained(job["checkpoint"])
        texts = list(job["texts"])
        # A list of strings none of which holds a space takes span_marker's "one pre-tokenized
        # sentence" path; one text with a space keeps it on the list-of-sentences path.
        pad = not any(" " in t for t in texts)
        preds = model.predict(texts + ["a b"] if pad else texts, batch_size=8) if texts else []
        preds = preds[: len(texts)]
        words = model.predict(job["word_lists"], batch_size=8) if job.get("word_lists") else []
        out.append(
            {
                "texts": [as_rows(p, "char_start_index", "char_end_index") for p in preds],
                "word_lists": [as_rows(p, "word_start_index", "word_end_index") for p in words],
            }
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
