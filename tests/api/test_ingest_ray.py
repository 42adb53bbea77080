"""`spanlink ingest --ray`: a real local Ray cluster (one per test session) against the in-process ingest.

The cluster's auth token (Ray writes it under $HOME) and session files (the system temp folder by
default) go to a folder this session owns, removed at the end. Drivers run in this process (typer's
runner, which finds Ray initialized and reuses it) or as subprocesses that join the cluster through
RAY_ADDRESS. The model is the session's tiny random checkpoint; vectors are span vectors.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()

# Hand-written news snippets in five languages; some repeat names across languages and documents.
TEXTS = {
    "en": [
        "Nigel Farage met Boris Johnson in London on Tuesday.",
        "Theresa May told the House of Commons that Brexit means Brexit.",
        "Angela Merkel and Emmanuel Macron spoke in Brussels about the European Union.",
        "Donald Trump visited Warsaw before meeting Vladimir Putin in Helsinki.",
    ],
    "pl": [
        "Spotkanie Farage'a z Johnsonem odbyło się w Londynie.",
        "Theresa May przemawiała w Izbie Gmin o brexicie.",
        "Angela Merkel rozmawiała z Emmanuelem Macronem w Brukseli.",
    ],
    "ru": [
        "Тереза Мей выступила в Палате общин.",
        "Дональд Трамп встретился с Владимиром Путиным в Хельсинки.",
    ],
    "cs": ["Angela Merkelová jednala s Emmanuelem Macronem v Bruselu."],
    "de": ["Boris Johnson traf Angela Merkel in Berlin."],
}
GOLD = [  # JSON lines with gold mentions (linking without NER)
    {"id": "g1", "text": "Nigel Farage spoke in London.", "mentions": [[0, 12, "PER"], [22, 28, "LOC"]]},
    {"id": "g2", "text": "Farage left London.", "mentions": [[0, 6, "PER"], [12, 18, "LOC"]]},
    {"id": "g3", "text": "Тереза Мей и Найджел Фарадж.", "mentions": [[0, 10, "PER"], [13, 27, "PER"]]},
]


def _mentions(spans: list) -> list[dict]:
    return [{"start": s, "end": e, "label": label} for s, e, label in spans]


def write_corpus(folder: Path, copies: int = 1) -> Path:
    """Text files in language folders plus a JSON-lines file (gold mentions and NER documents)."""
    for copy in range(copies):
        for language, texts in TEXTS.items():
            for number, text in enumerate(texts):
                path = folder / f"c{copy}" / language / f"{number}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        rows = [{**r, "id": f"{r['id']}-{copy}", "mentions": _mentions(r["mentions"])} for r in GOLD]
        rows.append({"id": f"n-{copy}", "text": "Boris Johnson in Brussels.", "language": "en"})
        (folder / f"c{copy}" / "gold.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
    return folder


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[dict[str, str]]:
    """``ray.init(num_cpus=2)`` with its token and session files in a folder of ours; yields the
    environment a subprocess driver needs to join it."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (bash scripts/setup --dev)")
    pytest.importorskip("ray.data")
    folder = Path(tempfile.mkdtemp(prefix="slray-"))  # short: Ray's Unix sockets live below it
    (folder / "home").mkdir()
    saved = {name: os.environ.get(name) for name in ("HOME", "RAY_TMPDIR")}
    os.environ.update(HOME=str(folder / "home"), RAY_TMPDIR=str(folder / "tmp"))
    try:
        info = ray.init(
            num_cpus=2, _temp_dir=str(folder / "tmp"), include_dashboard=False, logging_level="WARNING"
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    env = {
        "RAY_ADDRESS": info.address_info["gcs_address"],
        "HOME": str(folder / "home"),
        "RAY_TMPDIR": str(folder / "tmp"),
    }
    yield env
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def ingest(args: list[str]) -> tuple[list[dict], dict | None]:
    """Run `spanlink ingest` in this process; the per-document lines and the report."""
    result = runner.invoke(app, ["ingest", *args])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    report = lines.pop()["report"] if lines and "report" in lines[-1] else None
    return lines, report


def partition(target: str) -> tuple[set, set]:
    """The stored mentions (document id, start, end, label) and their partition into entities."""
    from index import Store

    store = Store.open(target) if "://" in target else Store.open(Path(target) / "spanlink.db")
    try:
        from sqlalchemy import text

        with store.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT d.external_id, m.start_char, m.end_char, m.label, m.entity_id "
                    "FROM mentions m JOIN documents d ON d.id = m.document_id"
                )
            ).all()
    finally:
        store.close(save=False)
    groups: dict[int, set] = {}
    for external_id, start, end, label, entity_id in rows:
        groups.setdefault(entity_id, set()).add((external_id, start, end, label))
    mentions = {m for group in groups.values() for m in group}
    return mentions, {frozenset(group) for group in groups.values()}


