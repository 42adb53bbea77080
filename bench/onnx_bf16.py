"""Can ONNX Runtime run the default model in bfloat16 on this CPU, and does it pay? (issue 20)

Two questions, both answered by measuring:

1. Kernels: which of the operators in the exported graphs have a bfloat16 kernel in the installed
   onnxruntime's CPU provider. Each operator is tried alone in a one-node graph with bfloat16
   inputs; the session either opens or fails with NOT_IMPLEMENTED. Without bfloat16 MatMul, Add,
   Mul, ... a graph converted to bfloat16 throughout cannot open at all.
2. The variant that does run: every float32 weight (initializers of at least 1,024 values) stored as
   bfloat16 (round to nearest even) behind a Cast to float32. The arithmetic stays float32; only the
   weights are rounded. The bench opens both graphs as the backend does and counts what ONNX
   Runtime's optimizer leaves of the Casts and bfloat16 initializers (if it folds them at load, the
   graph that runs is float32 again). It times the variant against the float32 export on the same
   sentences (`bench/ner_speed.py`'s, 10 languages), alternating, and counts the sentences with
   identical entities; it reports the graph sizes on disk, the resident memory after loading
   (each in a fresh process) and CoNLL test F1 per language (en, de, es, nl) of both on the same
   `--f1-limit` sentences per file (`bench/onnx_speed.py`'s selection).

    .venv/bin/spanlink export --out /tmp/default-onnx            # the default model, float32
    .venv/bin/python bench/onnx_bf16.py --model /tmp/default-onnx [--sentences 200] [--f1-limit 200]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from onnx_fp16 import sentences_per_second  # bench/ is on sys.path when a bench script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

GRAPHS = ("text.onnx", "markers.onnx")
MIN_WEIGHT = 1024
# Inputs per operator for the kernel probe: a shape per input, all bfloat16.
PROBES = {
    "MatMul": ([4, 4], [4, 4]),
    "Gemm": ([4, 4], [4, 4]),
    "Add": ([4, 4], [4, 4]),
    "Sub": ([4, 4], [4, 4]),
    "Mul": ([4, 4], [4, 4]),
    "Div": ([4, 4], [4, 4]),
    "Pow": ([4, 4], [4, 4]),
    "Max": ([4, 4], [4, 4]),
    "Sqrt": ([4, 4],),
    "Exp": ([4, 4],),
    "Erf": ([4, 4],),
    "Softmax": ([4, 4],),
    "ReduceMean": ([4, 4],),
    "ReduceMax": ([4, 4],),
    "ReduceSum": ([4, 4],),
    "LayerNormalization": ([4, 4], [4], [4]),
    "Transpose": ([4, 4],),
    "Concat": ([4, 4], [4, 4]),
}


def has_bf16_kernel(op: str, shapes: tuple[list[int], ...]) -> bool:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    names = [f"x{i}" for i in range(len(shapes))]
    attrs = {"axis": 0} if op == "Concat" else {}
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], **attrs)],
        "probe",
        [helper.make_tensor_value_info(n, TensorProto.BFLOAT16, s) for n, s in zip(names, shapes)],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - NOT_IMPLEMENTED is the answer, anything else is reported
        if "NOT_IMPLEMENTED" not in str(error):
            raise
        return False
    return True


def graph_ops(folder: Path) -> Counter:
    import onnx

    ops: Counter = Counter()
    for name in GRAPHS:
        graph = onnx.load(str(folder / name), load_external_data=False).graph
        ops.update(node.op_type for node in graph.node)
    return ops


def to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_weights(folder: Path, out: Path) -> Path:
    """A copy of an export folder whose large float32 weights are bfloat16 behind a Cast to float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shutil.copytree(folder, out, dirs_exist_ok=True)
    for name in GRAPHS:
        model = onnx.load(str(folder / name))
        graph = model.graph
        kept, casts = [], []
        for init in graph.initializer:
            if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < MIN_WEIGHT:
                kept.append(init)
                continue
            bits = to_bfloat16_bits(numpy_helper.to_array(init))
            stored = helper.make_tensor(
                f"{init.name}__bf16", TensorProto.BFLOAT16, list(init.dims), bits.tobytes(), raw=True
            )
            kept.append(stored)
            casts.append(helper.make_node("Cast", [stored.name], [init.name], to=TensorProto.FLOAT))
        del graph.initializer[:]
        graph.initializer.extend(kept)
        nodes = casts + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(model, str(out / name))
    return out


