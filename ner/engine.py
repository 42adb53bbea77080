"""`SpanEngine`: what every spanlink NER backend shares, with no deep-learning framework in it.

The output equals `span_marker`'s `predict` (same words, candidates, scores and greedy decoding),
but the work is organised differently:

* inputs are tokenized once, without padding to 512; long inputs are split into windows
  (`ner.segmentation`) instead of truncated;
* windows are sorted by cost and packed into batches up to a token budget;
* each batch runs its text once and then all its marker pairs against the cached text keys and
  values, in chunks when there are many;
* span embeddings are means of the text states of the same pass, so they cost nothing extra;
* a call can run in steps of one batch (`start_extract` -> `ExtractJob`), so that a server can
  interleave a long document with short requests; `extract` is that loop run to the end.

A backend supplies the two forward passes and a few array operations on their outputs (the
``# -- what a backend supplies`` methods): `ner.model.SpanModel` on torch, and
`ner.onnx_runtime.OnnxSpanModel` on ONNX Runtime with numpy only, so that serving an exported model
never imports torch. Everything else (planning, batching, pruning decisions, decoding, embeddings,
the step-wise job) is this one code, which is why the backends give the same entities.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ner.config import SpanConfig
from ner.decoding import decode_spans
from ner.entities import Entity, check_encodable, merge_windows, normalize_inputs
from ner.errors import InputError
from ner.segmentation import Window, text_windows
from ner.segments import Candidates, Segment, length_batches, plan_segments, segment_entity
from ner.tokenization import Encoded, SpanTokenizer
from ner.words import sentence_safe


class SpanEngine:
    """A SpanMarker-architecture span classifier, independent of the backend that runs its passes.

    Create one with `ner.load`; `ner.model.SpanModel` (torch) and `ner.onnx_runtime.OnnxSpanModel`
    (ONNX Runtime) are the backends.

    Example:
        >>> model = ner.load("path/to/span-marker-checkpoint")
        >>> model.extract("Angela Merkel visited Paris.")
        [Entity(start=0, end=13, text='Angela Merkel', label='PER', ...), Entity(..., text='Paris', ...)]
    """

    backend = ""
    """Which backend runs the passes: "torch" or "onnx"."""

    def __init__(
        self, config: SpanConfig, tokenizer: SpanTokenizer, *, name: str = "", boundary: Any = None
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.name = name
        # Two-stage pruning: per-token logits [entity starts here, entity ends here] on the text states.
        self.boundary = boundary
        # Positions start at 2 (SpanMarker / PL-Marker), so the position table bounds the length too.
        self.max_tokens = min(tokenizer.model_max_length, config.encoder.max_position_embeddings - 2)
        self.token_budget = 8192
        self.marker_budget = 8192

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

    # -- the passes' inputs, as numpy (each backend wraps them its own way) ----------------------

    def _text_arrays(self, batch: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
        """(token ids padded with the pad id, valid mask): (batch, longest text), int64 and bool."""
        t = max(s.enc.num_tokens for s in batch)
        ids = np.full((len(batch), t), self.tokenizer.pad_id, dtype=np.int64)
        valid = np.zeros((len(batch), t), dtype=bool)
        for b, seg in enumerate(batch):
            ids[b, : seg.enc.num_tokens] = seg.enc.ids
            valid[b, : seg.enc.num_tokens] = True
        return ids, valid

    @staticmethod
    def _marker_arrays(batch: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
        """Marker positions of every candidate's start and end token, (batch, most spans) int64.

        Positions count from 2 (SpanMarker); padding rows point at the first token.
        """
        p = max(len(s.spans) for s in batch)
        start_pos = np.full((len(batch), p), 2, dtype=np.int64)
        end_pos = np.full((len(batch), p), 2, dtype=np.int64)
        for b, seg in enumerate(batch):
            start_pos[b, : len(seg.spans)] = seg.starts + 2
            end_pos[b, : len(seg.spans)] = seg.ends + 2
        return start_pos, end_pos

    @staticmethod
    def _word_edges(seg: Segment) -> tuple[list[int], list[int]]:
        """Each word's first and last subword row (0 for a word without tokens), for the boundary head."""
        first = [t[0] if t else 0 for t in seg.enc.word_tokens]
        last = [t[1] - 1 if t else 0 for t in seg.enc.word_tokens]
        return first, last

    # -- what a backend supplies ----------------------------------------------------------------

    def _inference(self) -> AbstractContextManager:
        """The context the passes run in (torch: inference mode)."""
        raise NotImplementedError

    def _encode_text(self, batch: list[Segment]) -> tuple[Any, list, Any]:
        """The text pass: (text states (batch, tokens, hidden), per-layer keys/values, valid mask)."""
        raise NotImplementedError

    def _class_probs(self, batch: list[Segment], cache: list, valid: Any) -> np.ndarray:
        """The marker pass: (batch, most spans, labels) float32 probabilities (padding rows are junk)."""
        raise NotImplementedError

    def _boundary_probs(self, hidden: Any, seg: Segment, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-word probabilities that an entity starts / ends at the word (the boundary head)."""
        raise NotImplementedError

    def _rows_mean(self, states: Any, rows: slice | list[int]) -> np.ndarray:
        """Float32 mean of one text's states over the given token rows (a span embedding)."""
        raise NotImplementedError

    # -- the forward pass -----------------------------------------------------------------------

    def _prune(self, batch: list[Segment], hidden: Any, threshold: float) -> list[Segment]:
        """Keep the candidates whose first word may start and last word may end an entity."""
        kept = []
        for b, seg in enumerate(batch):
            start_prob, end_prob = self._boundary_probs(hidden, seg, b)
            may_start, may_end = start_prob >= threshold, end_prob >= threshold
            no_tokens = np.array([t is None for t in seg.enc.word_tokens], dtype=bool)
            may_start |= no_tokens
            may_end |= no_tokens
            if len(seg.spans):
                kept.append(seg.keep(may_start[seg.spans[:, 0]] & may_end[seg.spans[:, 1] - 1]))
            else:
                kept.append(seg)
        return kept

    def _classify(self, batch: list[Segment], cache: list, valid: Any) -> list[np.ndarray]:
        """Label probabilities for every candidate span of every segment in the batch."""
        if max(len(s.spans) for s in batch) == 0:
            return [np.zeros((0, len(self.config.labels)), dtype=np.float32) for _ in batch]
        probs = self._class_probs(batch, cache, valid)
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
    ) -> Iterator[tuple[list[Segment], Any, list[np.ndarray]]]:
        """Per batch: its segments (pruned if asked), the text states, and each segment's probabilities."""
        eml = entity_max_length or self.config.entity_max_length
        if eml < 1:
            raise InputError(f"entity_max_length must be at least 1, got {eml}")
        threshold = self._prune_threshold(prune)
        segments = plan_segments(items, self.tokenizer, self.max_tokens, eml, self._text_windows)
        batches = list(self._batches(segments, batch_size))
        with self._inference():
            for batch in tqdm(batches, desc="extract", unit="batch", disable=not show_progress_bar):
                yield self._score_batch(batch, threshold)

    def _score_batch(
        self, batch: list[Segment], threshold: float | None
    ) -> tuple[list[Segment], Any, list[np.ndarray]]:
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
        with self._inference():
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
                            out[i] = self._rows_mean(hidden[b], tokens)
        return out

    # -- helpers --------------------------------------------------------------------------------

    def _mean_state(self, states: Any, enc: Encoded, start: int, end: int) -> np.ndarray:
        """The embedding of words [start, end) of a text: the mean of their subword states."""
        ranges = [r for r in enc.word_tokens[start:end] if r is not None]
        return self._rows_mean(states, slice(ranges[0][0], ranges[-1][1]))


class ExtractJob:
    """One `SpanEngine.extract` call cut into bounded steps, so that a scheduler can interleave calls.

    A 50k-word document is over a hundred model batches; a service that ran it in one call would make
    every other request wait for all of them. `SpanEngine.start_extract` plans the call (tokenization,
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
        model: SpanEngine,
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
        with self._model._inference():
            while self._next < stop:
                self._collect(*self._model._score_batch(self._batches[self._next], self._threshold))
                self._next += 1
        return self.done

    def _collect(self, batch: list[Segment], hidden: Any, probs: list[np.ndarray]) -> None:
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
