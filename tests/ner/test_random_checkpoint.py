"""The random test checkpoints must be the same on every build, or tiny-model tests are not repeatable."""

from __future__ import annotations

import pytest

from ner.random_checkpoint import CheckpointSpec, build_checkpoint
from tests.ner.sentences import EXTRA_TEXTS, SENTENCES


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_two_builds_are_identical_files(kind, tmp_path):
    spec = CheckpointSpec(kind)
    first = build_checkpoint(tmp_path / "a", SENTENCES + EXTRA_TEXTS, spec).parent
    second = build_checkpoint(tmp_path / "b", SENTENCES + EXTRA_TEXTS, spec).parent
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert any(name.name == "tokenizer.json" for name in names)
    for name in names:
        if name.name != "config.json":  # config.json names its own folder (encoder._name_or_path)
            assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_the_vocabulary_splits_words_into_subwords_and_knows_every_character(kind, tmp_path):
    from tokenizers import Tokenizer

    build_checkpoint(tmp_path, SENTENCES + EXTRA_TEXTS, CheckpointSpec(kind))
    tok = Tokenizer.from_file(str(tmp_path / "encoder" / "tokenizer.json"))
    unknown = tok.token_to_id("[UNK]" if kind == "wordpiece" else "<unk>")
    ids = [i for text in SENTENCES for i in tok.encode(text, add_special_tokens=False).ids]
    assert unknown not in ids
    words = sum(len(s.split()) for s in SENTENCES)
    characters = sum(len(s.replace(" ", "")) for s in SENTENCES)
    assert words < len(ids) < 0.7 * characters, "subwords: more tokens than words, fewer than characters"