def stored_ids(data_dir: Path) -> list[str]:
    from sqlalchemy import text

    from index import Store

    store = Store.open(data_dir / "spanlink.db")
    try:
        with store.engine.connect() as conn:
            return [row[0] for row in conn.execute(text("SELECT external_id FROM documents"))]
    finally:
        store.close(save=False)


def model_args(checkpoint: Path) -> list[str]:
    return ["-m", str(checkpoint), "--vectors", "span"]


def test_ray_ingest_equals_the_in_process_ingest(ray_cluster, tiny_checkpoint, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    local, local_report = ingest(
        [str(corpus), *model_args(tiny_checkpoint), "--data-dir", str(tmp_path / "a")]
    )
    on_ray, ray_report = ingest(
        [str(corpus), *model_args(tiny_checkpoint), "--data-dir", str(tmp_path / "b"), "--ray", "auto"]
    )
    assert local_report is None  # without --bulk/--ray: today's ingest, no report line
    assert [line["id"] for line in on_ray] == [line["id"] for line in local]  # input order kept
    assert len(on_ray) == sum(map(len, TEXTS.values())) + len(GOLD) + 1
    mentions, groups = partition(str(tmp_path / "a"))
    assert mentions and partition(str(tmp_path / "b")) == (mentions, groups)
    assert ray_report["documents"] == len(on_ray) and ray_report["failed"] == 0
    assert ray_report["mentions"] == len(mentions) and ray_report["entities_created"] == len(groups)
    assert ray_report["executor"]["kind"] == "ray" and ray_report["stages"]["model"]["seconds"] > 0


@pytest.mark.postgres
def test_ray_ingest_into_postgres_equals_the_in_process_ingest(
    ray_cluster, tiny_checkpoint, tmp_path, pg_server
):
    from tests.postgres import create_database, drop_database

    corpus = write_corpus(tmp_path / "corpus")
    ingest([str(corpus), *model_args(tiny_checkpoint), "--data-dir", str(tmp_path / "a")])
    url = create_database(pg_server)
    try:
        _, report = ingest(
            [
                str(corpus),
                *model_args(tiny_checkpoint),
                "--db",
                url,
                "--data-dir",
                str(tmp_path / "b"),
                "--ray",
                "auto",
            ]
        )
        assert report["failed"] == 0
        assert partition(url) == partition(str(tmp_path / "a"))
    finally:
        drop_database(pg_server, url)


def test_a_killed_driver_rerun_stores_every_document_once(ray_cluster, tiny_checkpoint, tmp_path):
    corpus = write_corpus(tmp_path / "corpus", copies=6)  # 72 documents
    command = [sys.executable, "-m", "api", "ingest", str(corpus), *model_args(tiny_checkpoint)]
    command += ["--data-dir", str(tmp_path / "s"), "--ray", "auto"]
    env = {**os.environ, **ray_cluster}
    first = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    seen = 0
    while seen < 5:  # killed once it has stored a few documents
        line = first.stdout.readline()
        assert line, "the first run ended before it stored five documents"
        seen += 1
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    first.stdout.close()
    before = stored_ids(tmp_path / "s")
    total = 6 * (sum(map(len, TEXTS.values())) + len(GOLD) + 1)
    assert 5 <= len(before) < total, "the kill did not land mid-way"

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout.splitlines()[-1])["report"]
    ids = stored_ids(tmp_path / "s")
    assert len(ids) == len(set(ids)) == total
    assert report["skipped"] == len(before) and report["documents"] == total - len(before)
    assert report["failed"] == 0


