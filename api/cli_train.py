"""`spanlink train` and `spanlink evaluate`: the NER model's training and evaluation commands."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from api.cli import (
    BackendOption,
    app,
    check_backend,
    check_device,
    check_out_folder,
    fail,
    finite,
    load_model,
    save_model,
)


def _label_map(spec: str | None) -> dict[str, str | None] | None:
    """ "OTH=MISC,EVT=" -> {"OTH": "MISC", "EVT": None} (an empty target drops the label)."""
    if not spec:
        return None
    mapping: dict[str, str | None] = {}
    for item in spec.split(","):
        if "=" not in item:
            raise fail(f"--label-map items look like FROM=TO (empty TO drops the label), got {item!r}")
        source, target = item.split("=", 1)
        mapping[source.strip()] = target.strip() or None
    return mapping


def _labels(spec: str) -> list[str]:
    """ "PER, ORG" -> ["PER", "ORG"]; empty or repeated names would train a useless or ambiguous head."""
    wanted = [label.strip() for label in spec.split(",")]
    if not all(wanted):
        raise fail(f"--labels takes comma-separated label names, got {spec!r}")
    if len(set(wanted)) != len(wanted):
        raise fail(f"--labels names a label twice: {spec!r}")
    return wanted


def _hierarchy(spec: str | None) -> dict[str, str]:
    """--label-groups: a preset name or a JSON file mapping each type to its group."""
    from ner.labels import PRESETS

    if not spec:
        return {}
    if spec in PRESETS:
        return dict(PRESETS[spec])
    try:
        raw = json.loads(Path(spec).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise fail(
            f"--label-groups takes {' or '.join(PRESETS)} or a JSON file {{type: group}}; "
            f"cannot read {spec}: {exc}"
        ) from None
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, str) and v for v in raw.values()):
        raise fail(f"{spec} must hold a JSON object mapping each type to a group name")
    return {str(k): v for k, v in raw.items()}


def _shifts(spec: str) -> list[float]:
    """--shifts "0,0.5,1" -> [0.0, 0.5, 1.0]: at least one finite number (none would calibrate nothing)."""
    try:
        values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise fail(f"--shifts takes comma-separated numbers, got {spec!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise fail(f"--shifts takes comma-separated finite numbers, got {spec!r}")
    return values


def _read(files: list[Path], fmt: str, scheme: str, label_map: dict | None) -> dict[Path, list]:
    from ner.corpora import CorpusError, read_corpus

    out = {}
    for path in files:
        try:
            out[path] = read_corpus(path, format=fmt, scheme=scheme, label_map=label_map)
        except (CorpusError, OSError, ValueError) as exc:
            raise fail(str(exc)) from None
    return out


def _spread(items: list, n: int) -> list:
    """n items spread evenly over the list (all of them when n is 0 or larger than the list)."""
    if n <= 0 or n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _pruning(span_model, threshold: float | None, off: bool) -> bool | None:  # noqa: ANN001 - SpanModel
    """The `prune` argument for extraction from --prune-threshold / --no-prune (a threshold is kept in
    the model's config, so a checkpoint saved afterwards carries it)."""
    if off:
        return False
    if threshold is None:
        return None
    if span_model.boundary is None:
        raise fail("this model has no boundary head, so it cannot prune")
    span_model.config.prune_threshold = threshold
    return True


def _log_to_stderr(ctx: typer.Context) -> None:
    """Show training progress (INFO logs) on stderr for the duration of the command only.

    ``logging.basicConfig`` would leave a handler on the root logger bound to this command's stderr;
    in-process callers (tests, notebooks) then got "--- Logging error ---" tracebacks from every later
    log record once that stream was closed.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def restore() -> None:
        root.removeHandler(handler)
        root.setLevel(level)

    ctx.call_on_close(restore)


@app.command()
def train(
    ctx: typer.Context,
    train_files: Annotated[
        list[Path],
        typer.Option("--train", help="Training files (conll, .iob2, .jsonl); repeat one to oversample it."),
    ],
    out: Annotated[Path, typer.Option(help="Run folder: resumable state, then the model in OUT/model.")],
    dev_files: Annotated[list[Path] | None, typer.Option("--dev", help="Development files.")] = None,
    labels: Annotated[str | None, typer.Option(help="Entity types to learn, e.g. PER,ORG,LOC,MISC.")] = None,
    label_map: Annotated[str | None, typer.Option(help="Rename/drop labels: OTH=MISC,EVT=")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, conll, iob2 or jsonl.")] = "auto",
    scheme: Annotated[str, typer.Option(help="auto, iob1, iob2, bioes or bilou.")] = "auto",
    base: Annotated[
        str,
        typer.Option(
            help="e5-small (embedded), an encoder folder or hub id; or a trained span model to train "
            "further: default (the shipped one), a SpanMarker checkpoint or delta folder."
        ),
    ] = "e5-small",
    epochs: Annotated[
        float,
        typer.Option(
            min=0.0001,
            callback=finite,
            help="Passes over the data; may change on resume (re-stretches the LR decay).",
        ),
    ] = 3.0,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[
        float, typer.Option(min=0.0, callback=finite, help="Encoder learning rate (AdamW).")
    ] = 5e-5,
    head_lr: Annotated[
        float,
        typer.Option(
            min=0.0, callback=finite, help="Classifier, marker-row and boundary-head learning rate."
        ),
    ] = 5e-4,
    negatives: Annotated[int, typer.Option(min=0, help="Negative spans sampled per sentence.")] = 32,
    warmup_steps: Annotated[int, typer.Option(min=0, help="Linear learning-rate warm-up.")] = 300,
    entity_max_length: Annotated[
        int | None, typer.Option(min=1, help="Longest span in words (default: 8, or the trained model's).")
    ] = None,
    model_max_length: Annotated[
        int | None,
        typer.Option(min=16, help="Longest input in tokens (default: 256, or the trained model's)."),
    ] = None,
    max_minutes: Annotated[
        float | None, typer.Option(min=0.0, callback=finite, help="Stop after this long; rerun to resume.")
    ] = None,
    dev_sample: Annotated[
        int, typer.Option(min=0, help="Dev sentences per file scored after each epoch (0 = all).")
    ] = 500,
    eval_every: Annotated[
        int | None,
        typer.Option(min=1, help="Also score the dev files every N steps (a learning curve in the log)."),
    ] = None,
    label_groups: Annotated[
        str | None,
        typer.Option(
            help="A label hierarchy: 'multiconer' (33 types in 6 groups) or a JSON file {type: group}; "
            "--labels defaults to its types."
        ),
    ] = None,
    coarse_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--coarse",
            help="Training files marked only with groups (e.g. CoNLL PER/ORG/LOC under --label-groups): "
            "their spans may be any type of their group.",
        ),
    ] = None,
    coarse_map: Annotated[
        str | None, typer.Option(help="Rename/drop the --coarse files' labels: ORG=GRP,MISC=")
    ] = None,
    case_augment: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of --train sentences given capitals (first word, entity words): for lowercased "
            "corpora such as MultiCoNER.",
        ),
    ] = 0.0,
    new_head: Annotated[
        bool,
        typer.Option(
            "--new-head",
            help="With a trained --base: a fresh classifier for other --labels (keeps its encoder).",
        ),
    ] = False,
    seed: int = 0,
    device: Annotated[str | None, typer.Option(help="Defaults to cuda when available.")] = None,
) -> None:
    """Fine-tune a SpanMarker model; rerunning the same command resumes an interrupted run."""
    import torch

    from ner.building import is_span_model, new_span_model, trained_span_model
    from ner.errors import NerError
    from ner.scoring import score_model
    from ner.training import TrainConfig, finish_markers
    from ner.training import train as run_training
    from ner.training_data import CoarseLabels, prepare, truecase

    _log_to_stderr(ctx)
    check_device(device)
    check_out_folder(out)
    mapping = _label_map(label_map)
    hierarchy = _hierarchy(label_groups)
    if coarse_files and not hierarchy:
        raise fail("--coarse files need a label hierarchy (--label-groups) to say what their groups hold")
    train_sets = _read(train_files, fmt, scheme, mapping)
    coarse_sets = _read(coarse_files or [], fmt, scheme, _label_map(coarse_map))
    dev_sets = _read(dev_files or [], fmt, scheme, mapping)
    # A file named twice is read once and used twice: the way to oversample a language or domain.
    augment = np.random.default_rng([seed, 7])
    sentences = [truecase(s, augment, case_augment) for path in train_files for s in train_sets[path]]
    found = sorted({span.label for s in sentences for span in s.spans})
    wanted = _labels(labels) if labels is not None else (list(hierarchy) if hierarchy else found)
    if not wanted:
        raise fail("the training files hold no entities")
    if hierarchy and sorted(hierarchy) != sorted(wanted):
        raise fail(f"--labels must be the hierarchy's types: {', '.join(sorted(hierarchy))}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        if is_span_model(base):  # train further; its labels unless --labels says otherwise
            model = trained_span_model(
                base,
                wanted if (labels or hierarchy or new_head) else None,
                entity_max_length=entity_max_length,
                model_max_length=model_max_length,
                new_head=new_head,
                seed=seed,
            )
        else:
            model = new_span_model(
                base,
                wanted,
                entity_max_length=entity_max_length or 8,
                model_max_length=model_max_length or 256,
                seed=seed,
            )
    except (NerError, ValueError, ImportError) as exc:
        raise fail(str(exc)) from None
    if hierarchy:
        model.config.label_groups = {label: hierarchy[label] for label in model.config.labels if label != "O"}
    model.device = torch.device(device)
    model.encoder.to(device)
    model.classifier.to(device)
    label2id = {label: i for i, label in enumerate(model.config.labels)}
    eml = model.config.entity_max_length
    examples, stats = prepare(sentences, model.tokenizer, label2id, eml, model.max_tokens)
    for path in dict.fromkeys(coarse_files or []):
        marked = sorted({span.label for s in coarse_sets[path] for span in s.spans})
        try:
            scheme_of_file = CoarseLabels.build(model.config.label_groups, label2id, marked)
        except ValueError as exc:
            raise fail(f"{path}: {exc} (rename them with --coarse-map)") from None
        # A file named twice is tokenized once and its examples used twice (as --train oversamples).
        more, more_stats = prepare(
            coarse_sets[path], model.tokenizer, label2id, eml, model.max_tokens, scheme_of_file
        )
        times = coarse_files.count(path)
        examples += more * times
        for field in dataclasses.fields(stats):
            setattr(stats, field.name, getattr(stats, field.name) + times * getattr(more_stats, field.name))
    typer.echo(
        f"{stats.sentences} sentences, {stats.entities} entities; not trainable: "
        f"{stats.too_long} longer than {eml} words, "
        f"{stats.truncated} sentences over {model.max_tokens} tokens; "
        f"{stats.misaligned} entities snapped to word boundaries",
        err=True,
    )
    dev = {path: _spread(ss, dev_sample) for path, ss in dev_sets.items()}

    def evaluate(m) -> dict:  # noqa: ANN001
        return {str(p): round(score_model(m, ss).accumulator.compute().f1 * 100, 2) for p, ss in dev.items()}

    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        head_lr=head_lr,
        negatives=negatives,
        warmup_steps=warmup_steps,
        seed=seed,
    )
    try:
        result = run_training(
            model,
            examples,
            out,
            config,
            max_minutes=max_minutes,
            evaluate=evaluate if dev else None,
            evaluate_every=eval_every,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # the run folder's state files: a full disk, no permission
        raise fail(f"cannot write {out}: {exc.strerror or exc}") from None
    # The latest weights are always written, so a stopped run still leaves a usable model;
    # training itself resumes from OUT/trainer_state.pt, not from this folder.
    finish_markers(model)
    save_model(model, out / "model")
    if result["finished"]:
        typer.echo(f"model written to {out / 'model'}", err=True)
    else:
        typer.echo(
            f"stopped at step {result['step']}/{result['total_steps']}; the weights so far are in "
            f"{out / 'model'}; run the same command again to resume",
            err=True,
        )
    typer.echo(json.dumps(result))


@app.command()
def evaluate(
    data: Annotated[list[Path], typer.Option("--data", help="Gold files (conll, .iob2, .jsonl).")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model folder or hub id.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, conll, iob2 or jsonl.")] = "auto",
    scheme: Annotated[str, typer.Option(help="auto, iob1, iob2, bioes or bilou.")] = "auto",
    label_map: Annotated[str | None, typer.Option(help="Rename/drop gold labels: OTH=MISC,EVT=")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    limit: Annotated[
        int, typer.Option(min=0, help="Score only this many sentences per file, spread out (0 = all).")
    ] = 0,
    device: Annotated[str | None, typer.Option()] = None,
    dtype: Annotated[str | None, typer.Option()] = None,
    prune_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Two-stage mode: classify only spans the boundary head proposes."
        ),
    ] = None,
    no_prune: Annotated[bool, typer.Option("--no-prune", help="Classify every candidate span.")] = False,
    backend: BackendOption = None,
) -> None:
    """Entity-level precision, recall and F1 (exact span and label), per file and overall, as JSON."""
    from ner.evaluation import merge_accumulators
    from ner.scoring import score_model

    check_backend(backend)
    sets = _read(data, fmt, scheme, _label_map(label_map))
    span_model = load_model(model, device, dtype, False, backend)
    prune = _pruning(span_model, prune_threshold, no_prune)
    files, accumulators, seconds, count = {}, [], 0.0, 0
    for path, sentences in sets.items():
        run = score_model(
            span_model, _spread(sentences, limit), batch_size=batch_size, prune=prune, show_progress_bar=True
        )
        files[str(path)] = {
            **run.accumulator.compute().to_dict(),
            "sentences_per_second": run.sentences_per_second,
        }
        accumulators.append(run.accumulator)
        seconds += run.seconds
        count += run.sentences
    overall = merge_accumulators(accumulators).compute().to_dict()
    overall["sentences_per_second"] = count / seconds if seconds else 0.0
    threshold = span_model.config.prune_threshold if prune is not False else None
    report = {"model": model, "prune_threshold": threshold, "files": files, "overall": overall}
    typer.echo(json.dumps(report, indent=2))


@app.command()
def calibrate(
    model: Annotated[str, typer.Option("--model", "-m", help="Model folder to calibrate (float).")],
    dev: Annotated[list[Path], typer.Option("--dev", help="Development files (conll, .iob2, .jsonl).")],
    out: Annotated[Path, typer.Option(help="Folder for the calibrated SpanMarker checkpoint.")],
    shifts: Annotated[
        str | None,
        typer.Option(help="Comma-separated values to add to the 'O' logit (default: -0.5 to 3 by 0.5)."),
    ] = None,
    per_label: Annotated[
        bool, typer.Option("--per-label", help="Then tune each entity label's logit too (coordinate ascent).")
    ] = False,
    limit: Annotated[int, typer.Option(min=0, help="Sentences per file, spread out (0 = all).")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="auto, conll, iob2 or jsonl.")] = "auto",
    scheme: Annotated[str, typer.Option(help="auto, iob1, iob2, bioes or bilou.")] = "auto",
    label_map: Annotated[str | None, typer.Option(help="Rename/drop gold labels: OTH=MISC,EVT=")] = None,
    prune_threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Calibrate (and save) two-stage mode at this threshold."),
    ] = None,
    device: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Shift the 'O' logit (and with --per-label each label's) to the best mean dev F1; save to OUT."""
    from ner.calibration import DEFAULT_SHIFTS, calibrate_biases

    values = _shifts(shifts) if shifts is not None else list(DEFAULT_SHIFTS)
    check_out_folder(out)
    read = _read(dev, fmt, scheme, _label_map(label_map))
    sets = {str(path): _spread(sentences, limit) for path, sentences in read.items()}
    span_model = load_model(model, device, None, False)
    prune = _pruning(span_model, prune_threshold, False)
    try:
        result = calibrate_biases(
            span_model, sets, values, per_label=per_label, prune=prune, show_progress_bar=True
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    save_model(span_model, out)
    moved = ", ".join(f"{label} {value:+g}" for label, value in result.shifts.items()) or "nothing"
    typer.echo(f"shifted {moved} (mean dev F1 {result.mean_f1:.4f}); wrote {out}", err=True)
    report = {
        "shift": result.shift,
        "shifts": result.shifts,
        "mean_f1": result.mean_f1,
        "table": result.table,
        "label_table": result.label_table,
    }
    typer.echo(json.dumps(report, indent=2))


@app.command("export-delta")
def export_delta_command(
    model: Annotated[str, typer.Option("--model", "-m", help="A model spanlink train built on e5-small.")],
    out: Annotated[Path, typer.Option(help="Folder to write (e.g. data/default-model).")],
    card: Annotated[Path | None, typer.Option(help="Model card (markdown) to write beside it.")] = None,
    prune_threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Turn two-stage pruning on by default at this boundary probability."
        ),
    ] = None,
) -> None:
    """Write a model trained on the embedded e5-small as a float16 delta over it (as the default ships)."""
    from ner.base_encoder import KNOWN_SOURCE_SHA256
    from ner.default_model import export_delta

    check_out_folder(out)
    try:
        text = card.read_text(encoding="utf-8") if card else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read the card {card}: {getattr(exc, 'strerror', None) or exc}") from None
    span_model = load_model(model, None, None, False)
    base = str(span_model.config.raw.get("encoder", {}).get("_name_or_path", ""))
    if "e5-small" not in Path(base).name:
        raise fail(f"{model} was not trained on the embedded e5-small base (its encoder is {base!r})")
    _pruning(span_model, prune_threshold, False)
    try:
        folder = export_delta(span_model, out, "e5-small", KNOWN_SOURCE_SHA256["e5-small"], text)
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror or exc}") from None
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    typer.echo(f"wrote {folder} ({size:.1f} MB)", err=True)


@app.command()
def average(
    models: Annotated[
        list[str], typer.Option("--model", "-m", help="Models to average (two or more; 'default' = shipped).")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the averaged SpanMarker checkpoint.")],
) -> None:
    """Average the weights of fine-tuned relatives (same labels and shapes); calibrate the result again."""
    from ner.averaging import average_span_models

    check_out_folder(out)
    loaded = [load_model(None if name == "default" else name, None, None, False) for name in models]
    try:
        averaged = average_span_models(loaded)
    except ValueError as exc:
        raise fail(str(exc)) from None
    save_model(averaged, out)
    typer.echo(f"averaged {len(loaded)} models into {out}; calibration shifts were reset", err=True)
