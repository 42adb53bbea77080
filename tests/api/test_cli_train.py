"""`spanlink train`, `evaluate` and `export-delta` on tiny data, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from api.cli import app
from ner.corpora import read_corpus

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data" / "corpora"


def test_evaluate_reports_per_file_and_overall(tiny_checkpoint):
    files = [DATA / "adjacent_iob2.conllu", DATA / "custom.jsonl"]
    args = ["evaluate", "--model", str(tiny_checkpoint)] + [a for f in files for a in ("--data", str(f))]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["files"]) == {str(f) for f in files}
    gold = sum(len(s.spans) for f in files for s in read_corpus(f))
    assert sum(r["support"] for r in report["files"].values()) == report["overall"]["support"] == gold
    assert 0.0 <= report["overall"]["f1"] <= 1.0 and report["overall"]["sentences_per_second"] > 0


def test_evaluate_bad_file_is_one_line(tiny_checkpoint, tmp_path):
    (tmp_path / "bad.conllu").write_text("1\tParis\tB-LOC\tX\n2\tis\n", encoding="utf-8")
    result = runner.invoke(
        app, ["evaluate", "-m", str(tiny_checkpoint), "--data", str(tmp_path / "bad.conllu")]
    )
    assert result.exit_code == 1 and "bad.conllu:2" in result.stderr


def test_train_stops_resumes_and_writes_a_loadable_model(tiny_checkpoint, tmp_path):
    base = tiny_checkpoint.parent / "encoder"
    out = tmp_path / "run"
    args = [
        "train",
        "--train",
        str(DATA / "adjacent_iob2.conllu"),
        "--dev",
        str(DATA / "adjacent_bioes.conllu"),
        "--base",
        str(base),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--dev-sample",
        "0",
    ]
    first = runner.invoke(app, [*args, "--max-minutes", "0"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout.strip().splitlines()[-1])["finished"] is False
    assert (out / "trainer_state.pt").exists() and (out / "model" / "model.safetensors").exists()
    second = runner.invoke(app, args)
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert second.exit_code == 0 and summary["finished"] and summary["step"] == summary["total_steps"]
    assert summary["evaluations"], "the dev file is scored after each epoch"
    check = runner.invoke(app, ["extract", "-m", str(out / "model"), "Angela Merkel in Paris."])
    assert check.exit_code == 0, check.output


def test_train_refuses_unknown_base(tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            "--train",
            str(DATA / "adjacent_iob2.conllu"),
            "--base",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 1 and "no model folder" in result.stderr


def test_export_delta_refuses_a_model_not_built_on_e5_small(tiny_checkpoint, tmp_path):
    args = [
        "export-delta",
        "--model",
        str(tiny_checkpoint),
        "--out",
        str(tmp_path / "d"),
        "--prune-threshold",
        "0.05",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "not trained on the embedded e5-small" in result.stderr
    assert not (tmp_path / "d").exists(), "nothing half-written"
    bad = runner.invoke(app, [*args[:-1], "1.5"])
    assert bad.exit_code != 0


def test_calibrate_writes_a_checkpoint_with_the_chosen_shift(tiny_checkpoint, tmp_path):
    import ner

    out = tmp_path / "calibrated"
    dev = str(DATA / "adjacent_iob2.conllu")
    args = ["calibrate", "-m", str(tiny_checkpoint), "--dev", dev, "--out", str(out), "--shifts", "-1,1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [row["shift"] for row in report["table"]] == [-1.0, 0.0, 1.0]
    best = max(row["mean_f1"] for row in report["table"])
    assert report["mean_f1"] == best and report["shift"] in (-1.0, 0.0, 1.0)
    before, after = ner.load(tiny_checkpoint), ner.load(out)
    moved = (after.classifier.bias - before.classifier.bias)[after.config.outside_id].item()
    assert moved == pytest.approx(report["shift"])
    assert after.config.raw["spanlink_label_shifts"].get("O", 0.0) == report["shift"]
    assert report["label_table"] == []  # per-label only when asked


def test_calibrate_per_label_records_every_moved_label(tiny_checkpoint, tmp_path):
    import ner

    out = tmp_path / "calibrated"
    dev = str(DATA / "adjacent_iob2.conllu")
    args = ["calibrate", "-m", str(tiny_checkpoint), "--dev", dev, "--out", str(out), "--per-label"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {row["label"] for row in report["label_table"]} >= {"O", "PER", "LOC"}
    assert report["mean_f1"] >= max(row["mean_f1"] for row in report["table"])
    before, after = ner.load(tiny_checkpoint), ner.load(out)
    moved = (after.classifier.bias - before.classifier.bias).tolist()
    expected = [report["shifts"].get(label, 0.0) for label in after.config.labels]
    assert moved == pytest.approx(expected, abs=1e-6)
    assert after.config.raw["spanlink_label_shifts"] == report["shifts"]


def test_calibrate_rejects_bad_shifts_and_writes_nothing(tiny_checkpoint, tmp_path):
    out = tmp_path / "calibrated"
    dev = str(DATA / "adjacent_iob2.conllu")
    args = ["calibrate", "-m", str(tiny_checkpoint), "--dev", dev, "--out", str(out), "--shifts", "1,x"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "--shifts takes comma-separated numbers" in result.stderr
    assert not out.exists()


def test_calibrate_tries_the_default_shifts(tiny_checkpoint, tmp_path):
    from ner.calibration import DEFAULT_SHIFTS

    dev = str(DATA / "adjacent_iob2.conllu")
    args = ["calibrate", "-m", str(tiny_checkpoint), "--dev", dev, "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    shifts = [row["shift"] for row in json.loads(result.stdout)["table"]]
    assert shifts == sorted({0.0, *DEFAULT_SHIFTS})


def _train_args(base: Path | str, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--train",
        str(DATA / "adjacent_iob2.conllu"),
        "--base",
        str(base),
        "--out",
        str(out),
        "--batch-size",
        "2",
        *extra,
    ]


def test_train_continues_a_trained_model_without_its_calibration(tiny_checkpoint, tmp_path):
    import ner
    from ner.calibration import shift_label_biases

    start = ner.load(tiny_checkpoint)
    shifted = ner.load(tiny_checkpoint)
    shift_label_biases(shifted, {"O": 1.5, "PER": -0.5})
    shifted.save_pretrained(tmp_path / "calibrated")
    out = tmp_path / "run"
    # Learning rates 0: the steps run (dropout, loss, AdamW) but the weights must come out unchanged,
    # so what is written is exactly the starting model with its calibration taken out. The file holds
    # only PER and LOC; the model's four labels are kept.
    args = _train_args(tmp_path / "calibrated", out, "--epochs", "1", "--lr", "0")
    result = runner.invoke(app, [*args, "--head-lr", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] >= 1
    trained = ner.load(out / "model")
    assert "spanlink_label_shifts" not in trained.config.raw
    assert trained.config.labels == start.config.labels
    assert torch.equal(trained.classifier.bias, start.classifier.bias)
    for (name, before), after in zip(
        start.encoder.state_dict().items(), trained.encoder.state_dict().values()
    ):
        assert torch.equal(before, after), name
    sentence = "Angela Merkel visited Paris."
    assert trained.extract(sentence) == start.extract(sentence)


def test_train_on_a_trained_model_keeps_its_labels_and_lengths(tiny_checkpoint, tmp_path):
    other_labels = runner.invoke(app, _train_args(tiny_checkpoint, tmp_path / "a", "--labels", "PER,LOC"))
    assert other_labels.exit_code == 1 and "was trained for labels" in other_labels.stderr
    longer = runner.invoke(app, _train_args(tiny_checkpoint, tmp_path / "b", "--entity-max-length", "3"))
    assert longer.exit_code == 1 and "entity_max_length 8" in longer.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_training_file_named_twice_is_used_twice(tiny_checkpoint, tmp_path):
    base = tiny_checkpoint.parent / "encoder"
    once = runner.invoke(app, _train_args(base, tmp_path / "once", "--epochs", "0.0001"))
    twice_args = _train_args(base, tmp_path / "twice", "--epochs", "0.0001")
    twice = runner.invoke(app, [*twice_args, "--train", str(DATA / "adjacent_iob2.conllu")])
    assert once.exit_code == twice.exit_code == 0, once.output + twice.output

    def count(result) -> int:  # noqa: ANN001 - click Result
        return int(result.stderr.split(" sentences,")[0].split()[-1])

    assert count(twice) == 2 * count(once) > 0


def test_average_writes_a_loadable_checkpoint_and_refuses_one_model(tiny_checkpoint, tmp_path):
    import ner

    alone = runner.invoke(app, ["average", "-m", str(tiny_checkpoint), "--out", str(tmp_path / "one")])
    assert alone.exit_code == 1 and "at least two" in alone.stderr and not (tmp_path / "one").exists()
    args = ["average", "-m", str(tiny_checkpoint), "-m", str(tiny_checkpoint), "--out", str(tmp_path / "two")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    averaged, original = ner.load(tmp_path / "two"), ner.load(tiny_checkpoint)
    assert torch.equal(averaged.classifier.weight, original.classifier.weight)