def test_bad_documents_are_reported_and_the_good_ones_stored(ray_cluster, tiny_checkpoint, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("Angela Merkel visited Paris.", encoding="utf-8")
    (corpus / "latin1.txt").write_bytes("Zürich".encode("latin-1"))
    lines = [
        json.dumps({"id": "ok-1", "text": "Boris Johnson in London."}),
        '{"id": "broken", "text": ',
        json.dumps({"id": "empty", "text": "  "}),
        json.dumps({"id": "outside", "text": "Paris", "mentions": [{"start": 0, "end": 9, "label": "LOC"}]}),
        json.dumps({"id": "surrogate", "text": "Merkel \ud800"}),
        json.dumps(
            {"id": "ok-2", "text": "Nigel Farage", "mentions": [{"start": 0, "end": 12, "label": "PER"}]}
        ),
    ]
    (corpus / "mixed.jsonl").write_bytes(
        ("\n".join(lines) + "\n").encode() + b'{"id": "bytes", "text": "\xff"}\n'
    )
    _, report = ingest(
        [str(corpus), *model_args(tiny_checkpoint), "--data-dir", str(tmp_path / "s"), "--ray", "auto"]
    )
    assert sorted(stored_ids(tmp_path / "s")) == sorted([str(corpus / "good.txt"), "ok-1", "ok-2"])
    failures = {f["where"].rsplit("/", 1)[-1]: f["reason"] for f in report["failures"]}
    assert set(failures) == {
        "latin1.txt:1",
        "mixed.jsonl:2",
        "mixed.jsonl:3",
        "mixed.jsonl:4",
        "mixed.jsonl:5",
        "mixed.jsonl:7",
    }
    assert "not valid UTF-8" in failures["latin1.txt:1"] and "invalid JSON" in failures["mixed.jsonl:2"]
    assert "not valid text" in failures["mixed.jsonl:5"] and "not valid UTF-8" in failures["mixed.jsonl:7"]
    assert report["documents"] == 3 and report["failed"] == 6


def _actor_pids() -> list[int]:
    """Processes of the model actors (Ray titles them ``ray::MapWorker(MapBatches(ModelActor))``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"ModelActor" in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow  # an actor restart (a second model load) under Ray: -m slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the actor's process in /proc")
def test_a_dead_worker_is_retried_without_duplicate_writes(ray_cluster, tiny_checkpoint, tmp_path):
    corpus = write_corpus(tmp_path / "corpus", copies=6)
    command = [sys.executable, "-m", "api", "ingest", str(corpus), *model_args(tiny_checkpoint)]
    command += ["--data-dir", str(tmp_path / "s"), "--ray", "auto", "--batch-docs", "1"]
    job = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **ray_cluster},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = [job.stdout.readline()]  # the actor is up and has run batches: kill it
    victims = _actor_pids()
    assert victims, "no model actor process found"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    lines += job.stdout.readlines()
    assert job.wait(timeout=240) == 0
    report = json.loads(lines[-1])["report"]
    ids = stored_ids(tmp_path / "s")
    total = 6 * (sum(map(len, TEXTS.values())) + len(GOLD) + 1)
    assert len(ids) == len(set(ids)) == total and report["documents"] == total and report["failed"] == 0
