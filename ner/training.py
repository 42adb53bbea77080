"""Fine-tuning span models, SpanMarker style, cheaply enough for a CPU, and resumable.

Each step takes a length-bucketed batch of sentences, runs their text once, and classifies the gold
spans plus sampled negative spans (`ner.training_data`) with cross-entropy, as SpanMarker does with
all spans. The word-embedding matrix (96M of e5-small's 118M parameters) is frozen except for the
two marker rows, which makes steps several times cheaper and keeps the shipped delta small.

Everything that decides the trajectory is derived from the seed and the step number (epoch order,
negatives, dropout RNG saved in the state), so an interrupted run resumed from its last state
continues exactly as if it had not stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ner.model import Segment, SpanModel
from ner.segmentation import Window
from ner.tokenization import marker_positions
from ner.training_data import Example, sample_spans

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
ARGS_FILE = "train_args.json"


@dataclass
class TrainConfig:
    """Hyper-parameters. Defaults are what the embedded default model was trained with.

    Args:
        epochs (float): passes over the training data. Defaults to 3.
        batch_size (int): sentences per step. Defaults to 16.
        lr (float): encoder learning rate (AdamW). Defaults to 5e-5.
        head_lr (float): classifier and marker-row learning rate. Defaults to 5e-4.
        weight_decay (float): AdamW weight decay. Defaults to 0.01.
        warmup_steps (int): linear warm-up. Defaults to 300.
        negatives (int): negative spans per sentence. Defaults to 32.
        hard_fraction (float): share of negatives that overlap a gold span. Defaults to 0.5.
        freeze_word_embeddings (bool): keep the word matrix fixed (marker rows still train). Defaults to True.
        save_minutes (float): write a resumable state at least this often. Defaults to 10.
        seed (int): for the data order, negatives, dropout. Defaults to 0.
    """

    epochs: float = 3.0
    batch_size: int = 16
    lr: float = 5e-5
    head_lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 300
    negatives: int = 32
    hard_fraction: float = 0.5
    freeze_word_embeddings: bool = True
    save_minutes: float = 10.0
    seed: int = 0


def _batches_for_epoch(examples: list[Example], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-bucketed batches in a seeded random order: similar lengths pad little."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(examples))
    bucket = batch_size * 50
    batches: list[list[int]] = []
    for i in range(0, len(order), bucket):
        chunk = sorted(order[i : i + bucket], key=lambda j: examples[j].cost)
        batches += [list(chunk[k : k + batch_size]) for k in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _trainable(model: SpanModel, config: TrainConfig) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(encoder params, head params); freezes the word matrix and moves the marker rows to a parameter."""
    emb = model.encoder.embeddings
    if config.freeze_word_embeddings:
        start, end = model.tokenizer.start_id, model.tokenizer.end_id
        if end != start + 1:
            raise ValueError("marker tokens must have consecutive ids to train with frozen word embeddings")
        emb.word.weight.requires_grad_(False)
        if emb.marker_rows is None:
            emb.marker_rows = nn.Parameter(emb.word.weight.data[start : end + 1].clone())
            emb.first_marker_id = start
    head = [*model.classifier.parameters()] + ([emb.marker_rows] if emb.marker_rows is not None else [])
    if model.boundary is not None:
        head += list(model.boundary.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.encoder.parameters() if p.requires_grad and id(p) not in head_ids]
    return body, head


def finish_markers(model: SpanModel) -> None:
    """Write trained marker rows back into the word matrix (the checkpoint format has no extra rows)."""
    emb = model.encoder.embeddings
    if emb.marker_rows is not None:
        with torch.no_grad():
            emb.word.weight[emb.first_marker_id : emb.first_marker_id + 2] = emb.marker_rows.detach()
        emb.marker_rows = None


def _loss(
    model: SpanModel, examples: list[Example], rng: np.random.Generator, config: TrainConfig
) -> torch.Tensor:
    eml = model.config.entity_max_length
    segments, labels = [], []
    for i, ex in enumerate(examples):
        spans, span_labels = sample_spans(
            ex, eml, config.negatives, config.hard_fraction, rng, model.config.outside_id
        )
        starts, ends = marker_positions(ex.enc, spans)
        segments.append(Segment(i, 0, Window(0, 0, 0, 0), ex.enc, spans, starts, ends))
        labels.append(span_labels)
    hidden, cache, valid = model._encode_text(segments)
    logits = model._logits(segments, cache, valid)
    if any(ex.coarse is not None for ex in examples):
        loss = _partial_label_loss(logits, segments, labels, examples)
    else:
        target = torch.full(logits.shape[:2], -100, dtype=torch.long)
        for b, span_labels in enumerate(labels):
            target[b, : len(span_labels)] = torch.from_numpy(span_labels)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), target.flatten().to(logits.device))
    if model.boundary is not None:
        loss = loss + _boundary_loss(model, segments, examples, hidden)
    return loss


