"""Exact-match entity-level metrics: micro and per-label precision, recall and F1 (issue 3).

An entity counts as correct only when start, end and label all match a gold entity, as in
conlleval and seqeval. Offsets may be word indices or char offsets, as long as gold and predictions
use the same. Every gold entity counts, including ones longer than the model's
``entity_max_length``, so the scores stay comparable with other systems' published numbers.

Counting is streamed: :class:`EntityAccumulator` takes one sentence at a time, so a large file never
has to be held in memory, and accumulators from several files merge into an overall score.

Example:
    >>> accumulator = EntityAccumulator()
    >>> accumulator.update(gold=[(0, 2, "PER"), (5, 6, "LOC")], pred=[(0, 2, "PER"), (5, 6, "ORG")])
    >>> scores = accumulator.compute()
    >>> scores.precision, scores.recall, scores.per_label["LOC"].recall
    (0.5, 0.5, 0.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

Entity = tuple[int, int, str]
"""``(start, end, label)``: end exclusive, word or char offsets."""


@dataclass(frozen=True)
class LabelScores:
    """Scores for one label, or for all labels together (micro average).

    Precision is 0 when nothing was predicted and recall is 0 when there is no gold entity (rather
    than undefined), and F1 is 0 when both are 0: a label the system never predicts must not score
    well, and JSON has no NaN.

    Attributes:
        precision (float): ``correct / predicted``.
        recall (float): ``correct / support``.
        f1 (float): Harmonic mean of precision and recall.
        support (int): Gold entities.
        predicted (int): Predicted entities.
        correct (int): Predicted entities that exactly match a gold entity.
    """

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    correct: int

    @classmethod
    def from_counts(cls, support: int, predicted: int, correct: int) -> LabelScores:
        """Computes the scores from counts, with the zero-division rules above."""
        precision = correct / predicted if predicted else 0.0
        recall = correct / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(precision, recall, f1, support, predicted, correct)


@dataclass(frozen=True)
class EntityScores:
    """The result of an evaluation.

    Attributes:
        precision (float): Micro-averaged precision over all entities.
        recall (float): Micro-averaged recall.
        f1 (float): Micro-averaged F1, the headline number (as in conlleval and seqeval).
        support (int): Gold entities.
        predicted (int): Predicted entities.
        correct (int): Exactly matching predictions.
        macro_f1 (float): Unweighted mean of the per-label F1 over every label seen in gold or
            predictions (0 when there are none); shows whether rare labels are learned.
        sentences (int): Sentences evaluated.
        per_label (dict[str, LabelScores]): Scores per label, sorted by label.
    """

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    correct: int
    macro_f1: float
    sentences: int
    per_label: dict[str, LabelScores] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Returns plain JSON-serialisable data, per-label scores nested under ``"per_label"``."""
        return asdict(self)


def _check(entities: Sequence[Entity], side: str, sentence: int) -> None:
    """Rejects malformed entities early, naming the sentence, instead of scoring garbage."""
    for entity in entities:
        if (
            not isinstance(entity, (tuple, list))
            or len(entity) != 3
            or not isinstance(entity[0], int)
            or not isinstance(entity[1], int)
            or not isinstance(entity[2], str)
        ):
            raise ValueError(f"sentence {sentence}: {side} entity {entity!r} is not (start, end, label)")
        if not 0 <= entity[0] < entity[1]:
            raise ValueError(f"sentence {sentence}: {side} entity {entity!r} needs 0 <= start < end")


