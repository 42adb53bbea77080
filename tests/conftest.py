"""Shared fixtures: tiny random SpanMarker checkpoints, built once per session, offline."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tests.postgres import pg_server, pg_url  # noqa: F401 - the PostgreSQL fixtures of every suite

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def torch_free_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a subprocess in which ``import torch`` fails, as on a machine without it.

    A ``sitecustomize`` sets ``sys.modules["torch"] = None``: every import of torch then raises
    ImportError, and ``importlib.util.find_spec("torch")`` is None, so libraries that probe for
    torch (transformers) take their torch-free path as they would where it is not installed.
    """
    folder = tmp_path_factory.mktemp("no-torch")
    (folder / "sitecustomize.py").write_text('import sys\n\nsys.modules["torch"] = None\n', encoding="utf-8")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}


def pytest_report_header(config) -> list[str]:  # noqa: ARG001
    import torch

    lines = [f"sqlite {sqlite3.sqlite_version}, torch {torch.__version__}, cuda {torch.cuda.is_available()}"]
    try:
        import faiss

        lines.append(f"faiss {faiss.__version__}")
    except ImportError:
        pass
    return lines


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A WordPiece (BERT-style) checkpoint with PER/ORG/LOC/MISC and spans of up to 8 words."""
    from ner.random_checkpoint import CheckpointSpec, build_checkpoint
    from tests.ner.sentences import EXTRA_TEXTS, SENTENCES

    spec = CheckpointSpec(
        "wordpiece",
        ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"),
        model_max_length=256,
    )
    return build_checkpoint(tmp_path_factory.mktemp("tiny"), SENTENCES + EXTRA_TEXTS, spec)


@pytest.fixture(scope="session")
def tiny_xlmr_checkpoint(tmp_path_factory) -> Path:
    """A Unigram + Metaspace (XLM-R-style) checkpoint."""
    from ner.random_checkpoint import CheckpointSpec, build_checkpoint
    from tests.ner.sentences import EXTRA_TEXTS, SENTENCES

    spec = CheckpointSpec("unigram", ("O", "B-PER", "I-PER", "B-LOC", "I-LOC"), model_max_length=256, seed=7)
    return build_checkpoint(tmp_path_factory.mktemp("tiny_xlmr"), SENTENCES + EXTRA_TEXTS, spec)


#: The label hierarchy of the tiny fine-grained checkpoint: MultiCoNER types and groups (`ner.labels`).
TINY_FINE_GROUPS = (
    ("Artist", "PER"),
    ("Politician", "PER"),
    ("SportsGRP", "GRP"),
    ("PublicCorp", "GRP"),
    ("HumanSettlement", "LOC"),
)


@pytest.fixture(scope="session")
def tiny_fine_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint with fine labels in groups (a tiny `fine` model); seed 0 predicts every group."""
    from ner.random_checkpoint import CheckpointSpec, build_checkpoint
    from tests.ner.sentences import EXTRA_TEXTS, SENTENCES

    spec = CheckpointSpec(
        "wordpiece",
        ("O", *(label for label, _ in TINY_FINE_GROUPS)),
        model_max_length=256,
        outside_bias=0.0,
        label_groups=TINY_FINE_GROUPS,
    )
    return build_checkpoint(tmp_path_factory.mktemp("tiny_fine"), SENTENCES + EXTRA_TEXTS, spec)


@pytest.fixture(scope="session")
def _tiny_model(tiny_checkpoint):
    import ner

    return ner.load(tiny_checkpoint)


@pytest.fixture
def tiny_model(_tiny_model):
    """A fresh copy per test, so tests may change budgets or settings freely."""
    import copy

    return copy.deepcopy(_tiny_model)
