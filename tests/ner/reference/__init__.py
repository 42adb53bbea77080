"""Running span_marker 1.8.1 (in .venv-ref) on checkpoints, for the tests that compare against it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).parent / "span_marker_predict.py"


def reference_python() -> Path | None:
    """`$SPANLINK_REF_PYTHON`, else `.venv-ref/bin/python` of the repository, if it exists."""
    configured = os.environ.get("SPANLINK_REF_PYTHON")
    path = Path(configured) if configured else ROOT / ".venv-ref" / "bin" / "python"
    return path if path.exists() else None


def run_span_marker(jobs: list[dict]) -> list[dict]:
    """span_marker's predictions for each job (see span_marker_predict.py for the shapes).

    Skips the calling test when the reference environment is missing, except in CI, where the
    comparison is the point and its absence fails.
    """
    python = reference_python()
    if python is None:
        message = "span_marker reference environment missing: run `bash scripts/setup --dev`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    command = [str(python), str(SCRIPT)]
    proc = subprocess.run(
        command, input=json.dumps(jobs), capture_output=True, text=True, timeout=900, env=env
    )
    if proc.returncode != 0:
        pytest.fail(f"span_marker reference failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)
