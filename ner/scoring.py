"""Score a model on gold sentences: what `spanlink evaluate` and training's dev checks run.

Predictions come from `extract` on the sentence *text* (as users call it), compared with the gold
character spans by exact span and label. Every gold entity counts, also those longer than
`entity_max_length` or beyond the model's length (span_marker's evaluation drops both).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ner.corpora import Sentence
from ner.engine import SpanEngine
from ner.entities import Entity
from ner.evaluation import EntityAccumulator


@dataclass
class ScoreRun:
    accumulator: EntityAccumulator
    seconds: float
    sentences: int

    @property
    def sentences_per_second(self) -> float:
        return self.sentences / self.seconds if self.seconds > 0 else 0.0


def score_model(
    model: SpanEngine,
    sentences: list[Sentence],
    *,
    batch_size: int = 64,
    prune: bool | None = None,
    show_progress_bar: bool = False,
) -> ScoreRun:
    """Extract on each sentence's text and count exact matches against its gold spans."""
    texts = [s.text for s in sentences]
    start = time.perf_counter()
    predictions = model.extract(
        texts, batch_size=batch_size, strip_spaces=True, prune=prune, show_progress_bar=show_progress_bar
    )
    seconds = time.perf_counter() - start
    return ScoreRun(count_matches(sentences, predictions), seconds, len(sentences))


def count_matches(sentences: list[Sentence], predictions: list[list[Entity]]) -> EntityAccumulator:
    """Exact span-and-label matches of each sentence's predicted entities against its gold spans."""
    accumulator = EntityAccumulator()
    for sentence, entities in zip(sentences, predictions, strict=True):
        accumulator.update(sentence.char_entities(), [(e.start, e.end, e.label) for e in entities])
    return accumulator
