"""ONNX Runtime against torch (and span_marker): speed, agreement, memory and CoNLL F1.

    .venv/bin/python bench/onnx_speed.py [--sentences 200] [--parts random,default,f1] [--f1-limit 300]
        [--out FILE]

Parts, each side in its own process (so peak and resident memory are its own):

* ``random``: the 12-layer/384 random checkpoint of `bench/ner_speed.py` (same sentences, same
  builder): torch float32, ORT float32 and span_marker 1.8.1 (.venv-ref), with ORT float32's
  agreement with torch float32 and span_marker (spans + labels; largest score difference).
* ``default``: the embedded default model: torch float32 / bfloat16, ORT float32 / int8
  (`spanlink export` and `spanlink export --quantize int8`), sentences/s, agreement with torch
  float32, resident memory after loading and peak memory.
* ``f1``: CoNLL test F1 and sentences/s per language (en, de, es, nl) of the default model for each
  of `--f1-modes` (ORT float32 / int8, torch float32 / bfloat16), on `--f1-limit` sentences per
  file spread evenly over it (0 = all).

Exports are written to a temporary folder first and not timed. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ner_speed  # noqa: E402 - bench/ner_speed.py: sentences, checkpoint spec, span_marker side

CONLL = ["en", "de", "es", "nl"]


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, which exec resets (ru_maxrss keeps the parent's peak)."""
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def resident_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- sides (child processes) ----------------------------------------------------------------------


def side_extract(model: str, backend: str, dtype: str, texts: list[str]) -> dict:
    import ner

    loaded = ner.load(None if model == "default" else model, backend=backend, dtype=dtype)
    loaded_mb = resident_mb()
    loaded.extract(texts[:16])  # warm-up
    start = time.perf_counter()
    result = loaded.extract(texts)
    seconds = time.perf_counter() - start
    rows = [[[e.start, e.end, e.label, e.score] for e in ents] for ents in result]
    return {
        "seconds": seconds,
        "rows": rows,
        "resident_after_load_mb": loaded_mb,
        "resident_after_run_mb": resident_mb(),
        "peak_rss_mb": peak_rss_mb(),
        "load_average_at_end": os.getloadavg(),
    }


def side_f1(model: str, backend: str, dtype: str, limit: int, data: Path) -> dict:
    import ner
    from ner.corpora import read_corpus
    from ner.scoring import score_model

    loaded = ner.load(None if model == "default" else model, backend=backend, dtype=dtype)
    loaded.extract(["Angela Merkel met Emmanuel Macron in Paris."] * 4)  # warm-up, not timed
    out = {}
    for lang in CONLL:
        sentences = read_corpus(data / "conll" / lang / "test.conllu")
        if 0 < limit < len(sentences):
            step = len(sentences) / limit
            sentences = [sentences[int(i * step)] for i in range(limit)]
        run = score_model(loaded, sentences)
        out[lang] = {
            "f1": run.accumulator.compute().f1 * 100,
            "sentences": run.sentences,
            "sents_per_s": run.sentences_per_second,
        }
    out["load_average_at_end"] = os.getloadavg()
    return out