def _partial_label_loss(
    logits: torch.Tensor, segments: list[Segment], labels: list[np.ndarray], examples: list[Example]
) -> torch.Tensor:
    """Cross-entropy where a span may accept several labels: -log of their summed probability.

    Fully labelled spans accept one label, which is plain cross-entropy; coarse corpora's spans
    accept a group's fine types (`ner.training_data.CoarseLabels`).
    """
    allowed = torch.zeros(logits.shape, dtype=torch.bool)
    used = torch.zeros(logits.shape[:2], dtype=torch.bool)
    for b, (seg, span_labels, ex) in enumerate(zip(segments, labels, examples)):
        n = len(span_labels)
        used[b, :n] = True
        if ex.coarse is None:
            allowed[b, torch.arange(n), torch.from_numpy(span_labels)] = True
            continue
        spans = seg.spans
        n_gold = len({(s, e) for s, e, _ in ex.gold})  # sample_spans puts the gold spans first
        for i in range(n_gold):
            allowed[b, i, list(ex.coarse.allowed[int(span_labels[i])])] = True
        overlap = np.zeros(n - n_gold, dtype=bool)
        for s, e, _ in ex.gold:
            overlap |= (spans[n_gold:, 0] < e) & (spans[n_gold:, 1] > s)
        outside = ex.coarse.unmarked[0]
        for i in range(n_gold, n):
            allowed[b, i, [outside] if overlap[i - n_gold] else list(ex.coarse.unmarked)] = True
    scores = logits.float()
    allowed, used = allowed.to(scores.device), used.to(scores.device)
    total = torch.logsumexp(scores, dim=-1)
    right = torch.logsumexp(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return (total - right)[used].mean()


def _boundary_loss(
    model: SpanModel, segments: list, examples: list[Example], hidden: torch.Tensor
) -> torch.Tensor:
    """Binary cross-entropy of the pruning head: does an entity start / end at each word?"""
    predicted, wanted = [], []
    for b, (seg, ex) in enumerate(zip(segments, examples)):
        starts, ends = model.boundary_logits(hidden, seg, b)
        target = torch.zeros(2, ex.enc.num_words)
        for s, e, _ in ex.gold:
            target[0, s] = target[1, e - 1] = 1.0
        predicted.append(torch.stack((starts, ends)).float())
        wanted.append(target)
    return nn.functional.binary_cross_entropy_with_logits(
        torch.cat(predicted, dim=1), torch.cat(wanted, dim=1).to(hidden.device)
    )


def _evaluate(model: SpanModel, evaluate, epoch: int, step: int) -> dict:  # noqa: ANN001
    """One dev evaluation in eval mode (no dropout), logged; training mode is restored after."""
    modules = [m for m in (model.encoder, model.classifier, model.boundary) if m is not None]
    for module in modules:
        module.eval()
    try:
        result = {"epoch": epoch, "step": step, **evaluate(model)}
    finally:
        for module in modules:
            module.train()
    logger.info("evaluation: %s", result)
    return result


def _save_state(
    out: Path, model: SpanModel, optimizer, scheduler, step: int, epoch_step: int, epoch: int
) -> None:
    """Atomically write what resuming needs: trainable weights, optimizer, schedule, position, RNG."""
    trainable = {n: p.detach().cpu() for n, p in model.encoder.named_parameters() if p.requires_grad}
    state = {
        "encoder": trainable,
        "classifier": model.classifier.state_dict(),
        "boundary": model.boundary.state_dict() if model.boundary is not None else {},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "epoch": epoch,
        "epoch_step": epoch_step,
        "torch_rng": torch.get_rng_state(),
    }
    tmp = out / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, out / STATE_FILE)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C, so `kill`, schedulers and container stops also leave a resumable state."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):  # noqa: ANN001, ARG001 - signal handler signature
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(
    model: SpanModel,
    examples: list[Example],
    out: Path,
    config: TrainConfig,
    *,
    max_minutes: float | None = None,
    evaluate=None,  # noqa: ANN001 - callable(model) -> dict, run after each epoch
    evaluate_every: int | None = None,
    show_progress_bar: bool = True,
) -> dict:
    """Train in place; resume from `out/trainer_state.pt` when it exists.

    Args:
        model (SpanModel): a new (`ner.building.new_span_model`) or loaded model.
        examples (list[Example]): prepared training sentences.
        out (Path): run folder: resumable state, then the final SpanMarker checkpoint in `out/model`.
        config (TrainConfig): hyper-parameters; a resumed run must use the same ones.
        max_minutes (float | None): stop (with a saved state) after this long; run again to resume.
        evaluate: called with the model after each epoch; its dict is logged and returned.
        evaluate_every (int | None): also call it every this many steps (a learning curve); may
            change on resume.
        show_progress_bar (bool): tqdm bar with loss and ETA. Defaults to True.

    Returns:
        dict: {"finished": bool, "step": int, "loss": float, "evaluations": [...]}.
    """
    out.mkdir(parents=True, exist_ok=True)
    args_path = out / ARGS_FILE
    if args_path.exists():
        # `epochs` may change on resume: the linear decay is re-stretched to the new end, so a run can be
        # extended, or shortened to anneal inside the time that is left. Anything else must match.
        before = json.loads(args_path.read_text())
        if {**before, "epochs": config.epochs} != asdict(config):
            raise ValueError(
                f"{out} holds a run with other settings ({args_path}); use a new --out or the same settings"
            )
        if before["epochs"] != config.epochs:
            logger.info(
                "epochs changed from %s to %s: the schedule now ends there", before["epochs"], config.epochs
            )
    args_path.write_text(json.dumps(asdict(config), indent=2))
    torch.manual_seed(config.seed)
    device = model.device
    body, head = _trainable(model, config)
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": config.lr}, {"params": head, "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = max(1, int(config.epochs * steps_per_epoch))

    def schedule(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        return max(0.0, (total - step) / max(1, total - config.warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    step = epoch = epoch_step = 0
    if (out / STATE_FILE).exists():
        state = torch.load(out / STATE_FILE, map_location="cpu", weights_only=True)
        missing = model.encoder.load_state_dict(state["encoder"], strict=False).unexpected_keys
        if missing:
            raise ValueError(f"{out / STATE_FILE} does not fit this model (unexpected {missing[:3]})")
        model.classifier.load_state_dict(state["classifier"])
        if model.boundary is not None:
            model.boundary.load_state_dict(state["boundary"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, epoch_step = state["step"], state["epoch"], state["epoch_step"]
        torch.set_rng_state(state["torch_rng"])
        logger.info("resuming %s at step %d (epoch %d)", out, step, epoch)
    model.encoder.to(device).train()
    model.classifier.to(device).train()
    if model.boundary is not None:
        model.boundary.to(device).train()
    started = last_save = time.monotonic()
    evaluations: list[dict] = []
    ema = None
    bar = tqdm(
        total=total,
        initial=step,
        desc="train",
        unit="step",
        disable=not show_progress_bar,
        dynamic_ncols=True,
    )
    finished = False
    with _sigterm_as_interrupt():
        try:
            while step < total:
                batches = _batches_for_epoch(examples, config.batch_size, config.seed, epoch)
                while epoch_step < len(batches) and step < total:
                    rng = np.random.default_rng([config.seed, step])
                    loss = _loss(model, [examples[i] for i in batches[epoch_step]], rng, config)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(body + head, 1.0)
                    optimizer.step()
                    scheduler.step()
                    step += 1
                    epoch_step += 1
                    ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
                    bar.update(1)
                    bar.set_postfix(loss=f"{ema:.4f}", epoch=epoch)
                    now = time.monotonic()
                    if now - last_save > config.save_minutes * 60:
                        _save_state(out, model, optimizer, scheduler, step, epoch_step, epoch)
                        last_save = now
                    if max_minutes is not None and now - started > max_minutes * 60:
                        raise TimeoutError
                    if evaluate is not None and evaluate_every and step % evaluate_every == 0:
                        evaluations.append(_evaluate(model, evaluate, epoch, step))
                if epoch_step >= len(batches):
                    epoch, epoch_step = epoch + 1, 0
                    # an epoch that ends on an evaluation step was just scored: not twice
                    if evaluate is not None and not (evaluations and evaluations[-1]["step"] == step):
                        evaluations.append(_evaluate(model, evaluate, epoch, step))
            finished = True
        except TimeoutError:
            logger.info("time budget reached at step %d; run the same command again to resume", step)
        except KeyboardInterrupt:
            logger.info("interrupted at step %d; state saved, run the same command again to resume", step)
        finally:
            bar.close()
            _save_state(out, model, optimizer, scheduler, step, epoch_step, epoch)
            for module in (model.encoder, model.classifier, model.boundary):
                if module is not None:
                    module.eval()
    return {"finished": finished, "step": step, "total_steps": total, "loss": ema, "evaluations": evaluations}
