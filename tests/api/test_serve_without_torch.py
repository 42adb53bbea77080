"""`spanlink export` + `spanlink serve` on a machine without torch: the whole service on ONNX Runtime.

The export (made here, with torch) bundles the surface encoder of linking (`surface/`, the real
e5-small); a real uvicorn server then serves it in a subprocess where ``import torch`` fails, with
the default surface vectors. It must ingest, link and search, and find what the torch model finds.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

from tests.api.conftest import API_KEY, AUTH, REPO, free_port, wait_until_serving  # noqa: E402
from tests.ner.sentences import SENTENCES  # noqa: E402

TEXTS = [t for t in SENTENCES if t][:6]
NAMES = ["Wielka Brytania", "Великобритания", "Great Britain", "東京", "Angela Merkel", "x" * 300]
NAMES += ["Dr. J.R.R. Tolkien's", "ﬁligree Ünïcödé", "हिन्दी", "a\tb", "🙂"]  # tokenizer corners


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory) -> Path:
    """`spanlink export --model <tiny checkpoint>` with the surface encoder bundled (the default)."""
    from typer.testing import CliRunner

    from api.cli import app

    out = tmp_path_factory.mktemp("export") / "onnx"
    result = CliRunner().invoke(app, ["export", "--model", str(tiny_checkpoint), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["surface"] == str(out / "surface")
    from ner.onnx_export import readable_mode

    for path in [out, *out.rglob("*")]:  # a service may run as another user than the one who exported
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == readable_mode(0o777 if path.is_dir() else 0o666), (path, oct(mode))
    assert (out / "surface" / "surface.onnx.data").stat().st_size > 400e6  # the weights, memory-mapped
    return out


def test_bundled_surface_vectors_equal_the_torch_ones(exported):
    """Stores written by either backend are searched by the other: the vectors must agree."""
    from linking.embedding import SurfaceEmbedder, make_embedder

    class Exported:  # what make_embedder reads of an ONNX model
        backend, folder = "onnx", exported

    onnx = make_embedder("surface", Exported())
    assert onnx._pool.__class__.__name__ == "OnnxSurfacePooler"
    theirs = SurfaceEmbedder(backend="torch").embed_strings(NAMES)
    ours = onnx.embed_strings(NAMES)
    assert ours.shape == theirs.shape == (len(NAMES), 384)
    assert np.abs(ours - theirs).max() < 1e-5
    assert float(ours[0] @ ours[1]) > float(ours[0] @ ours[3])  # a translation is nearer than Tokyo


@pytest.fixture(scope="module")
def torch_free_server(exported, torch_free_env, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("no-torch-store")
    port = free_port()
    command = [sys.executable, "-m", "api", "serve", "--model", str(exported)]
    command += ["--data-dir", str(data_dir), "--port", str(port), "--api-key", API_KEY]
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(command, cwd=REPO, env=torch_free_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(process, url, data_dir / "server.log", timeout=120)
    yield url, data_dir
    process.terminate()
    try:
        assert process.wait(30) in (0, -15)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()


def test_serve_ingest_and_search_without_torch(torch_free_server, tiny_checkpoint):
    import ner

    url, data_dir = torch_free_server
    with httpx.Client(base_url=url, timeout=120) as http:
        versions = http.get("/-/versions").json()
        assert versions["model"]["backend"] == "onnx" and versions["vectors"] == "surface"
        documents = [{"id": f"doc-{i}", "text": text} for i, text in enumerate(TEXTS)]
        response = http.post("/v1/documents", json={"documents": documents}, headers=AUTH)
        assert response.status_code == 200, response.text
        linked = response.json()["documents"]
        found = [[(m["start"], m["end"], m["label"]) for m in doc["mentions"]] for doc in linked]

        expected = ner.load(tiny_checkpoint).extract(TEXTS, strip_spaces=True)
        assert found == [[(e.start, e.end, e.label) for e in es] for es in expected]
        assert sum(map(len, found)) > 0, "a model that finds nothing proves nothing"

        text, mention = next((t, d["mentions"][0]) for t, d in zip(TEXTS, linked) if d["mentions"])
        query = {"text": text[mention["start"] : mention["end"]], "k": 3}
        hits = http.post("/v1/entities/similar", json=query)  # the query's surface vector, on ORT
        assert hits.status_code == 200, hits.text
        assert mention["entity_id"] in [h["entity"]["id"] for h in hits.json()["data"]]
        assert http.get("/health").status_code == 200
        page = http.get(f"/entities/{mention['entity_id']}")  # the web page, server-rendered
        assert page.status_code == 200 and text[mention["start"] : mention["end"]] in page.text
    log = (data_dir / "server.log").read_text()
    assert "Traceback" not in log


def test_an_installed_torch_is_not_imported_either(exported, tmp_path):
    """Where torch is installed, the service on an export still never imports it (nor transformers,
    which imports torch whenever it can): same memory and start-up as on a machine without it."""
    code = """
import sys
from api.service import Service
from api.settings import ServiceSettings

service = Service.open(ServiceSettings(model=sys.argv[1], data_dir=sys.argv[2]))
try:
    service.extract(["Angela Merkel visited Paris."])
    service.embedder.embed("Angela Merkel visited Paris.", [(0, 13)])
finally:
    service.close()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers")))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", code, str(exported), str(tmp_path / "store")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_commands_that_need_torch_say_so(torch_free_env, tiny_checkpoint, exported, tmp_path):
    """Without torch, a torch model or an export gets one line that says why, not a traceback."""
    for args in (
        ["extract", "--model", str(tiny_checkpoint), "Angela Merkel"],
        ["export", "--model", str(tiny_checkpoint), "--out", str(tmp_path / "x")],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "api", *args],
            env=torch_free_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 1, (args, done.stderr)
        assert "needs torch, which is not installed here" in done.stderr, (args, done.stderr)
        assert "unexpected" not in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "api", "extract", "--model", str(exported), "Angela Merkel"],
        env=torch_free_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
