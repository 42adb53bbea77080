"""`SpanModel`: SpanMarker checkpoints as a fast extraction engine with span embeddings.

The output equals `span_marker`'s `predict` (same words, candidates, scores and greedy decoding),
but the work is organised differently:

* inputs are tokenized once, without padding to 512; long inputs are split into windows
  (`ner.segmentation`) instead of truncated;
* windows are sorted by cost and packed into batches up to a token budget;
* each batch runs its text once and then all its marker pairs against the cached text keys and
  values (`ner.encoder`), in chunks when there are many;
* span embeddings are means of the text states of the same pass, so they cost nothing extra;
* a call can run in steps of one batch (`start_extract` -> `ExtractJob`), so that a server can
  interleave a long document with short requests; `extract` is that loop run to the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from ner.config import SpanConfig
from ner.decoding import decode_spans
from ner.encoder import Encoder
from ner.entities import Entity, check_encodable, merge_windows, normalize_inputs
from ner.errors import CheckpointError, InputError
from ner.loading import read_weights, resolve_checkpoint
from ner.segmentation import Window, text_windows
from ner.segments import Candidates, Segment, length_batches, plan_segments, segment_entity
from ner.tokenization import Encoded, SpanTokenizer
from ner.words import sentence_safe

DTYPES = ("float32", "bfloat16", "float16", "int8")
BOUNDARY_WEIGHT, BOUNDARY_BIAS = "spanlink.boundary.weight", "spanlink.boundary.bias"


def _resolve_dtype(dtype: str | torch.dtype | None) -> str:
    if dtype is None:
        return "float32"
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; expected one of {DTYPES}")
    return name


class SpanModel:
    """A SpanMarker-architecture span classifier. Create it with `ner.load` / `from_pretrained`.

    Example:
        >>> model = ner.load("path/to/span-marker-checkpoint")
        >>> model.extract("Angela Merkel visited Paris.")
        [Entity(start=0, end=13, text='Angela Merkel', label='PER', ...), Entity(..., text='Paris', ...)]
    """

    def __init__(
        self,
        config: SpanConfig,
        tokenizer: SpanTokenizer,
        encoder: Encoder,
        classifier: nn.Linear,
        *,
        name: str = "",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        boundary: nn.Linear | None = None,
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.encoder = encoder.eval()
        self.classifier = classifier.eval()
        # Two-stage pruning: per-token logits [entity starts here, entity ends here] on the text states.
        self.boundary = boundary.eval() if boundary is not None else None
        self.name = name
        self.device = torch.device(device or "cpu")
        self.dtype = _resolve_dtype(dtype)
        if self.dtype == "int8":
            if self.device.type != "cpu":
                raise ValueError("dtype 'int8' (dynamic quantization) runs on the CPU only")
            self.encoder = torch.ao.quantization.quantize_dynamic(
                self.encoder, {nn.Linear}, dtype=torch.qint8
            )
        else:
            torch_dtype = getattr(torch, self.dtype)
            self.encoder.to(self.device, torch_dtype)
            self.classifier.to(self.device, torch_dtype)
            if self.boundary is not None:
                self.boundary.to(self.device, torch_dtype)
        # Positions start at 2 (SpanMarker / PL-Marker), so the position table bounds the length too.
        self.max_tokens = min(tokenizer.model_max_length, config.encoder.max_position_embeddings - 2)
        self.token_budget = 8192
        self.marker_budget = 8192

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        allow_pickle: bool = False,
        revision: str | None = None,
    ) -> SpanModel:
        """Load a SpanMarker checkpoint folder or hub id; see `ner.load`."""
        folder = resolve_checkpoint(name_or_path, revision)
        config = SpanConfig.from_file(folder / "config.json")
        tokenizer = SpanTokenizer.from_folder(
            folder, config.model_max_length, config.encoder.model_type, config.cjk_words
        )
        state = read_weights(folder, allow_pickle=allow_pickle)
        encoder = Encoder(config.encoder)
        encoder.load_hf_state_dict(state)
        if "classifier.weight" not in state:
            raise CheckpointError(f"{folder}: the weights lack the span classifier ('classifier.weight')")
        weight, bias = state["classifier.weight"], state.get("classifier.bias")
        expected = (len(config.labels), 2 * config.encoder.hidden_size)
        if tuple(weight.shape) != expected:
            raise CheckpointError(
                f"{folder}: classifier.weight has shape {tuple(weight.shape)} but the config's "
                f"{len(config.labels)} labels {config.labels} and hidden size imply {expected}"
            )
        classifier = nn.Linear(expected[1], expected[0], bias=bias is not None)
        with torch.no_grad():
            classifier.weight.copy_(weight)
            if bias is not None:
                classifier.bias.copy_(bias)
        boundary = None
        if BOUNDARY_WEIGHT in state:
            boundary = nn.Linear(config.encoder.hidden_size, 2)
            with torch.no_grad():
                boundary.weight.copy_(state[BOUNDARY_WEIGHT])
                boundary.bias.copy_(state[BOUNDARY_BIAS])
        if len(tokenizer) > config.encoder.vocab_size:
            raise CheckpointError(
                f"{folder}: the tokenizer has {len(tokenizer)} tokens but the embeddings only "
                f"{config.encoder.vocab_size}; tokenizer and weights do not belong together"
            )
        return cls(
            config,
            tokenizer,
            encoder,
            classifier,
            name=str(name_or_path),
            device=device,
            dtype=dtype,
            boundary=boundary,
        )

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a SpanMarker checkpoint (config.json, model.safetensors, tokenizer) that both spanlink
        and `span_marker` load."""
        if self.dtype == "int8":
            raise ValueError("a dynamically quantized model cannot be saved; save the float model instead")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.float().cpu() for k, v in self.encoder.hf_state_dict().items()}
        state["classifier.weight"] = self.classifier.weight.detach().float().cpu().contiguous()
        if self.classifier.bias is not None:
            state["classifier.bias"] = self.classifier.bias.detach().float().cpu().contiguous()
        if self.boundary is not None:  # span_marker ignores these (with an "unused weights" warning)
            state[BOUNDARY_WEIGHT] = self.boundary.weight.detach().float().cpu().contiguous()
            state[BOUNDARY_BIAS] = self.boundary.bias.detach().float().cpu().contiguous()
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2), encoding="utf-8")
        self.tokenizer.save(folder)
        return folder

    @property
    def labels(self) -> list[str]:
        """Entity types the model predicts ("O" excluded)."""
        return [label for label in self.config.labels if label != "O"]

    @property
    def groups(self) -> list[str]:
        """Label groups (`ner.labels`): "PER", "GRP", ... with a label hierarchy, else the labels."""
        return list(dict.fromkeys(self.config.group_of(label) for label in self.labels))

    def expand_labels(self, wanted: Sequence[str]) -> set[str]:
        """The labels a filter names: a group stands for all its fine labels, a label for itself.

        Raises:
            InputError: a name that is neither a label nor a group of this model.
        """
        from ner.labels import expand

        known = set(self.labels) | set(self.groups)
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise InputError(
                f"unknown labels {unknown}; this model predicts {self.labels}"
                + (f" in the groups {self.groups}" if self.config.label_groups else "")
            )
        return expand(self.config.label_groups, wanted)

    @property
    def hidden_size(self) -> int:
        return self.config.encoder.hidden_size

    # -- planning -------------------------------------------------------------------------------

    def _text_windows(self, text: str) -> list[Window]:
        def word_token_ends(piece: str) -> tuple[list[tuple[int, int]], list[int]]:
            enc = self.tokenizer.encode([piece])[0]
            chars, ends, last = [], [], 0
            for tokens, span in zip(enc.word_tokens, enc.word_chars):
                if tokens is None or span is None:
                    continue
                chars.append(span)
                last = tokens[1] - 1  # token 0 is the leading special token
                ends.append(last)
            return chars, ends

        return text_windows(
            text,
            self.tokenizer.count_tokens,
            word_token_ends,
            self.max_tokens,
            self.tokenizer.num_special,
            self.config.entity_max_length,
        )

    def _batches(self, segments: list[Segment], batch_size: int) -> Iterator[list[Segment]]:
        return length_batches(segments, batch_size, self.token_budget)

    # -- the forward pass -----------------------------------------------------------------------

    def _encode_text(self, batch: list[Segment]) -> tuple[torch.Tensor, list, torch.Tensor]:
        t = max(s.enc.num_tokens for s in batch)
        ids = torch.full((len(batch), t), self.tokenizer.pad_id, dtype=torch.long)
        valid = torch.zeros((len(batch), t), dtype=torch.bool)
        for b, seg in enumerate(batch):
            ids[b, : seg.enc.num_tokens] = torch.tensor(seg.enc.ids)
            valid[b, : seg.enc.num_tokens] = True
        positions = (torch.arange(t) + 2).expand(len(batch), t)
        ids, valid, positions = ids.to(self.device), valid.to(self.device), positions.to(self.device)
        hidden, cache = self.encoder.forward_text(ids, positions, valid)
        return hidden, cache, valid

    def _logits(self, batch: list[Segment], cache: list, valid: torch.Tensor) -> torch.Tensor:
        """(batch, most spans, labels) logits for the spans of each segment (padding rows are junk)."""
        p = max(len(s.spans) for s in batch)
        start_pos = torch.full((len(batch), p), 2, dtype=torch.long)
        end_pos = torch.full((len(batch), p), 2, dtype=torch.long)
        for b, seg in enumerate(batch):
            start_pos[b, : len(seg.spans)] = torch.from_numpy(seg.starts + 2)
            end_pos[b, : len(seg.spans)] = torch.from_numpy(seg.ends + 2)
        chunk = max(1, self.marker_budget // (2 * len(batch)))
        logits = []
        for c0 in range(0, p, chunk):
            c1 = min(p, c0 + chunk)
            n = c1 - c0
            ids = torch.cat(
                (
                    torch.full((len(batch), n), self.tokenizer.start_id),
                    torch.full((len(batch), n), self.tokenizer.end_id),
                ),
                dim=1,
            )
            pos = torch.cat((start_pos[:, c0:c1], end_pos[:, c0:c1]), dim=1)
            states = self.encoder.forward_markers(ids.to(self.device), pos.to(self.device), cache, valid)
            features = torch.cat((states[:, :n], states[:, n:]), dim=-1)
            if self.classifier.training:
                features = torch.nn.functional.dropout(features, self.config.encoder.hidden_dropout_prob)
            logits.append(self.classifier(features))
        return torch.cat(logits, dim=1)

    def boundary_logits(
        self, hidden: torch.Tensor, seg: Segment, row: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-word (start, end) logits: the head on each word's first and last subword state."""
        first = [t[0] if t else 0 for t in seg.enc.word_tokens]
        last = [t[1] - 1 if t else 0 for t in seg.enc.word_tokens]
        logits = self.boundary(hidden[row])  # (tokens, 2)
        return logits[first, 0], logits[last, 1]

    def _prune(self, batch: list[Segment], hidden: torch.Tensor, threshold: float) -> list[Segment]:
        """Keep the candidates whose first word may start and last word may end an entity."""
        kept = []
        for b, seg in enumerate(batch):
            start_logit, end_logit = self.boundary_logits(hidden, seg, b)
            may_start = (torch.sigmoid(start_logit.float()) >= threshold).cpu().numpy()
            may_end = (torch.sigmoid(end_logit.float()) >= threshold).cpu().numpy()
            no_tokens = np.array([t is None for t in seg.enc.word_tokens], dtype=bool)
            may_start |= no_tokens
            may_end |= no_tokens
            if len(seg.spans):
                kept.append(seg.keep(may_start[seg.spans[:, 0]] & may_end[seg.spans[:, 1] - 1]))
            else:
                kept.append(seg)
        return kept

    def _classify(self, batch: list[Segment], cache: list, valid: torch.Tensor) -> list[np.ndarray]:
        """Label probabilities for every candidate span of every segment in the batch."""
        if max(len(s.spans) for s in batch) == 0:
            return [np.zeros((0, len(self.config.labels)), dtype=np.float32) for _ in batch]
        probs = torch.softmax(self._logits(batch, cache, valid).float(), dim=-1).cpu().numpy()
        return [probs[b, : len(seg.spans)] for b, seg in enumerate(batch)]

    # -- public API -----------------------------------------------------------------------------

    def extract(
        self,
        texts: str | Sequence[str] | Sequence[Sequence[str]],
        *,
        batch_size: int = 64,
        embeddings: bool = False,
        entity_max_length: int | None = None,
        min_score: float = 0.0,
        strip_spaces: bool = False,
        prune: bool | None = None,
        labels: Sequence[str] | None = None,
        show_progress_bar: bool = False,
    ) -> list[Entity] | list[list[Entity]]:
        """Find the entities in one or more texts.

        Args:
            texts: a string, a list of strings, or a list of pre-tokenized sentences (lists of words;
                character offsets then refer to the words joined by single spaces).
            batch_size (int): most windows per forward pass (a token budget also applies). Defaults to 64.
            embeddings (bool): add each entity's span embedding. Defaults to False.
            entity_max_length (int | None): longest candidate span in words. Defaults to the model's.
            min_score (float): drop entities scoring below this. Defaults to 0.
            strip_spaces (bool): clean spans for storage and linking: trim whitespace that some
                tokenizers (XLM-R's Metaspace) include in a word's offsets, and on text inputs skip
                candidates that cross a sentence end or start or end on punctuation
                (`ner.words.sentence_safe`). Off by default, which reproduces `span_marker` exactly.
            prune (bool | None): two-stage mode: classify only the spans the boundary head proposes.
                Defaults to the model's setting (on for models shipped with a pruning threshold).
            labels (Sequence[str] | None): keep only entities of these types; a group of the model's
                label hierarchy (``"PER"``) keeps all its fine types (`expand_labels`). Applied after
                decoding, so it keeps types rather than decoding only them. Defaults to all.
            show_progress_bar (bool): a tqdm bar over batches. Defaults to False.

        Returns:
            For a string, its list of entities; for a list, one list per input, in order.

        Raises:
            InputError: `texts` is not one of the accepted shapes, or `labels` names an unknown type.
        """
        keep = self.expand_labels(labels) if labels else None  # empty: no filter, as in the service
        job = self.start_extract(
            texts,
            batch_size=batch_size,
            embeddings=embeddings,
            entity_max_length=entity_max_length,
            min_score=min_score,
            strip_spaces=strip_spaces,
            prune=prune,
        )
        for _ in tqdm(range(job.steps_left), desc="extract", unit="batch", disable=not show_progress_bar):
            job.step()
        found = job.result()
        if keep is None:
            return found
        if isinstance(texts, str):
            return [e for e in found if e.label in keep]
        return [[e for e in entities if e.label in keep] for entities in found]

    def start_extract(
        self,
        texts: str | Sequence[str] | Sequence[Sequence[str]],
        *,
        batch_size: int = 64,
        embeddings: bool = False,
        entity_max_length: int | None = None,
        min_score: float = 0.0,
        strip_spaces: bool = False,
        prune: bool | None = None,
    ) -> ExtractJob:
        """Plan an `extract` call without running the model, to run it in bounded steps.

        Tokenizes and windows the inputs and packs the batches exactly as `extract` does (which is
        `start_extract`, then `step` until done, then `result`). A scheduler that serves many callers
        (the service's ``MicroBatcher``) runs one step of each pending job in turn, so a short request
        never waits for all of a long document: one step is one batch within the token budget.

        Args: as `extract`.

        Returns:
            ExtractJob: the planned call; no model batch has run yet.

        Raises:
            InputError: `texts` is not one of the accepted shapes, or `entity_max_length` < 1.
        """
        items = normalize_inputs(texts)
        eml = entity_max_length or self.config.entity_max_length
        if eml < 1:
            raise InputError(f"entity_max_length must be at least 1, got {eml}")
        threshold = self._prune_threshold(prune)
        segments = plan_segments(items, self.tokenizer, self.max_tokens, eml, self._text_windows)
        return ExtractJob(
            self,
            items,
            list(self._batches(segments, batch_size)),
            single=isinstance(texts, str),
            embeddings=embeddings,
            min_score=min_score,
            strip_spaces=strip_spaces,
            threshold=threshold,
        )

    def score_candidates(
        self,
        texts: str | Sequence[str] | Sequence[Sequence[str]],
        *,
        batch_size: int = 64,
        entity_max_length: int | None = None,
        prune: bool | None = None,
        show_progress_bar: bool = False,
    ) -> Candidates:
        """Run the model once and keep every candidate's label probabilities (arguments as `extract`).

        `decode_candidates` then gives what `extract` returns, also as if the classifier's biases
        were shifted, without running the encoder again: calibration tries many shifts this way.
        """
        items = normalize_inputs(texts)
        scored = [
            (seg, seg_probs)
            for batch, _, probs in self._scored_batches(
                items, entity_max_length, prune, batch_size, show_progress_bar
            )
            for seg, seg_probs in zip(batch, probs)
        ]
        return Candidates(items, scored)

    def decode_candidates(
        self,
        candidates: Candidates,
        *,
        label_shifts: Mapping[str, float] | None = None,
        min_score: float = 0.0,
        strip_spaces: bool = False,
    ) -> list[list[Entity]]:
        """Entities per input from `score_candidates`, as `extract` finds them (without embeddings).

        Args:
            candidates (Candidates): one pass of `score_candidates`.
            label_shifts (Mapping[str, float] | None): values added to labels' logits first, as if
                added to the classifier's bias (softmax is shift-invariant, so the probabilities
                suffice). Defaults to none.
            min_score (float): as `extract`.
            strip_spaces (bool): as `extract`.
        """
        shift = np.zeros(len(self.config.labels))
        for label, value in (label_shifts or {}).items():
            if label not in self.config.labels:
                raise InputError(f"unknown label {label!r}; the model has {self.config.labels}")
            shift[self.config.labels.index(label)] = value
        found: list[list[tuple[Entity, bool]]] = [[] for _ in candidates.items]
        for seg, probs in candidates.scored:
            if shift.any() and len(probs):
                logits = np.log(np.maximum(probs.astype(np.float64), 1e-300)) + shift
                shifted = np.exp(logits - logits.max(-1, keepdims=True))
                probs = (shifted / shifted.sum(-1, keepdims=True)).astype(np.float32)
            for entity, _, _ in self._segment_entities(candidates.items, seg, probs, min_score, strip_spaces):
                found[seg.item].append((entity, seg.window.overlapping))
        return [merge_windows(entities) for entities in found]

    def _scored_batches(
        self,
        items: list[str | list[str]],
        entity_max_length: int | None,
        prune: bool | None,
        batch_size: int,
        show_progress_bar: bool,
    ) -> Iterator[tuple[list[Segment], torch.Tensor, list[np.ndarray]]]:
        """Per batch: its segments (pruned if asked), the text states, and each segment's probabilities."""
        eml = entity_max_length or self.config.entity_max_length
        if eml < 1:
            raise InputError(f"entity_max_length must be at least 1, got {eml}")
        threshold = self._prune_threshold(prune)
        segments = plan_segments(items, self.tokenizer, self.max_tokens, eml, self._text_windows)
        batches = list(self._batches(segments, batch_size))
        with torch.inference_mode():
            for batch in tqdm(batches, desc="extract", unit="batch", disable=not show_progress_bar):
                yield self._score_batch(batch, threshold)

    def _score_batch(
        self, batch: list[Segment], threshold: float | None
    ) -> tuple[list[Segment], torch.Tensor, list[np.ndarray]]:
        """One forward pass: the segments (pruned if `threshold`), their text states, their probabilities."""
        hidden, cache, valid = self._encode_text(batch)
        if threshold is not None:
            batch = self._prune(batch, hidden, threshold)
        return batch, hidden, self._classify(batch, cache, valid)

    def _segment_entities(
        self, items: list[str | list[str]], seg: Segment, probs: np.ndarray, min_score: float, strip: bool
    ) -> list[tuple[Entity, int, int]]:
        """The segment's decoded entities, each with its word span in the segment."""
        out = []
        spans, item = seg.spans, items[seg.item]
        if strip and isinstance(item, str) and len(spans):  # clean spans: no sentence end, no punctuation
            words = [None if c is None else (seg.base + c[0], seg.base + c[1]) for c in seg.enc.word_chars]
            ok = np.asarray(sentence_safe(item, words, spans), dtype=bool)
            spans, probs = spans[ok], probs[ok]
        for start, end, label_id, score in decode_spans(spans, probs, self.config.outside_id, min_score):
            label = self.config.labels[label_id]
            entity = segment_entity(items[seg.item], seg, start, end, label, score, strip)
            if entity is not None:
                entity.group = self.config.group_of(label)
                out.append((entity, start, end))
        return out

    def _prune_threshold(self, prune: bool | None) -> float | None:
        if prune is False or (prune is None and self.config.prune_threshold is None):
            return None
        if self.boundary is None:
            raise InputError("this model has no boundary head, so it cannot prune (prune=True)")
        return self.config.prune_threshold if self.config.prune_threshold is not None else 0.05

    def embed_spans(self, text: str, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """Span embeddings for caller-given character spans, as `extract(..., embeddings=True)` computes them.

        Args:
            text (str): the text the spans point into.
            spans (Sequence[tuple[int, int]]): (start, end) character offsets, end exclusive.

        Returns:
            np.ndarray: (len(spans), hidden_size) float32; a span covering no subword gets zeros.

        Raises:
            InputError: a span is out of range or empty.
        """
        if not isinstance(text, str):
            raise InputError(f"text must be a string, got {type(text).__name__}")
        check_encodable(text, "text")
        out = np.zeros((len(spans), self.hidden_size), dtype=np.float32)
        checked = []
        for i, span in enumerate(spans):
            try:
                start, end = int(span[0]), int(span[1])
            except (TypeError, ValueError, IndexError):
                raise InputError(f"span {i} must be a (start, end) pair of integers, got {span!r}") from None
            if not 0 <= start < end <= len(text):
                raise InputError(
                    f"span {i} ({start}, {end}) is outside the text of length {len(text)} or empty"
                )
            checked.append((start, end))
        if not checked:
            return out
        windows = self._text_windows(text) if text.strip() else []
        jobs: list[tuple[int, str, list[tuple[int, int, int]]]] = []  # (base, piece, [(span index, s, e)])
        per_window: dict[int, list[tuple[int, int, int]]] = {}
        for i, (start, end) in enumerate(checked):
            home = next(
                (
                    k
                    for k, w in enumerate(windows)
                    if w.own_start <= start < w.own_end and w.start <= start and end <= w.end
                ),
                None,
            )
            if home is None:  # the span crosses a window border: embed it in a window of its own
                jobs.append((start, text[start:end], [(i, 0, end - start)]))
            else:
                per_window.setdefault(home, []).append(
                    (i, start - windows[home].start, end - windows[home].start)
                )
        for k, members in per_window.items():
            jobs.append((windows[k].start, text[windows[k].start : windows[k].end], members))
        encs = self.tokenizer.encode([piece for _, piece, _ in jobs])
        segments = [
            Segment(j, base, Window(0, 0, 0, 0), enc, np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(0))
            for j, ((base, _, _), enc) in enumerate(zip(jobs, encs))
        ]
        with torch.inference_mode():
            for batch in self._batches(segments, 64):
                hidden, _, _ = self._encode_text(batch)
                for b, seg in enumerate(batch):
                    for i, s, e in jobs[seg.item][2]:
                        tokens = [
                            t
                            for t, (a, z) in enumerate(seg.enc.offsets)
                            if 0 < t < seg.enc.num_tokens - 1
                            and ((a < e and z > s) or (a == z and s <= a < e))
                        ]
                        if tokens:
                            out[i] = hidden[b, tokens].float().mean(0).cpu().numpy()
        return out

    # -- helpers --------------------------------------------------------------------------------

    def _mean_state(self, hidden: torch.Tensor, enc: Encoded, start: int, end: int) -> np.ndarray:
        ranges = [r for r in enc.word_tokens[start:end] if r is not None]
        return hidden[ranges[0][0] : ranges[-1][1]].float().mean(0).cpu().numpy()


class ExtractJob:
    """One `SpanModel.extract` call cut into bounded steps, so that a scheduler can interleave calls.

    A 50k-word document is over a hundred model batches; a service that ran it in one call would make
    every other request wait for all of them. `SpanModel.start_extract` plans the call (tokenization,
    windows, batches — the same as `extract`), `step` runs the next batch, which the model's token
    budget bounds in cost, and `result` assembles the entities. Running every step gives exactly what
    `extract` returns: `extract` is this loop.

    Example:
        >>> job = model.start_extract(["a long text ...", "a short one"], embeddings=True)
        >>> while not job.done:
        ...     job.step()
        >>> job.result()  # == model.extract(["a long text ...", "a short one"], embeddings=True)
    """

    def __init__(
        self,
        model: SpanModel,
        items: list[str | list[str]],
        batches: list[list[Segment]],
        *,
        single: bool,
        embeddings: bool,
        min_score: float,
        strip_spaces: bool,
        threshold: float | None,
    ) -> None:
        self._model, self._items, self._batches = model, items, batches
        self._single, self._embeddings, self._threshold = single, embeddings, threshold
        self._min_score, self._strip = min_score, strip_spaces
        self._found: list[list[tuple[Entity, bool]]] = [[] for _ in items]
        self._next = 0

    @property
    def steps_left(self) -> int:
        """Model batches still to run (0 for blank inputs: they need no model call)."""
        return len(self._batches) - self._next

    @property
    def done(self) -> bool:
        return self._next >= len(self._batches)

    def step(self, batches: int = 1) -> bool:
        """Run the next `batches` model batches (every one left when `batches` <= 0); True once done."""
        stop = len(self._batches) if batches <= 0 else min(len(self._batches), self._next + batches)
        with torch.inference_mode():
            while self._next < stop:
                self._collect(*self._model._score_batch(self._batches[self._next], self._threshold))
                self._next += 1
        return self.done

    def _collect(self, batch: list[Segment], hidden: torch.Tensor, probs: list[np.ndarray]) -> None:
        model = self._model
        for b, (seg, seg_probs) in enumerate(zip(batch, probs)):
            decoded = model._segment_entities(self._items, seg, seg_probs, self._min_score, self._strip)
            for entity, start, end in decoded:
                if self._embeddings:
                    entity.embedding = model._mean_state(hidden[b], seg.enc, start, end)
                self._found[seg.item].append((entity, seg.window.overlapping))

    def result(self) -> list[Entity] | list[list[Entity]]:
        """What `extract` returns: for a string its entities, for a list one list per input.

        Raises:
            RuntimeError: steps are left (call `step` until `done`).
        """
        if not self.done:
            raise RuntimeError(f"the extract job has {self.steps_left} steps left; step() until done")
        results = [merge_windows(entities) for entities in self._found]
        return results[0] if self._single else results