def after_optimization(folder: Path) -> dict[str, int]:
    """Cast nodes and bfloat16 initializers left in the graphs once ONNX Runtime has optimized them."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto

    counts = {"cast_nodes": 0, "bfloat16_initializers": 0}
    with tempfile.TemporaryDirectory(prefix="spanlink-bf16-opt-") as tmp:
        for name in GRAPHS:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.optimized_model_filepath = str(Path(tmp) / name)
            options.log_severity_level = 3  # its note on saving hardware-specific optimizations
            ort.InferenceSession(str(folder / name), sess_options=options, providers=["CPUExecutionProvider"])
            graph = onnx.load(options.optimized_model_filepath).graph
            counts["cast_nodes"] += sum(node.op_type == "Cast" for node in graph.node)
            counts["bfloat16_initializers"] += sum(
                i.data_type == TensorProto.BFLOAT16 for i in graph.initializer
            )
    return counts


def size_mb(folder: Path) -> float:
    return sum((folder / name).stat().st_size for name in GRAPHS) / 2**20


def resident_after_load_mb(folder: Path) -> float:
    """Resident memory of a fresh process after `ner.load(folder)` and one extract call."""
    load = f"m = ner.load({str(folder)!r})"
    run = "m.extract(['Angela Merkel visited Paris.']); print(onnx_speed.resident_mb())"
    code = f"import ner, onnx_speed; {load}; {run}"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, help="A float32 `spanlink export` folder.")
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--f1-limit", type=int, default=200, help="sentences per CoNLL test file; 0 skips F1")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ner")
    args = parser.parse_args()
    import onnxruntime

    import ner

    ops = graph_ops(args.model)
    kernels = {op: has_bf16_kernel(op, shapes) for op, shapes in PROBES.items()}
    report: dict = {
        "onnxruntime": onnxruntime.__version__,
        "cpu_bf16_kernel": kernels,
        "graph_ops_without_bf16_kernel": {
            op: n for op, n in sorted(ops.items()) if op in kernels and not kernels[op]
        },
        "graph_ops_not_probed": sorted(op for op in ops if op not in kernels),
    }
    from ner_speed import pick_sentences

    texts = pick_sentences(args.data, args.sentences)
    with tempfile.TemporaryDirectory(prefix="spanlink-bf16-") as tmp:
        bf16_dir = bf16_weights(args.model, Path(tmp) / "bf16")
        report["graphs_mb"] = {
            name: round(size_mb(f)) for name, f in (("float32", args.model), ("bf16_weights", bf16_dir))
        }
        report["after_ort_optimization"] = {
            name: after_optimization(f) for name, f in (("float32", args.model), ("bf16_weights", bf16_dir))
        }
        report["resident_after_load_mb"] = {
            name: round(resident_after_load_mb(f))
            for name, f in (("float32", args.model), ("bf16_weights", bf16_dir))
        }
        models = {"float32": ner.load(args.model), "bf16_weights": ner.load(bf16_dir)}
        for model in models.values():
            model.extract(texts[:8])  # warm-up
        speeds: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.repeats):  # alternate, so load drifts hit both sides alike
            for name, model in models.items():
                speeds[name].append(sentences_per_second(model, texts))
        a, b = (models[name].extract(texts, strip_spaces=True) for name in ("float32", "bf16_weights"))
        same = sum(
            [(e.start, e.end, e.label) for e in x] == [(e.start, e.end, e.label) for e in y]
            for x, y in zip(a, b)
        )
        best = {name: round(max(values), 2) for name, values in speeds.items()}
        report.update(
            {
                "sentences": len(texts),
                "sentences_per_second": best,
                "bf16_weights_vs_float32": round(best["bf16_weights"] / best["float32"], 3),
                "identical_sentences": same,
                "load_average_after_timing": os.getloadavg(),
            }
        )
        if args.f1_limit:
            from onnx_speed import CONLL, side_f1

            f1 = {
                name: side_f1(str(folder), "onnx", "float32", args.f1_limit, args.data)
                for name, folder in (("float32", args.model), ("bf16_weights", bf16_dir))
            }
            report["conll_test_f1"] = {
                name: {lang: round(run[lang]["f1"], 2) for lang in CONLL}
                | {"average": round(sum(run[lang]["f1"] for lang in CONLL) / len(CONLL), 2)}
                for name, run in f1.items()
            }
            report["conll_test_f1"]["sentences_per_file"] = args.f1_limit
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
