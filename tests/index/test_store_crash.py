"""Crash safety: SIGKILL a child in the middle of a batch, reopen, check, and finish the batch."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import crash_child
import pytest

from index import NotFound, Store

ROOT = Path(__file__).resolve().parents[2]
SIGNAL_AFTER = 40


def run_child_and_kill(db: Path, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    child = subprocess.Popen(
        [sys.executable, str(Path(crash_child.__file__)), str(db), mode, str(SIGNAL_AFTER)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = child.stdout.readline().strip()
        assert line == "READY", (line, child.stderr.read() if child.poll() is not None else "")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("mode", ["in_transaction", "running", "saving"])
def test_sigkill_mid_batch_then_recover(tmp_path, mode):
    db = tmp_path / "crash.db"
    run_child_and_kill(db, mode)

    with Store.open(db) as store:
        report = store.check()  # PRAGMA integrity_check, orphans, entity counts, FAISS ids == DB ids
        assert report.ok, report
        stats = store.stats()
        assert stats.mention_vectors == stats.mentions and stats.entity_vectors == stats.entities
        # Documents are committed in order: exactly a prefix of the batch is there, each one complete.
        present = stats.documents
        assert present >= SIGNAL_AFTER
        if mode == "in_transaction":
            assert present == SIGNAL_AFTER  # the open transaction was rolled back
        for i in range(crash_child.BATCH):
            expected, names = crash_child.document(i)
            if i >= present:
                with pytest.raises(NotFound):
                    store.get_document(external_id=expected.external_id)
                continue
            doc = store.get_document(external_id=expected.external_id)
            assert doc.text == expected.text and doc.metadata == {"i": i}
            assert [m.text for m in doc.mentions] == names
            assert [store.get_entity(m.entity_id).name for m in doc.mentions] == names
        # Leftover temp files of an interrupted save are removed on open.
        assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

        # Ingesting the whole batch again completes it (replacing what was there).
        crash_child.ingest(store)
        stats = store.stats()
        assert stats.documents == crash_child.BATCH and stats.mentions == 3 * crash_child.BATCH
        assert stats.entities == len(crash_child.NAMES)
        report = store.check()
        assert report.ok, report
