"""Split inputs longer than the model's maximum length into windows, and say which window owns what.

`span_marker` silently truncates long inputs; spanlink never drops text. A long text is cut at
sentence ends and consecutive sentences are packed into windows that fit. A single sentence that
is itself too long is covered by overlapping word windows: each window *owns* a range of span
starts, chosen so that every candidate span starting there (at most `entity_max_length` words)
lies inside the window. An entity is kept only from the window that owns its start, so nothing is
lost or duplicated at a border; the few entities that then cross an ownership border are resolved
by the usual score-ordered overlap rule over the whole input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# A sentence ends after . ! ? … (optionally followed by closing quotes/brackets) and whitespace, or
# right after a CJK full stop / exclamation / question mark, which need no space.
_SENTENCE_END = re.compile(r"(?<=[.!?…][\"'”’»)\]])\s+|(?<=[.!?…])\s+|(?<=[。！？])")

# Room left for a word or two tokenizing differently at a window's edges.
_EDGE_MARGIN = 4
# Words of left context each overlapping window keeps before the span starts it owns.
_LEFT_CONTEXT = 16


@dataclass(frozen=True)
class Window:
    """A piece of one input. Units are characters for texts and words for word lists.

    Args:
        start (int): first unit of the window.
        end (int): one past its last unit.
        own_start (int): entities starting before this unit belong to another window.
        own_end (int): entities starting at or after this unit belong to another window.
        overlapping (bool): the window shares text with a neighbour (a sentence too long for one window).
    """

    start: int
    end: int
    own_start: int
    own_end: int
    overlapping: bool = False


def sentence_ranges(text: str) -> list[tuple[int, int]]:
    """Character ranges of the sentences of `text`, whitespace between them excluded."""
    ranges: list[tuple[int, int]] = []
    pos = 0
    for match in _SENTENCE_END.finditer(text):
        if match.start() > pos:
            ranges.append((pos, match.start()))
        pos = match.end()
    if pos < len(text):
        ranges.append((pos, len(text)))
    stripped = []
    for a, b in ranges:
        while a < b and text[a].isspace():
            a += 1
        if a < b:
            stripped.append((a, b))
    return stripped


def word_windows(word_token_ends: list[int], max_tokens: int, entity_max_length: int) -> list[Window]:
    """Overlapping windows over words whose text tokens (`word_token_ends[w]` = tokens up to and
    including word w, specials excluded) fit in `max_tokens`.
    """
    n = len(word_token_ends)
    budget = max(max_tokens - _EDGE_MARGIN, 1)
    starts_tokens = [0] + word_token_ends[:-1]
    windows: list[Window] = []
    start, own_start = 0, 0
    while True:
        end = start + 1
        while end < n and word_token_ends[end] - starts_tokens[start] <= budget:
            end += 1
        if end >= n:
            windows.append(Window(start, n, own_start, n, overlapping=start > 0))
            return windows
        own_end = max(end - (entity_max_length - 1), own_start + 1)
        windows.append(Window(start, end, own_start, own_end, overlapping=True))
        context = min(_LEFT_CONTEXT, (end - start) // 4)
        start = max(own_end - context, start + 1)
        own_start = own_end


def text_windows(
    text: str,
    count_tokens: Callable[[list[str]], list[int]],
    word_token_ends: Callable[[str], tuple[list[tuple[int, int]], list[int]]],
    max_tokens: int,
    num_special: int,
    entity_max_length: int,
) -> list[Window]:
    """Windows (in characters) covering `text`, each within `max_tokens` tokens including specials.

    Args:
        text (str): the input.
        count_tokens (Callable): tokens per text, specials included (batched).
        word_token_ends (Callable): for a text, the char range of each word and the running count of
            text tokens up to and including that word.
        max_tokens (int): the model's limit.
        num_special (int): special tokens the tokenizer adds to one text.
        entity_max_length (int): longest candidate span, in words.
    """
    if count_tokens([text])[0] <= max_tokens:
        return [Window(0, len(text), 0, len(text))]
    sentences = sentence_ranges(text)
    counts = count_tokens([text[a:b] for a, b in sentences])
    windows: list[Window] = []
    pack: list[tuple[int, int]] = []
    pack_tokens = num_special

    def flush() -> None:
        nonlocal pack, pack_tokens
        if pack:
            windows.append(Window(pack[0][0], pack[-1][1], pack[0][0], pack[-1][1]))
        pack, pack_tokens = [], num_special

    for (a, b), count in zip(sentences, counts):
        inner = count - num_special
        if count > max_tokens:
            flush()
            words, ends = word_token_ends(text[a:b])
            for w in word_windows(ends, max_tokens - num_special, entity_max_length):
                windows.append(
                    Window(
                        a + words[w.start][0],
                        a + words[w.end - 1][1],
                        a + words[w.own_start][0],
                        a + (words[w.own_end][0] if w.own_end < len(words) else b - a),
                        overlapping=w.overlapping,
                    )
                )
            continue
        if pack_tokens + inner + _EDGE_MARGIN > max_tokens:
            flush()
        pack.append((a, b))
        pack_tokens += inner
    flush()
    # Give each window the whitespace up to the next one, so every character has an owner.
    fixed: list[Window] = []
    for i, w in enumerate(windows):
        own_start = 0 if i == 0 else w.own_start
        own_end = len(text) if i == len(windows) - 1 else windows[i + 1].own_start
        fixed.append(Window(w.start, w.end, own_start, own_end, w.overlapping))
    return fixed
