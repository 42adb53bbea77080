"""Bulk ingest throughput: `spanlink ingest --ray` with 1 and 2 actors against the in-process ingest.

A bounded BSNLP sample (the first documents of each topic, in turn) is written as JSON lines twice:
with the gold mentions (linking only: mention vectors + writes) and without (NER + vectors + writes).
Each configuration ingests it into a fresh SQLite store with the default model and surface vectors;
the script prints the run reports (documents/s overall and per stage) and, per configuration, the
B-cubed F1 of the stored entities against the gold clusters and against the sequential run's
partition (1.0 = the same partition). Ray runs join one local cluster that this script starts.

    .venv/bin/python bench/ray_ingest.py --data ../shared/data/el/bsnlp --docs 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from linking.bsnlp import read_bsnlp  # noqa: E402
from linking.metrics import clustering_scores  # noqa: E402

TOPICS = ["brexit", "ec", "trump", "asia_bibi"]


def sample(data: Path, count: int) -> list:
    docs, _ = read_bsnlp(data, TOPICS)
    by_topic = {t: [d for d in docs if d.topic == t] for t in TOPICS}
    out = []
    for i in range(count):
        topic = by_topic[TOPICS[i % len(TOPICS)]]
        if i // len(TOPICS) < len(topic):
            out.append(topic[i // len(TOPICS)])
    return out


def write_jsonl(docs: list, path: Path, gold: bool) -> None:
    with path.open("w", encoding="utf-8") as out:
        for d in docs:
            row = {
                "id": d.external_id,
                "text": d.text,
                "language": d.language,
                "metadata": {"topic": d.topic},
            }
            if gold:
                row["mentions"] = [{"start": m.start, "end": m.end, "label": m.label} for m in d.mentions]
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def run(source: Path, store: Path, extra: list[str], env: dict[str, str]) -> dict:
    command = [sys.executable, "-m", "api", "ingest", str(source), "--data-dir", str(store), "--bulk", *extra]
    started, cpu = time.perf_counter(), _child_cpu()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.splitlines()[-1])["report"]
    report["process_seconds"] = round(time.perf_counter() - started, 2)  # + model loads, Ray start-up
    # CPU seconds of the ingest process (all of an in-process run; the driver only of a Ray run, whose
    # actors are the cluster's processes): a figure that other load on the machine does not inflate.
    report["process_cpu_seconds"] = round(_child_cpu() - cpu, 2)
    return report


def _child_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def assignments(store: Path) -> dict[tuple[str, int, int], int]:
    import sqlite3

    with sqlite3.connect(store / "spanlink.db") as conn:
        rows = conn.execute(
            "SELECT d.external_id, m.start_char, m.end_char, m.entity_id FROM mentions m "
            "JOIN documents d ON d.id = m.document_id"
        ).fetchall()
    return {(d, s, e): entity for d, s, e, entity in rows}


def b3(docs: list, found: dict, reference: dict | None = None) -> float:
    """B-cubed F1 against the gold clusters (topic-scoped ids, gold spans), or against ``reference``'s
    partition (every span stored by both runs)."""
    if reference is not None:
        common = sorted(set(found) & set(reference))
        keys, responses = [reference[s] for s in common], [found[s] for s in common]
    else:
        keys, responses = [], []
        for d in docs:
            for m in d.mentions:
                span = (d.external_id, m.start, m.end)
                if span in found:
                    keys.append(f"{d.topic}|{m.cluster}")
                    responses.append(found[span])
    return round(clustering_scores(keys, responses)["b3"]["f1"], 4) if keys else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/el/bsnlp")
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--actors", default="1,2", help="actor counts to run (comma-separated)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--modes", default="gold,predicted")
    args = parser.parse_args()

    docs = sample(args.data, args.docs)
    work = Path(tempfile.mkdtemp(prefix="slbench-"))
    (work / "home").mkdir()
    env = {**os.environ, "HOME": str(work / "home"), "RAY_TMPDIR": str(work / "tmp")}
    os.environ.update(HOME=env["HOME"], RAY_TMPDIR=env["RAY_TMPDIR"])  # Ray's token and session files
    import ray

    info = ray.init(
        num_cpus=args.cpus, _temp_dir=str(work / "tmp"), include_dashboard=False, logging_level="ERROR"
    )
    env = {**os.environ, "RAY_ADDRESS": info.address_info["gcs_address"]}  # + what ray.init set (auth)
    results: dict = {
        "documents": len(docs),
        "mentions": sum(len(d.mentions) for d in docs),
        "cpus": os.cpu_count(),
    }
    try:
        for mode in args.modes.split(","):
            source = work / f"{mode}.jsonl"
            write_jsonl(docs, source, gold=mode == "gold")
            configs = {"in-process": []}
            for n in args.actors.split(","):
                # Ray Data's read and parse tasks need a CPU too: the actors share what is left.
                cpus = max(0.25, min(1.0, (args.cpus - 0.5) / int(n)))
                configs[f"ray-{n}-actors"] = ["--ray", "auto", "--actors", n, "--cpus-per-actor", str(cpus)]
            reference = None
            for name, extra in configs.items():
                store = work / f"{mode}-{name}"
                report = run(source, store, extra, env)
                found = assignments(store)
                reference = reference or found
                report.pop("failures")
                report["b3_vs_gold"] = b3(docs, found)
                report["b3_vs_in_process"] = b3(docs, found, reference)
                results[f"{mode}/{name}"] = report
                print(json.dumps({f"{mode}/{name}": report}), flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
