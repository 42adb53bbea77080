"""NER throughput: spanlink against span_marker 1.8.1 on the same checkpoint and sentences.

    .venv/bin/python bench/ner_speed.py [--data ../shared/data/ner] [--sentences 500] [--out FILE]
        [--model runs/default-v2/model]  # a trained checkpoint instead of the random one

Builds a random SpanMarker checkpoint of the default model's shape (12 layers, hidden 384, 12
heads; an 8k Unigram vocabulary built from the corpus), picks a fixed multilingual corpus of
sentences of 5-80 words from the shared NER data (read in place, never copied), then runs, each
in its own process so peak memory is its own:

* spanlink (float32, and optionally bfloat16 / int8 with their agreement rate),
* span_marker's `predict` in the reference environment (.venv-ref),
* the compute bound: plain encoder forwards over the same total number of text + marker tokens
  (dense rows of 128 tokens, no masks, no packing overhead).

It checks that spanlink's float32 output is identical to span_marker's (spans and labels; scores
within 1e-4) and prints JSON; `primary_metric` is spanlink's speed-up over span_marker.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANG_FILES = [
    "conll/en/test.conllu",
    "conll/de/test.conllu",
    "conll/es/test.conllu",
    "conll/nl/test.conllu",
    "wikineural/fr/test.conllu",
    "wikineural/it/test.conllu",
    "wikineural/pl/test.conllu",
    "wikineural/pt/test.conllu",
    "wikineural/ru/test.conllu",
    "uner/UNER_Chinese-GSD/zh_gsd-ud-dev.iob2",
]


def language_of(index: int, total: int) -> str:
    """The source file of the ``index``-th picked sentence (files contribute equal blocks in order)."""
    per_file = -(-total // len(LANG_FILES))
    return LANG_FILES[min(index // per_file, len(LANG_FILES) - 1)].split("/")[1]


def pick_sentences(data: Path, total: int) -> list[str]:
    """A fixed, spread-out sample: every k-th sentence of 5-80 words from each language file."""
    from ner.corpora import read_corpus

    per_file = -(-total // len(LANG_FILES))
    picked: list[str] = []
    for rel in LANG_FILES:
        sentences = [s for s in read_corpus(data / rel) if 5 <= len(s.words) <= 80]
        step = max(1, len(sentences) // per_file)
        picked += [s.text for s in sentences[::step][:per_file]]
    return picked[:total]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the sides, each run in a child process -------------------------------------------------------


def side_spanlink(ckpt: str, texts: list[str], dtype: str) -> dict:
    import torch

    import ner

    torch.manual_seed(0)
    model = ner.load(ckpt, dtype=dtype)
    model.extract(texts[:16])  # warm-up
    start = time.perf_counter()
    result = model.extract(texts)
    seconds = time.perf_counter() - start
    rows = [[[e.start, e.end, e.label, e.score] for e in ents] for ents in result]
    from ner.tokenization import candidate_spans

    encs = model.tokenizer.encode(texts)
    tokens = sum(
        e.num_tokens + 2 * len(candidate_spans(e.num_words, model.config.entity_max_length)) for e in encs
    )
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": peak_rss_mb(), "total_tokens": tokens}


def side_compute(ckpt: str, total_tokens: int) -> dict:
    import torch

    import ner

    model = ner.load(ckpt)
    rows, width = max(1, total_tokens // 128), 128
    ids = torch.randint(5, model.config.encoder.vocab_size - 8, (rows, width))
    positions = (torch.arange(width) + 2).expand(rows, width)
    valid = torch.ones(rows, width, dtype=torch.bool)
    batch = 32
    with torch.inference_mode():
        model.encoder.forward_plain(ids[:4], positions[:4], valid[:4])
        start = time.perf_counter()
        for i in range(0, rows, batch):
            model.encoder.forward_plain(ids[i : i + batch], positions[i : i + batch], valid[i : i + batch])
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "tokens": rows * width}


def side_reference(ckpt: str, texts: list[str], batch_size: int) -> dict:
    from span_marker import SpanMarkerModel

    model = SpanMarkerModel.from_pretrained(ckpt)
    model.predict(texts[:8], batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    preds = model.predict(texts, batch_size=batch_size)
    seconds = time.perf_counter() - start
    rows = [[[e["char_start_index"], e["char_end_index"], e["label"], e["score"]] for e in p] for p in preds]
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def run_side(python: str, args: list[str]) -> dict:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([python, __file__, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"side {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(ours: list, theirs: list) -> tuple[list[int], float]:
    """(indices of sentences whose spans+labels differ, largest score difference among equal ones)."""
    differ, worst = [], 0.0
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if [r[:3] for r in a] != [r[:3] for r in b]:
            differ.append(i)
        else:
            worst = max([worst] + [abs(x[3] - y[3]) for x, y in zip(a, b)])
    return differ, worst


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ner")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--dtypes", default="float32,bfloat16,int8", help="spanlink modes to time")
    parser.add_argument("--reference-python", default=str(ROOT / ".venv-ref" / "bin" / "python"))
    parser.add_argument("--reference-batch-size", type=int, default=4, help="span_marker's default")
    parser.add_argument(
        "--model-max-length",
        type=int,
        default=256,
        help="the checkpoint's limit; span_marker pads every sample to it plus 2 x marker_max_length",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="time this SpanMarker checkpoint folder (span_marker must load it too) instead of a random one",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side:
        texts = json.loads(Path(args.texts).read_text()) if args.texts else []
        if args.side == "spanlink":
            out = side_spanlink(args.ckpt, texts, args.dtype)
        elif args.side == "compute":
            out = side_compute(args.ckpt, args.tokens)
        else:
            out = side_reference(args.ckpt, texts, args.reference_batch_size)
        print(json.dumps(out))
        return

    sys.path.insert(0, str(ROOT))
    from ner.random_checkpoint import CheckpointSpec, build_checkpoint

    texts = pick_sentences(args.data, args.sentences)
    work = Path(tempfile.mkdtemp(prefix="ner_speed_"))
    spec = CheckpointSpec(
        tokenizer="unigram",
        hidden_size=384,
        num_layers=12,
        num_heads=12,
        intermediate_size=1536,
        vocab_size=8000,
        model_max_length=args.model_max_length,
        outside_bias=0.6,  # low enough that the random classifier predicts entities to compare
        labels=("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"),
    )
    ckpt = str(args.model.resolve()) if args.model else str(build_checkpoint(work / "model", texts, spec))
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(texts))
    words = [len(t.split()) for t in texts]
    name = f"multilingual{len(texts)}"
    report: dict = {
        "dataset": name,
        "sentences": len(texts),
        "mean_words": sum(words) / len(words),
        "model_max_length": args.model_max_length,
        "checkpoint": str(args.model) if args.model else "random (ner.random_checkpoint)",
    }

    me = sys.executable
    runs = {
        d: run_side(me, ["--side", "spanlink", "--ckpt", ckpt, "--texts", str(texts_file), "--dtype", d])
        for d in args.dtypes.split(",")
    }
    base = runs["float32"]
    compute = run_side(me, ["--side", "compute", "--ckpt", ckpt, "--tokens", str(base["total_tokens"])])
    ref = run_side(
        args.reference_python,
        [
            "--side",
            "reference",
            "--ckpt",
            ckpt,
            "--texts",
            str(texts_file),
            "--reference-batch-size",
            str(args.reference_batch_size),
        ],
    )
    differ, worst = compare(base["rows"], ref["rows"])
    n = len(texts)
    report.update(
        {
            f"{name}_entities": sum(len(r) for r in base["rows"]),
            f"{name}_identical_to_span_marker": not differ and worst < 1e-4,
            f"{name}_sentences_differing": len(differ),
            "differing_sentences": [
                {"index": i, "language": language_of(i, n), "text": texts[i]} for i in differ[:20]
            ],
            f"{name}_max_score_diff": worst,
            f"{name}_span_marker_sents_per_s": n / ref["seconds"],
            f"{name}_span_marker_peak_rss_mb": ref["peak_rss_mb"],
            f"{name}_total_text_plus_marker_tokens": base["total_tokens"],
            f"{name}_compute_bound_seconds": compute["seconds"],
            f"{name}_compute_bound_sents_per_s": n / compute["seconds"],
        }
    )
    for dtype, run in runs.items():
        report[f"{name}_spanlink_{dtype}_sents_per_s"] = n / run["seconds"]
        report[f"{name}_spanlink_{dtype}_peak_rss_mb"] = run["peak_rss_mb"]
        report[f"{name}_spanlink_{dtype}_speedup_vs_span_marker"] = ref["seconds"] / run["seconds"]
        report[f"{name}_spanlink_{dtype}_vs_compute_bound"] = run["seconds"] / compute["seconds"]
        if dtype != "float32":
            same = sum(
                a_ == b_
                for a_, b_ in (
                    ([r[:3] for r in a], [r[:3] for r in b]) for a, b in zip(run["rows"], base["rows"])
                )
            )
            report[f"{name}_spanlink_{dtype}_agreement_with_float32"] = same / n
    report["primary_metric"] = f"{name}_spanlink_float32_speedup_vs_span_marker"
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
