"""Training: learns, resumes exactly, and writes checkpoints that spanlink and span_marker load."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import ner
from ner.building import new_span_model
from ner.corpora import read_corpus
from ner.training import TrainConfig, _partial_label_loss, finish_markers, train
from ner.training_data import CoarseLabels, prepare, sample_spans, truecase
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


def test_every_evaluation_step_and_epoch_end_is_scored_once(base_encoder, corpus, tmp_path):
    model = new_span_model(base_encoder, LABELS)
    examples, _ = _examples(model, corpus)
    per_epoch = math.ceil(len(examples) / 3)
    calls: list[int] = []
    config = TrainConfig(epochs=2, batch_size=3, warmup_steps=1, negatives=4)
    result = train(
        model,
        examples,
        tmp_path / "run",
        config,
        evaluate=lambda _model: {"call": calls.append(1) or len(calls)},
        evaluate_every=per_epoch,  # both epoch ends fall on evaluation steps
        show_progress_bar=False,
    )
    steps = [e["step"] for e in result["evaluations"]]
    assert steps == [per_epoch, 2 * per_epoch] and len(calls) == 2


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


FINE = {"Artist": "PER", "Athlete": "PER", "City": "LOC", "Song": "CW"}


def _fine_model(base_encoder):
    model = new_span_model(base_encoder, list(FINE))
    model.config.label_groups = dict(FINE)
    return model


def test_coarse_labels_accept_any_type_of_the_group(base_encoder):
    model = _fine_model(base_encoder)
    label2id = {label: i for i, label in enumerate(model.config.labels)}
    coarse = CoarseLabels.build(FINE, label2id, ["PER", "LOC"])
    per = coarse.allowed[coarse.group_ids["PER"]]
    assert sorted(model.config.labels[i] for i in per) == ["Artist", "Athlete"]
    # A corpus that marks PER and LOC says nothing about songs: an unmarked span may be one.
    assert [model.config.labels[i] for i in coarse.unmarked] == ["O", "Song"]
    with pytest.raises(ValueError, match="not groups"):
        CoarseLabels.build(FINE, label2id, ["ORG"])


def test_partial_label_loss_is_cross_entropy_on_full_labels_and_sums_a_group(base_encoder):
    model = _fine_model(base_encoder)
    labels = model.config.labels
    label2id = {label: i for i, label in enumerate(labels)}
    sentence = read_corpus_text("Miles Davis played in Paris", [(0, 11, "PER"), (22, 27, "LOC")])
    coarse = CoarseLabels.build(FINE, label2id, ["PER", "LOC"])
    (example,), _ = prepare([sentence], model.tokenizer, label2id, 8, model.max_tokens, coarse)
    spans = np.array([[s, e] for s, e, _ in example.gold] + [[0, 1], [2, 3]])  # 0-1 overlaps, 2-3 not
    targets = np.array([t for _, _, t in example.gold] + [0, 0])
    segment = SimpleNamespace(spans=spans)

    def loss(logits):
        return _partial_label_loss(logits[None], [segment], [targets], [example]).item()

    def peaked(*names):
        logits = torch.full((len(spans), len(labels)), -20.0)
        for row, name in enumerate(names):
            logits[row, labels.index(name)] = 20.0
        return logits

    assert loss(peaked("Artist", "City", "O", "O")) < 1e-6
    assert loss(peaked("Athlete", "City", "O", "Song")) < 1e-6  # any PER type; unmarked Song is fine
    assert loss(peaked("City", "City", "O", "O")) > 5  # a PER span called a place
    assert loss(peaked("Artist", "City", "Song", "O")) > 5  # overlaps the gold person: must be O
    # Without coarse labels it is plain cross-entropy.
    full = type(example)(example.enc, [(s, e, label2id["Artist"]) for s, e, _ in example.gold[:1]])
    logits = torch.randn(3, len(labels))
    plain = torch.nn.functional.cross_entropy(logits, torch.tensor([label2id["Artist"], 0, 0]))
    got = _partial_label_loss(
        logits[None],
        [SimpleNamespace(spans=spans[[0, 2, 3]])],
        [np.array([label2id["Artist"], 0, 0])],
        [full],
    )
    assert torch.allclose(got, plain)


def read_corpus_text(text, spans):
    from ner.corpora import Sentence, Span
    from ner.words import split_words

    offsets = split_words(text)
    words = [text[s:e] for s, e in offsets]
    word_spans = []
    for start, end, label in spans:
        first = next(i for i, (s, _) in enumerate(offsets) if s == start)
        last = next(i for i, (_, e) in enumerate(offsets) if e == end)
        word_spans.append(Span(first, last + 1, label, start, end))
    return Sentence(words, text, offsets, word_spans)


def test_truecase_capitalises_entity_words_and_keeps_offsets():
    sentence = read_corpus_text("the beatles came from liverpool", [(4, 11, "MusicalGRP"), (22, 31, "City")])
    cased = truecase(sentence, np.random.default_rng(0), 1.0)
    assert cased.text == "The Beatles came from Liverpool"
    assert [cased.text[s.char_start : s.char_end] for s in cased.spans] == ["Beatles", "Liverpool"]
    assert truecase(sentence, np.random.default_rng(0), 0.0) is sentence


def test_new_head_keeps_the_encoder_and_learns_other_labels(tiny_checkpoint):
    from ner.building import trained_span_model

    before = ner.load(tiny_checkpoint)
    model = trained_span_model(tiny_checkpoint, list(FINE), new_head=True)
    assert model.config.labels == ["O", *sorted(FINE)]
    assert model.classifier.out_features == len(FINE) + 1
    for (name, a), b in zip(before.encoder.named_parameters(), model.encoder.parameters()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="--new-head"):
        trained_span_model(tiny_checkpoint, list(FINE))


def test_cli_trains_a_hierarchy_with_coarse_files_and_saves_the_groups(tiny_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from api.cli import app

    fine = tmp_path / "fine.conll"
    fine.write_text(
        "# id 1\tdomain=en\nmiles _ _ B-Artist\ndavis _ _ I-Artist\nplayed _ _ O\nin _ _ O\n"
        "paris _ _ B-City\n\n# id 2\tdomain=en\nyesterday _ _ B-Song\nby _ _ O\npele _ _ B-Athlete\n",
        encoding="utf-8",
    )
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps(FINE), encoding="utf-8")
    coarse = DATA / "adjacent_iob2.conllu"
    out = tmp_path / "run"
    args = ["train", "--base", str(tiny_checkpoint), "--new-head", "--label-groups", str(groups)]
    args += [
        "--train",
        str(fine),
        "--coarse",
        str(coarse),
        "--coarse-map",
        "ORG=,MISC=",
        "--case-augment",
        "0.5",
    ]
    args += ["--out", str(out), "--epochs", "1", "--batch-size", "2", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = ner.load(out / "model")
    assert saved.config.label_groups == FINE
    assert saved.config.group_of("Athlete") == "PER"
    args[args.index("ORG=,MISC=")] = "PER=PERSON"  # not a group of the hierarchy
    args[args.index(str(out))] = str(tmp_path / "r2")
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code != 0 and "not groups of this model" in bad.output
