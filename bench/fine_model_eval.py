"""The evaluation tables of the `fine` model's card (data/fine-model/README.md).

- MultiCoNER v2 dev, all 12 languages: micro and macro F1 over the 33 fine types and micro F1 over
  the 6 groups. Every tenth dev sentence (index % 10 == 0) was set aside to pick checkpoints
  (`--part select`); the card reports the other nine tenths (`--part report`, the default).
  bn de en hi sv zh had training data; es fa fr it pt uk are zero-shot and averaged apart.
- CoNLL-2002/2003 test en/de/es/nl, cased news: gold PER/ORG/LOC as the groups PER/GRP/LOC (MISC
  dropped, it has no group), predictions mapped to their group, only PER/GRP/LOC kept.
- Speed: sentences/s of `fine` and of the default model on the same sentences, in alternation.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/fine_model_eval.py --limit 0 --out bench/out/fine

One model load per run; results go to OUT/<part>.json and the markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import ner
from ner.corpora import Sentence, read_corpus
from ner.evaluation import EntityAccumulator, merge_accumulators
from ner.labels import MULTICONER_GROUPS
from ner.model import SpanModel

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ner"
TRAINED = ("bn", "de", "en", "hi", "sv", "zh")
ZERO_SHOT = ("es", "fa", "fr", "it", "pt", "uk")
CONLL = ("en", "de", "es", "nl")
COARSE = {"PER", "GRP", "LOC"}


def _spread(items: list, n: int) -> list:
    if n <= 0 or n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def multiconer_dev(lang: str, part: str) -> list[Sentence]:
    """The dev sentences of one language: `select` (every tenth, for checkpoint choice) or `report`."""
    sentences = read_corpus(DATA / "multiconer2" / lang / "dev.conll")
    keep = (lambda i: i % 10 == 0) if part == "select" else (lambda i: i % 10 != 0)
    return [s for i, s in enumerate(sentences) if keep(i)]


def _predict(model: SpanModel, sentences: list[Sentence]) -> tuple[list[list[tuple[int, int, str]]], float]:
    start = time.perf_counter()
    found = model.extract([s.text for s in sentences], batch_size=64, strip_spaces=True)
    seconds = time.perf_counter() - start
    return [[(e.start, e.end, e.label) for e in ents] for ents in found], seconds


def _score(sentences: list[Sentence], predictions: list, relabel=None, keep=None) -> EntityAccumulator:  # noqa: ANN001
    accumulator = EntityAccumulator()
    for sentence, predicted in zip(sentences, predictions, strict=True):
        gold = sentence.char_entities()
        if relabel is not None:
            gold = [(s, e, relabel(label)) for s, e, label in gold]
            predicted = [(s, e, relabel(label)) for s, e, label in predicted]
        if keep is not None:
            predicted = [entity for entity in predicted if entity[2] in keep]
        accumulator.update(gold, predicted)
    return accumulator


def evaluate_multiconer(model: SpanModel, part: str, limit: int) -> dict:
    rows = {}
    fine_all, group_all = {}, {}
    for lang in TRAINED + ZERO_SHOT:
        sentences = _spread(multiconer_dev(lang, part), limit)
        predicted, seconds = _predict(model, sentences)
        fine = _score(sentences, predicted)
        group = _score(sentences, predicted, relabel=lambda label: MULTICONER_GROUPS.get(label, label))
        fine_all[lang], group_all[lang] = fine, group
        f, g = fine.compute(), group.compute()
        rows[lang] = {
            "sentences": len(sentences),
            "fine_micro_f1": f.f1,
            "fine_macro_f1": f.macro_f1,
            "group_micro_f1": g.f1,
            "fine_precision": f.precision,
            "fine_recall": f.recall,
            "sentences_per_second": len(sentences) / seconds,
        }
    for name, langs in (("trained", TRAINED), ("zero_shot", ZERO_SHOT)):
        rows[f"average_{name}"] = {
            key: sum(rows[lang][key] for lang in langs) / len(langs)
            for key in ("fine_micro_f1", "fine_macro_f1", "group_micro_f1")
        }
        merged = merge_accumulators(fine_all[lang] for lang in langs).compute()
        rows[f"average_{name}"]["per_label_f1"] = {k: v.f1 for k, v in merged.per_label.items()}
    return rows


def evaluate_conll(model: SpanModel, limit: int) -> dict:
    rows = {}
    for lang in CONLL:
        gold = read_corpus(DATA / "conll" / lang / "test.conllu", label_map={"ORG": "GRP", "MISC": None})
        sentences = _spread(gold, limit)
        predicted, seconds = _predict(model, sentences)
        scores = _score(sentences, predicted, relabel=model.config.group_of, keep=COARSE).compute()
        rows[lang] = {
            "sentences": len(sentences),
            "precision": scores.precision,
            "recall": scores.recall,
            "f1": scores.f1,
            "sentences_per_second": len(sentences) / seconds,
        }
    rows["average"] = {"f1": sum(rows[lang]["f1"] for lang in CONLL) / len(CONLL)}
    return rows


def speed(model: SpanModel, default: SpanModel, limit: int, rounds: int = 3) -> dict:
    """Sentences/s of both models on the same sentences (CoNLL en test + MultiCoNER en dev), A/B."""
    texts = [s.text for s in _spread(read_corpus(DATA / "conll" / "en" / "test.conllu"), limit)]
    texts += [s.text for s in _spread(multiconer_dev("en", "report"), limit)]
    times: dict[str, list[float]] = {"fine": [], "default": []}
    for _ in range(rounds):
        for name, m in (("fine", model), ("default", default)):
            start = time.perf_counter()
            m.extract(texts, batch_size=64)
            times[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in times.items()}
    return {
        "sentences": len(texts),
        "fine_sentences_per_second": len(texts) / best["fine"],
        "default_sentences_per_second": len(texts) / best["default"],
        "ratio_fine_over_default": best["default"] / best["fine"],
    }


def _pct(value: float) -> str:
    return f"{value * 100:.1f}"


def tables(result: dict) -> str:
    lines = [
        "| MultiCoNER v2 dev | sentences | fine micro F1 | fine macro F1 | group micro F1 |",
        "|---|---|---|---|---|",
    ]
    mc = result["multiconer"]
    for lang in TRAINED + ZERO_SHOT:
        row = mc[lang]
        mark = "" if lang in TRAINED else " (zero-shot)"
        lines.append(
            f"| {lang}{mark} | {row['sentences']} | {_pct(row['fine_micro_f1'])} | "
            f"{_pct(row['fine_macro_f1'])} | {_pct(row['group_micro_f1'])} |"
        )
    for name in ("trained", "zero_shot"):
        row = mc[f"average_{name}"]
        lines.append(
            f"| **average, {name.replace('_', '-')}** | | {_pct(row['fine_micro_f1'])} | "
            f"**{_pct(row['fine_macro_f1'])}** | **{_pct(row['group_micro_f1'])}** |"
        )
    lines += ["", "| type (group) | F1, trained languages | F1, zero-shot |", "|---|---|---|"]
    trained, zero = mc["average_trained"]["per_label_f1"], mc["average_zero_shot"]["per_label_f1"]
    for label, group in MULTICONER_GROUPS.items():
        scores = f"{_pct(trained.get(label, 0.0))} | {_pct(zero.get(label, 0.0))}"
        lines.append(f"| {label} ({group}) | {scores} |")
    if "conll" in result:
        lines += [
            "",
            "| CoNLL test (PER/ORG/LOC as groups) | sentences | P | R | F1 |",
            "|---|---|---|---|---|",
        ]
        for lang in CONLL:
            row = result["conll"][lang]
            lines.append(
                f"| {lang} | {row['sentences']} | {_pct(row['precision'])} | {_pct(row['recall'])} | "
                f"{_pct(row['f1'])} |"
            )
        lines.append(f"| **average** | | | | **{_pct(result['conll']['average']['f1'])}** |")
    if "speed" in result:
        s = result["speed"]
        lines += [
            "",
            f"Speed on {s['sentences']} sentences: fine {s['fine_sentences_per_second']:.1f}/s, default "
            f"{s['default_sentences_per_second']:.1f}/s (fine at {s['ratio_fine_over_default']:.2f}x).",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="fine", help="fine (shipped) or a model folder")
    parser.add_argument("--part", choices=("report", "select"), default="report")
    parser.add_argument("--limit", type=int, default=0, help="sentences per file, spread out (0 = all)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("conll", "speed"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "fine")
    args = parser.parse_args()
    model = ner.load(args.model)
    result: dict = {"model": args.model, "part": args.part, "limit": args.limit}
    result["multiconer"] = evaluate_multiconer(model, args.part, args.limit)
    if "conll" not in args.skip:
        result["conll"] = evaluate_conll(model, args.limit)
    if "speed" not in args.skip:
        result["speed"] = speed(model, ner.load(), min(args.limit or 300, 300))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.part}.json").write_text(json.dumps(result, indent=2))
    print(tables(result))


if __name__ == "__main__":
    main()