class EntityAccumulator:
    """Counts exact matches sentence by sentence; :meth:`compute` turns the counts into scores.

    Each sentence is matched as a multiset: a prediction listed twice can match one gold entity
    only once, so the duplicate counts as a false positive.
    """

    def __init__(self) -> None:
        self.support: Counter[str] = Counter()
        self.predicted: Counter[str] = Counter()
        self.correct: Counter[str] = Counter()
        self.sentences = 0

    def update(self, gold: Iterable[Entity], pred: Iterable[Entity]) -> None:
        """Adds one sentence's gold and predicted entities.

        Args:
            gold (Iterable[Entity]): Gold ``(start, end, label)`` entities.
            pred (Iterable[Entity]): Predicted entities, in the same offsets as ``gold``.

        Raises:
            ValueError: If an entity is not ``(start, end, label)`` with ``0 <= start < end``.
        """
        gold_list = [tuple(entity) for entity in gold]
        pred_list = [tuple(entity) for entity in pred]
        _check(gold_list, "gold", self.sentences)
        _check(pred_list, "predicted", self.sentences)
        gold_counts = Counter(gold_list)
        pred_counts = Counter(pred_list)
        for (_, _, label), count in gold_counts.items():
            self.support[label] += count
        for (_, _, label), count in pred_counts.items():
            self.predicted[label] += count
        for entity, count in (gold_counts & pred_counts).items():
            self.correct[entity[2]] += count
        self.sentences += 1

    def merge(self, other: EntityAccumulator) -> EntityAccumulator:
        """Returns a new accumulator holding both accumulators' counts, e.g. to score several files."""
        merged = EntityAccumulator()
        for source in (self, other):
            merged.support.update(source.support)
            merged.predicted.update(source.predicted)
            merged.correct.update(source.correct)
            merged.sentences += source.sentences
        return merged

    def compute(self) -> EntityScores:
        """Returns micro and per-label scores for everything added so far."""
        per_label = {
            label: LabelScores.from_counts(self.support[label], self.predicted[label], self.correct[label])
            for label in sorted(set(self.support) | set(self.predicted))
        }
        total = LabelScores.from_counts(
            sum(self.support.values()), sum(self.predicted.values()), sum(self.correct.values())
        )
        macro_f1 = sum(scores.f1 for scores in per_label.values()) / len(per_label) if per_label else 0.0
        return EntityScores(
            precision=total.precision,
            recall=total.recall,
            f1=total.f1,
            support=total.support,
            predicted=total.predicted,
            correct=total.correct,
            macro_f1=macro_f1,
            sentences=self.sentences,
            per_label=per_label,
        )


def merge_accumulators(accumulators: Iterable[EntityAccumulator]) -> EntityAccumulator:
    """Merges per-file accumulators into one, for a score over several files (micro over all)."""
    merged = EntityAccumulator()
    for accumulator in accumulators:
        merged = merged.merge(accumulator)
    return merged


def evaluate_entities(gold: Iterable[Sequence[Entity]], pred: Iterable[Sequence[Entity]]) -> EntityScores:
    """Scores predictions against gold, sentence by sentence; the pure core behind evaluation runs.

    Args:
        gold (Iterable[Sequence[Entity]]): Gold entities per sentence.
        pred (Iterable[Sequence[Entity]]): Predicted entities per sentence, same order and offsets.

    Returns:
        EntityScores: Micro and per-label scores.

    Raises:
        ValueError: If the two sides have different numbers of sentences, or an entity is malformed.

    Example:
        >>> evaluate_entities([[(0, 1, "PER")], []], [[(0, 1, "PER")], [(2, 3, "LOC")]]).precision
        0.5
    """
    accumulator = EntityAccumulator()
    gold_iter, pred_iter = iter(gold), iter(pred)
    sentinel: list[Entity] = []
    while True:
        gold_sentence = next(gold_iter, sentinel)
        pred_sentence = next(pred_iter, sentinel)
        if gold_sentence is sentinel and pred_sentence is sentinel:
            return accumulator.compute()
        if gold_sentence is sentinel or pred_sentence is sentinel:
            raise ValueError(
                f"gold and predictions differ in length: one side ended after {accumulator.sentences} "
                "sentences; pass one (possibly empty) list of entities per sentence on both sides"
            )
        accumulator.update(gold_sentence, pred_sentence)
