"""An ONNX export runs where torch cannot be imported, with the torch backend's output.

The export is made here (exporting needs torch); a subprocess in which ``import torch`` fails
(`torch_free_env`) loads it with `ner.load` and runs `extract`, `embed_spans` and
`score_candidates` / `decode_candidates`. Its output must equal the torch model's: same entities
and offsets, scores and embeddings within 1e-4.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

import ner  # noqa: E402
from ner.onnx_export import export_onnx  # noqa: E402
from ner.random_checkpoint import build_checkpoint  # noqa: E402
from tests.ner.sentences import EXTRA_TEXTS, SENTENCES  # noqa: E402
from tests.ner.test_exactness import SPECS  # noqa: E402

TEXTS = [t for t in SENTENCES if t]

CHILD = """
import json, sys
import ner

texts = json.loads(sys.stdin.read())
model = ner.load(sys.argv[1])
found = model.extract(texts, embeddings=True)
decoded = model.decode_candidates(model.score_candidates(texts), label_shifts={"O": -0.5})
spans = [(0, 5), (6, 12)]
print(json.dumps({
    "backend": model.backend,
    "type": type(model).__name__,
    "entities": [[[e.start, e.end, e.label, e.score, e.embedding.tolist()] for e in es] for es in found],
    "decoded": [[[e.start, e.end, e.label, e.score] for e in es] for es in decoded],
    "spans": model.embed_spans(texts[0], spans).tolist(),
    "torch_loaded": [m for m, v in sys.modules.items() if m.split(".")[0] == "torch" and v is not None],
}))
"""


def _run_without_torch(
    env: dict[str, str], code: str, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, env=env, capture_output=True, text=True, timeout=300
    )


def test_torch_is_really_unimportable_there(torch_free_env, tiny_checkpoint):
    """Without this, the test below could pass on a machine where the child imported torch anyway."""
    done = _run_without_torch(torch_free_env, "import ner.model")
    assert done.returncode != 0 and "torch" in done.stderr
    done = _run_without_torch(torch_free_env, "import sys, ner; ner.load(sys.argv[1])", str(tiny_checkpoint))
    assert done.returncode != 0, "a torch checkpoint must not load without torch"


@pytest.mark.parametrize("spec", ["wp-iob2-8", "uni-bioes-3"])  # both tokenizer families
def test_export_runs_without_torch_and_matches(spec, tmp_path, torch_free_env):
    torch_model = ner.load(build_checkpoint(tmp_path / spec, SENTENCES + EXTRA_TEXTS, SPECS[spec]))
    folder = export_onnx(torch_model, tmp_path / "onnx")
    done = _run_without_torch(torch_free_env, CHILD, str(folder), stdin=json.dumps(TEXTS))
    assert done.returncode == 0, done.stderr[-3000:]
    child = json.loads(done.stdout)
    assert child["backend"] == "onnx" and child["type"] == "OnnxSpanModel"
    assert child["torch_loaded"] == []

    expected = torch_model.extract(TEXTS, embeddings=True)
    assert sum(len(es) for es in expected) > 0, "a checkpoint that predicts nothing proves nothing"
    for theirs, ours in zip(expected, child["entities"]):
        assert [(e.start, e.end, e.label) for e in theirs] == [tuple(e[:3]) for e in ours]
        for e, (_, _, _, score, embedding) in zip(theirs, ours):
            assert abs(e.score - score) < 1e-4
            assert np.abs(e.embedding - np.asarray(embedding, dtype=np.float32)).max() < 1e-4

    decoded = torch_model.decode_candidates(torch_model.score_candidates(TEXTS), label_shifts={"O": -0.5})
    assert [[(e.start, e.end, e.label) for e in es] for es in decoded] == [
        [tuple(e[:3]) for e in es] for es in child["decoded"]
    ]
    spans = torch_model.embed_spans(TEXTS[0], [(0, 5), (6, 12)])
    assert np.abs(spans - np.asarray(child["spans"], dtype=np.float32)).max() < 1e-4
