"""Reproduce the result tables of the default model's card with `spanlink evaluate`.

Every figure in ``data/default-model/README.md`` comes from one of the runs below; each run is a
plain ``spanlink evaluate`` subprocess (the command users have), its JSON kept in ``--out``, and the
tables are printed as markdown at the end:

- CoNLL test en/de/es/nl, ``--limit`` sentences per file, pruned (as shipped) and all spans;
- the same with ``--dtype bfloat16``;
- WikiNEuRal test, 9 languages, ``--limit`` sentences per file;
- with ``--full``: the whole CoNLL test files, pruned.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/model_card_eval.py --limit 300 --full

Runs whose JSON already exists in ``--out`` are not repeated (delete it, or pass ``--fresh``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ner"
CONLL = ("en", "de", "es", "nl")
WIKINEURAL = ("de", "en", "es", "fr", "it", "nl", "pl", "pt", "ru")
# languages of the default model's training data (see its card), to mark WikiNEuRal rows unseen
TRAINED = {lang: "yes (CoNLL)" for lang in CONLL} | {"pt": "yes (UNER, PER/ORG/LOC only)"}


def _evaluate(name: str, files: list[Path], extra: list[str], args: argparse.Namespace) -> dict:
    """One `spanlink evaluate` run, cached as OUT/NAME.json."""
    target = args.out / f"{name}.json"
    if target.exists() and not args.fresh:
        return json.loads(target.read_text())
    command = [str(Path(sys.executable).parent / "spanlink"), "evaluate"]
    if args.model:
        command += ["--model", args.model]
    for path in files:
        command += ["--data", str(path)]
    command += extra
    print("$", " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
    target.write_text(done.stdout)
    return json.loads(done.stdout)


def _lang(path: str) -> str:
    return Path(path).parent.name


def _pct(value: float) -> str:
    return f"{value * 100:.1f}"


def conll_table(pruned: dict, all_spans: dict, bf16: dict) -> str:
    rows = [
        "| CoNLL test | P | R | F1 (pruned) | F1 (all spans) | F1 (bf16, pruned) "
        "| sentences/s (pruned) | sentences/s (all) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    f1s: dict[str, list[float]] = {"p": [], "a": [], "b": []}
    for path, p in pruned["files"].items():
        a, b = all_spans["files"][path], bf16["files"][path]
        f1s["p"].append(p["f1"])
        f1s["a"].append(a["f1"])
        f1s["b"].append(b["f1"])
        rows.append(
            f"| {_lang(path)} | {_pct(p['precision'])} | {_pct(p['recall'])} | {_pct(p['f1'])} "
            f"| {_pct(a['f1'])} | {_pct(b['f1'])} | {p['sentences_per_second']:.1f} "
            f"| {a['sentences_per_second']:.1f} |"
        )
    mean = {key: sum(values) / len(values) for key, values in f1s.items()}
    rows.append(
        f"| **average** | | | **{_pct(mean['p'])}** | {_pct(mean['a'])} | {_pct(mean['b'])} "
        f"| {pruned['overall']['sentences_per_second']:.1f} "
        f"| {all_spans['overall']['sentences_per_second']:.1f} |"
    )
    return "\n".join(rows)


def plain_table(title: str, report: dict, seen: bool) -> str:
    head = f"| {title} | P | R | F1 | sentences |" + (" in training? |" if seen else "")
    rows = [head, "|---|---|---|---|---|" + ("---|" if seen else "")]
    f1s = []
    for path, r in report["files"].items():
        f1s.append(r["f1"])
        tail = f" {TRAINED.get(_lang(path), 'no')} |" if seen else ""
        rows.append(
            f"| {_lang(path)} | {_pct(r['precision'])} | {_pct(r['recall'])} | {_pct(r['f1'])} "
            f"| {r.get('sentences', '')} |{tail}"
        )
    overall = report["overall"]
    rows.append(
        f"| **overall (micro)** | {_pct(overall['precision'])} | {_pct(overall['recall'])} "
        f"| **{_pct(overall['f1'])}** | |" + (" |" if seen else "")
    )
    rows.append(
        f"\nmean F1 over files {_pct(sum(f1s) / len(f1s))}; {overall['sentences_per_second']:.1f} sentences/s"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: the embedded default model)")
    parser.add_argument("--data", type=Path, default=DATA, help="shared/data/ner")
    parser.add_argument("--limit", type=int, default=300, help="sentences per file, spread out")
    parser.add_argument("--full", action="store_true", help="also score the whole CoNLL test files")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "model_card")
    parser.add_argument("--fresh", action="store_true", help="rerun runs already saved in --out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    conll = [args.data / "conll" / lang / "test.conllu" for lang in CONLL]
    wikineural = [args.data / "wikineural" / lang / "test.conllu" for lang in WIKINEURAL]
    missing = [str(p) for p in conll + wikineural if not p.is_file()]
    if missing:
        raise SystemExit(f"missing test files: {missing[:3]} ... (see ../shared/data/README)")
    limit = ["--limit", str(args.limit)]
    pruned = _evaluate("conll_pruned", conll, limit, args)
    all_spans = _evaluate("conll_all_spans", conll, [*limit, "--no-prune"], args)
    bf16 = _evaluate("conll_bf16", conll, [*limit, "--dtype", "bfloat16"], args)
    wiki = _evaluate("wikineural", wikineural, limit, args)
    print(f"## CoNLL test, {args.limit} sentences per file\n\n{conll_table(pruned, all_spans, bf16)}\n")
    if args.full:
        full = _evaluate("conll_full_pruned", conll, [], args)
        print(f"## CoNLL test, whole files, pruned\n\n{plain_table('CoNLL test', full, False)}\n")
    print(f"## WikiNEuRal test, {args.limit} sentences per file\n\n{plain_table('WikiNEuRal', wiki, True)}")


if __name__ == "__main__":
    main()
