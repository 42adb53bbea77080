"""Does a float16 ONNX model pay on this CPU? (issue 20: "bf16/fp16 where ORT supports it on CPU").

Converts an exported float32 folder's graphs to float16 (onnxruntime's own converter, inputs and
outputs kept float32), then times both on the same sentences, alternating, and counts sentences
with identical entities. On ONNX Runtime's CPU provider most float16 kernels run through casts to
float32, so a gain is not expected; this measures it instead of assuming it.

    .venv/bin/spanlink export --out /tmp/default-onnx            # the default model, float32
    .venv/bin/python bench/onnx_fp16.py --model /tmp/default-onnx --sentences 60
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.ner.sentences import EXTRA_TEXTS, SENTENCES  # noqa: E402


def to_float16(folder: Path, out: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    shutil.copytree(folder, out, dirs_exist_ok=True)
    for name in ("text.onnx", "markers.onnx"):
        model = convert_float_to_float16(onnx.load(str(folder / name)), keep_io_types=True)
        onnx.save(model, str(out / name))
    return out


def sentences_per_second(model, texts: list[str]) -> float:  # noqa: ANN001 - ner.SpanModel
    start = time.perf_counter()
    model.extract(texts, strip_spaces=True)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, help="A float32 `spanlink export` folder.")
    parser.add_argument("--sentences", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import ner

    texts = [t for t in SENTENCES + EXTRA_TEXTS if t.strip()][: args.sentences]
    with tempfile.TemporaryDirectory(prefix="spanlink-fp16-") as tmp:
        fp32 = ner.load(args.model)
        fp16 = ner.load(to_float16(args.model, Path(tmp) / "fp16"))
        speeds: dict[str, list[float]] = {"float32": [], "float16": []}
        for _ in range(args.repeats):  # alternate, so load drifts hit both sides alike
            speeds["float32"].append(sentences_per_second(fp32, texts))
            speeds["float16"].append(sentences_per_second(fp16, texts))
        a, b = fp32.extract(texts, strip_spaces=True), fp16.extract(texts, strip_spaces=True)
        same = sum(
            [(e.start, e.end, e.label) for e in x] == [(e.start, e.end, e.label) for e in y]
            for x, y in zip(a, b)
        )
    best = {name: max(values) for name, values in speeds.items()}
    print(
        json.dumps(
            {
                "sentences": len(texts),
                "sentences_per_second": best,
                "float16_vs_float32": round(best["float16"] / best["float32"], 3),
                "identical_sentences": same,
            }
        )
    )


if __name__ == "__main__":
    main()
