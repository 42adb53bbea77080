"""Two checks behind the `fine` card's "what to try next": is macro F1 held down by rare types, or by
the "O" shift chosen for micro F1?

1. How often each fine type occurs in the MultiCoNER training files (share of sentences holding
   it), with the LVIS repeat factor ``max(1, sqrt(t / share))`` that repeat-factor sampling would
   give it at threshold ``--threshold``. Compare with the per-type F1 table of the card.
2. Macro and micro F1 on the set-aside tenth of the dev files (the checkpoint-choice part, never
   the report set) for "O" shifts around the shipped one: the model runs once per file and every
   shift is replayed on its candidate scores (as ``spanlink calibrate`` does).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/fine_type_balance.py > bench/out/fine_type_balance.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter

import numpy as np
from fine_model_eval import DATA, TRAINED, ZERO_SHOT, multiconer_dev

import ner
from ner.corpora import read_corpus
from ner.scoring import count_matches


def type_shares(threshold: float) -> dict:
    counts: Counter[str] = Counter()
    total = 0
    for lang in TRAINED:
        for sentence in read_corpus(DATA / "multiconer2" / lang / "train.conll"):
            total += 1
            counts.update({span.label for span in sentence.spans})
    return {
        "sentences": total,
        "types": {
            label: {"share": n / total, "repeat_factor": max(1.0, math.sqrt(threshold / (n / total)))}
            for label, n in counts.most_common()[::-1]
        },
    }


def outside_shifts(model_name: str, shifts: list[float]) -> list[dict]:
    model = ner.load(model_name)
    outside = model.config.labels[model.config.outside_id]
    shipped = float((model.config.raw.get("spanlink_label_shifts") or {}).get(outside, 0.0))
    data = {lang: multiconer_dev(lang, "select") for lang in TRAINED + ZERO_SHOT}
    candidates = {lang: model.score_candidates([s.text for s in ss]) for lang, ss in data.items()}
    rows = []
    for shift in shifts:
        scores = {}
        for lang, sentences in data.items():
            predicted = model.decode_candidates(
                candidates[lang], label_shifts={outside: shift}, strip_spaces=True
            )
            scores[lang] = count_matches(sentences, predicted).compute()
        row = {"outside_shift_total": shipped + shift}
        for name, langs in (("trained", TRAINED), ("zero_shot", ZERO_SHOT)):
            row[f"macro_f1_{name}"] = float(np.mean([scores[lang].macro_f1 for lang in langs]))
            row[f"micro_f1_{name}"] = float(np.mean([scores[lang].f1 for lang in langs]))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="fine")
    parser.add_argument("--threshold", type=float, default=0.05, help="repeat-factor sampling threshold")
    parser.add_argument("--shifts", default="-1,-0.5,-0.25,0,0.25,0.5", help="added to the shipped O shift")
    args = parser.parse_args()
    result = {
        "type_shares": type_shares(args.threshold),
        "outside_shifts": outside_shifts(args.model, [float(x) for x in args.shifts.split(",")]),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
