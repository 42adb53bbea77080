"""Training: learns, resumes exactly, and writes checkpoints that spanlink and span_marker load."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import ner
from ner.building import new_span_model
from ner.corpora import read_corpus
from ner.training import TrainConfig, finish_markers, train
from ner.training_data import prepare, sample_spans
from tests.ner.reference import run_span_marker

DATA = Path(__file__).resolve().parents[1] / "data" / "corpora"
LABELS = ["LOC", "MISC", "ORG", "PER"]


@pytest.fixture(scope="module")
def base_encoder(tiny_checkpoint) -> Path:
    return tiny_checkpoint.parent / "encoder"


@pytest.fixture(scope="module")
def corpus() -> list:
    sentences = []
    for name in ("adjacent_iob2.conllu", "adjacent_bioes.conllu"):
        sentences += read_corpus(DATA / name)
    assert sentences
    return sentences


def _examples(model, sentences):
    label2id = {label: i for i, label in enumerate(model.config.labels)}
    return prepare(sentences, model.tokenizer, label2id, model.config.entity_max_length, model.max_tokens)


def test_prepare_maps_gold_spans_to_model_words(base_encoder, corpus):
    model = new_span_model(base_encoder, LABELS)
    examples, stats = _examples(model, corpus)
    assert stats.sentences == len(corpus) and stats.entities == sum(len(s.spans) for s in corpus)
    for sentence, example in zip(corpus, examples):
        got = set()
        for start, end, label_id in example.gold:
            a, b = example.enc.word_chars[start][0], example.enc.word_chars[end - 1][1]
            got.add((sentence.text[a:b].strip(), model.config.labels[label_id]))
        assert got == {(sentence.text[s.char_start : s.char_end], s.label) for s in sentence.spans}


def test_negative_sampling_keeps_gold_and_prefers_hard_negatives(base_encoder, corpus):
    model = new_span_model(base_encoder, LABELS)
    examples, _ = _examples(model, corpus)
    example = max(examples, key=lambda e: e.enc.num_words)
    spans, labels = sample_spans(example, 8, 6, 0.5, np.random.default_rng(0))
    gold = {(s, e): label for s, e, label in example.gold}
    assert {(int(s), int(e)) for (s, e), label in zip(spans, labels) if label} == set(gold)
    negatives = [(int(s), int(e)) for (s, e), label in zip(spans, labels) if label == 0]
    assert len(negatives) == 6 and not set(negatives) & set(gold)
    overlapping = [n for n in negatives if any(n[0] < e and n[1] > s for s, e in gold)]
    assert len(overlapping) == 3


def test_training_learns_the_training_set(base_encoder, corpus, tmp_path):
    torch.manual_seed(0)
    model = new_span_model(base_encoder, LABELS, seed=0)
    examples, _ = _examples(model, corpus)
    config = TrainConfig(epochs=120, batch_size=4, lr=3e-3, head_lr=3e-3, warmup_steps=5, negatives=16)
    result = train(model, examples, tmp_path / "run", config, show_progress_bar=False)
    assert result["finished"]
    finish_markers(model)
    found = model.extract([s.text for s in corpus], strip_spaces=True)
    gold = {(i, s.char_start, s.char_end, s.label) for i, sent in enumerate(corpus) for s in sent.spans}
    pred = {(i, e.start, e.end, e.label) for i, ents in enumerate(found) for e in ents}
    assert len(gold & pred) / len(gold) > 0.8, "it fits the sentences it was trained on"


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(base_encoder, corpus, tmp_path):
    config = TrainConfig(epochs=2, batch_size=3, warmup_steps=2, negatives=8, save_minutes=1e9)

    def fresh():
        model = new_span_model(base_encoder, LABELS, seed=1)
        return model, _examples(model, corpus)[0]

    straight, examples = fresh()
    train(straight, examples, tmp_path / "a", config, show_progress_bar=False)
    interrupted, examples = fresh()
    first = train(interrupted, examples, tmp_path / "b", config, max_minutes=0.0, show_progress_bar=False)
    assert not first["finished"] and first["step"] == 1  # stopped after one step, state saved
    resumed, examples = fresh()
    second = train(resumed, examples, tmp_path / "b", config, show_progress_bar=False)
    assert second["finished"] and second["step"] == first["total_steps"]
    for (name, a), b in zip(straight.encoder.named_parameters(), resumed.encoder.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert torch.allclose(straight.classifier.weight, resumed.classifier.weight, atol=1e-6)


def test_other_settings_refuse_to_resume(base_encoder, corpus, tmp_path):
    model = new_span_model(base_encoder, LABELS)
    examples, _ = _examples(model, corpus)
    train(model, examples, tmp_path / "run", TrainConfig(epochs=0.1, batch_size=2), show_progress_bar=False)
    with pytest.raises(ValueError, match="other settings"):
        train(
            model, examples, tmp_path / "run", TrainConfig(epochs=0.1, batch_size=3), show_progress_bar=False
        )


def test_resume_may_change_epochs_and_the_schedule_ends_at_the_new_total(base_encoder, corpus, tmp_path):
    model = new_span_model(base_encoder, LABELS)
    examples, _ = _examples(model, corpus)
    short = TrainConfig(epochs=1, batch_size=3, warmup_steps=1, negatives=4)
    first = train(model, examples, tmp_path / "run", short, show_progress_bar=False)
    assert first["finished"]
    longer = TrainConfig(epochs=2, batch_size=3, warmup_steps=1, negatives=4)
    second = train(model, examples, tmp_path / "run", longer, show_progress_bar=False)
    assert second["finished"] and second["step"] == 2 * first["step"]
    state = torch.load(tmp_path / "run" / "trainer_state.pt", weights_only=True)
    assert state["scheduler"]["_last_lr"][0] == pytest.approx(0.0), "linear decay reaches zero at the new end"


def test_sigterm_stops_training_with_a_resumable_state(base_encoder, corpus, tmp_path):
    model = new_span_model(base_encoder, LABELS)
    examples, _ = _examples(model, corpus)
    before = signal.getsignal(signal.SIGTERM)

    def terminated_after_the_first_epoch(_model):
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` or a container stop would
        return {}

    config = TrainConfig(epochs=3, batch_size=3, warmup_steps=1, negatives=4, save_minutes=1e9)
    result = train(
        model,
        examples,
        tmp_path / "run",
        config,
        evaluate=terminated_after_the_first_epoch,
        show_progress_bar=False,
    )
    assert not result["finished"] and result["step"] == math.ceil(len(examples) / 3)
    state = torch.load(tmp_path / "run" / "trainer_state.pt", weights_only=True)
    assert state["step"] == result["step"] and state["epoch"] == 1
    assert signal.getsignal(signal.SIGTERM) is before, "the handler is restored"


def test_trained_checkpoint_loads_in_spanlink_and_span_marker(base_encoder, corpus, tmp_path):
    model = new_span_model(base_encoder, LABELS, cjk_words=False)
    examples, _ = _examples(model, corpus)
    train(
        model,
        examples,
        tmp_path / "run",
        TrainConfig(epochs=3, batch_size=4, lr=1e-3, head_lr=1e-3, warmup_steps=2),
        show_progress_bar=False,
    )
    finish_markers(model)
    folder = model.save_pretrained(tmp_path / "model")
    texts = [s.text for s in corpus]
    ours = ner.load(folder).extract(texts)
    assert ours == model.extract(texts)
    job = [{"checkpoint": str(folder), "texts": texts, "word_lists": []}]
    theirs = run_span_marker(job)[0]["texts"]
    for entities, rows in zip(ours, theirs):
        assert [(e.start, e.end, e.label) for e in entities] == [tuple(r[:3]) for r in rows]