def run_side(args: list[str], python: str = sys.executable, script: str = __file__) -> dict:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run([python, script, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"side {args[:3]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agreement(rows: list, base: list) -> tuple[float, float]:
    """(share of sentences with the same spans + labels, largest score difference among those)."""
    same, worst = 0, 0.0
    for a, b in zip(rows, base):
        if [r[:3] for r in a] == [r[:3] for r in b]:
            same += 1
            worst = max([worst] + [abs(x[3] - y[3]) for x, y in zip(a, b)])
    return same / len(base), worst


def time_modes(modes: list[tuple[str, str, str, str]], texts_file: Path, n: int) -> dict:
    """Each (label, model, backend, dtype) in its own process; agreement against the first."""
    report, base = {}, None
    for label, model, backend, dtype in modes:
        run = run_side(
            [
                "--side",
                "extract",
                "--model",
                model,
                "--backend",
                backend,
                "--dtype",
                dtype,
                "--texts",
                str(texts_file),
            ]
        )
        base = base or run
        same, worst = agreement(run["rows"], base["rows"])
        report[label] = {
            "sents_per_s": round(n / run["seconds"], 2),
            "agreement_with_first": round(same, 4),
            "max_score_diff_when_same": worst,
            "entities": sum(len(r) for r in run["rows"]),
            "resident_after_load_mb": round(run["resident_after_load_mb"]),
            "resident_after_run_mb": round(run["resident_after_run_mb"]),
            "peak_rss_mb": round(run["peak_rss_mb"]),
            "load_average_at_end": [round(x, 2) for x in run["load_average_at_end"]],
            "rows": run["rows"],
        }
    return report


def export(model, folder: Path, quantize: str | None) -> str:  # noqa: ANN001 - a torch SpanModel
    from ner.onnx_export import export_onnx

    start = time.perf_counter()
    export_onnx(model, folder, quantize=quantize)
    print(f"exported {folder.name} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ner")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--parts", default="random,default,f1")
    parser.add_argument("--f1-limit", type=int, default=300, help="sentences per CoNLL test file (0 = all)")
    parser.add_argument(
        "--f1-modes",
        default="onnx_float32,onnx_int8,torch_float32,torch_bfloat16",
        help="which of onnx_float32, onnx_int8, torch_float32, torch_bfloat16 the f1 part scores",
    )
    parser.add_argument("--reference-python", default=str(ROOT / ".venv-ref" / "bin" / "python"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side == "extract":
        texts = json.loads(Path(args.texts).read_text())
        print(json.dumps(side_extract(args.model, args.backend, args.dtype, texts)))
        return
    if args.side == "f1":
        print(json.dumps(side_f1(args.model, args.backend, args.dtype, args.f1_limit, args.data)))
        return

    import ner
    from ner.random_checkpoint import build_checkpoint

    parts = args.parts.split(",")
    texts = ner_speed.pick_sentences(args.data, args.sentences)
    n = len(texts)
    work = Path(tempfile.mkdtemp(prefix="onnx_speed_"))
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(texts))
    report: dict = {"sentences": n, "cpus": os.cpu_count(), "load_average": os.getloadavg()}

    if "random" in parts:
        from ner.random_checkpoint import CheckpointSpec

        spec = CheckpointSpec(  # bench/ner_speed.py's checkpoint: the default model's shape
            tokenizer="unigram",
            hidden_size=384,
            num_layers=12,
            num_heads=12,
            intermediate_size=1536,
            vocab_size=8000,
            model_max_length=256,
            outside_bias=0.6,
            labels=("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"),
        )
        ckpt = str(build_checkpoint(work / "random", texts, spec))
        onnx_dir = export(ner.load(ckpt), work / "random-onnx", None)
        modes = time_modes(
            [("torch_float32", ckpt, "torch", "float32"), ("onnx_float32", onnx_dir, "onnx", "float32")],
            texts_file,
            n,
        )
        ref = (
            run_side(
                [
                    "--side",
                    "reference",
                    "--ckpt",
                    ckpt,
                    "--texts",
                    str(texts_file),
                    "--reference-batch-size",
                    "4",
                ],
                python=args.reference_python,
                script=ner_speed.__file__,
            )
            if Path(args.reference_python).exists()
            else None
        )
        random_report: dict = {"checkpoint": "random 12-layer/384 (bench/ner_speed.py's)"}
        for label, run in modes.items():
            rows = run.pop("rows")
            random_report[label] = run
            if ref:
                same, worst = agreement(rows, ref["rows"])
                run["agreement_with_span_marker"], run["max_score_diff_vs_span_marker"] = (
                    round(same, 4),
                    worst,
                )
                run["speedup_vs_span_marker"] = round(ref["seconds"] / (n / run["sents_per_s"]), 2)
        if ref:
            random_report["span_marker"] = {
                "sents_per_s": round(n / ref["seconds"], 2),
                "peak_rss_mb": round(ref["peak_rss_mb"]),
            }
        report["random"] = random_report

    if "default" in parts or "f1" in parts:
        default = ner.load()
        fp32_dir = export(default, work / "default-onnx-fp32", None)
        int8_dir = export(default, work / "default-onnx-int8", "int8")
        del default
        if "default" in parts:
            modes = time_modes(
                [
                    ("torch_float32", "default", "torch", "float32"),
                    ("torch_bfloat16", "default", "torch", "bfloat16"),
                    ("onnx_float32", fp32_dir, "onnx", "float32"),
                    ("onnx_int8", int8_dir, "onnx", "int8"),
                ],
                texts_file,
                n,
            )
            for run in modes.values():
                run.pop("rows")
            base = modes["torch_float32"]["sents_per_s"]
            for run in modes.values():
                run["speedup_vs_torch_float32"] = round(run["sents_per_s"] / base, 2)
            report["default"] = modes
        if "f1" in parts:
            known = {
                "onnx_float32": (fp32_dir, "onnx", "float32"),
                "onnx_int8": (int8_dir, "onnx", "int8"),
                "torch_float32": ("default", "torch", "float32"),
                "torch_bfloat16": ("default", "torch", "bfloat16"),
            }
            f1 = {}
            for label in args.f1_modes.split(","):
                model, backend, dtype = known[label]
                f1[label] = run_side(
                    [
                        *("--side", "f1", "--model", model, "--backend", backend, "--dtype", dtype),
                        *("--f1-limit", str(args.f1_limit), "--data", str(args.data)),
                    ]
                )
            f1["average"] = {p: sum(f1[p][lang]["f1"] for lang in CONLL) / len(CONLL) for p in list(f1)}
            f1["sents_per_s_all_files"] = {
                p: sum(f1[p][lang]["sentences"] for lang in CONLL)
                / sum(f1[p][lang]["sentences"] / f1[p][lang]["sents_per_s"] for lang in CONLL)
                for p in f1
                if p != "average"
            }
            f1["sentences_per_file"] = args.f1_limit or "all"
            report["conll_test_f1"] = f1
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
