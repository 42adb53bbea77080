"""Words and their character offsets, for corpora that give text, tokens, or both.

JSON lines records carry only text (split it with :func:`split_words`); UNER files carry tokens and
the original text (find the tokens in it with :func:`align_words`); CoNLL files carry only tokens
(join them with :func:`join_words`). Everything downstream works on ``(char_start, char_end)`` pairs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence


def is_cjk_char(char: str) -> bool:
    """CJK ideographs and kana: scripts written without spaces, so one character is one word.

    Narrower than `ner.tokenization.is_cjk` on purpose: Hangul is left out (Korean puts spaces
    between words), and so are CJK punctuation and full-width forms (words of their own anyway).
    """
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0x20000 <= code <= 0x3134F  # CJK extensions B-G
    )


def split_words(text: str) -> list[tuple[int, int]]:
    """Splits text into words for JSONL records; returns each word's ``(char_start, char_end)``.

    The rules, Unicode-aware and dependency-free: a run of letters, digits, combining marks and
    connector punctuation (``_``) is one word, so ``Müller``, ``Москва`` and Devanagari with its
    vowel signs stay whole; every other non-space character (punctuation, symbols) is a word of its
    own; CJK ideographs and kana are one word each, since those scripts use no spaces. Scripts
    without spaces and without that rule (Thai, Khmer) come out as one word per run: annotate such
    data in a token-per-line format instead.

    Args:
        text (str): The text.

    Returns:
        list[tuple[int, int]]: Word offsets, in order.

    Example:
        >>> [("Zürich, 北京")[s:e] for s, e in split_words("Zürich, 北京")]
        ['Zürich', ',', '北', '京']
    """
    offsets: list[tuple[int, int]] = []
    run_start: int | None = None
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        in_run = category[0] in "LNM" or category == "Pc"
        if in_run and not is_cjk_char(char):
            if run_start is None:
                run_start = index
            continue
        if run_start is not None:
            offsets.append((run_start, index))
            run_start = None
        if not char.isspace():
            offsets.append((index, index + 1))
    if run_start is not None:
        offsets.append((run_start, len(text)))
    return offsets


def align_words(text: str, words: Sequence[str]) -> list[tuple[int, int]] | None:
    """Finds each word in ``text`` in order, allowing only whitespace between words.

    Used for UNER's ``# text`` lines: Chinese text has no spaces between tokens, so only the
    original text gives the model (and char-level evaluation) the right offsets.

    Returns:
        list[tuple[int, int]] | None: The offsets, or None if the words do not spell out ``text``
        (apart from whitespace) in order.
    """
    offsets: list[tuple[int, int]] = []
    position = 0
    for word in words:
        while position < len(text) and text[position].isspace():
            position += 1
        if not word or not text.startswith(word, position):
            return None
        offsets.append((position, position + len(word)))
        position += len(word)
    if text[position:].strip():
        return None
    return offsets


def join_words(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The space-joined text and its word offsets, for files that give no sentence text."""
    offsets = []
    position = 0
    for word in words:
        offsets.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), offsets


def align_char_span(
    text: str,
    offsets: list[tuple[int, int]],
    starts: Mapping[int, int],
    ends: Mapping[int, int],
    span: tuple[int, int, str],
) -> tuple[int, int]:
    """Maps a char span onto word indices; it must start and end on word boundaries.

    ``starts`` and ``ends`` map each word's first and past-the-end char offset to its index; they
    are built once per record, so a record with many spans stays linear.

    Misaligned spans are errors rather than silently snapped: a span cutting a word usually means
    offsets counted in bytes or UTF-16 units, or off by one, and snapping would hide that.
    """
    start, end, label = span
    if not 0 <= start < end <= len(text):
        raise ValueError(f"span [{start}, {end}) {label!r} is out of range for text of length {len(text)}")
    if start in starts and end in ends and starts[start] <= ends[end]:
        return starts[start], ends[end] + 1
    inside = [index for index, (s, e) in enumerate(offsets) if s < end and e > start]
    if not inside:
        raise ValueError(f"span [{start}, {end}) {label!r} ({text[start:end]!r}) covers only whitespace")
    fixed_start, fixed_end = offsets[inside[0]][0], offsets[inside[-1]][1]
    raise ValueError(
        f"span [{start}, {end}) {label!r} ({text[start:end]!r}) does not align with word boundaries; "
        f"the words it touches are [{fixed_start}, {fixed_end}) ({text[fixed_start:fixed_end]!r}). "
        "Offsets are Python str (code point) indices, end exclusive"
    )


_SENTENCE_END = frozenset(".!?…。！？")
_TRAILING_JUNK = frozenset(".,;:!?…。，！？、")


def _ends_sentence(text: str, words: Sequence[tuple[int, int] | None], k: int) -> bool:
    """Whether word ``k`` is a full stop (or ! ? …) that ends a sentence before word ``k + 1``.

    The next word must follow after whitespace and start with an upper-case letter or a digit, and
    a full stop after an initial ("J. Smith") or a short abbreviation ("Dr. No", "ul. Długa",
    "św. Patryka") does not count. A blank line between two words always ends a sentence.
    """
    here, after = words[k], words[k + 1]
    if here is None or after is None:
        return False
    gap = text[here[1] : after[0]]
    if "\n\n" in gap or "\n\r\n" in gap:
        return True
    mark = text[here[0] : here[1]]
    if mark not in _SENTENCE_END or not gap or not gap.isspace():
        return False
    first = text[after[0] : after[0] + 1]
    if not (first.isupper() or first.isdigit()):
        return False
    if mark == "." and k > 0 and words[k - 1] is not None:
        before = text[words[k - 1][0] : words[k - 1][1]]
        if words[k - 1][1] == here[0] and before.isalpha():
            if len(before) == 1 or before.islower() and len(before) <= 4:
                return False
            if len(before) <= 3 and before[0].isupper() and before[1:].islower():  # Dr, Mr, St
                return False
    return True


def sentence_safe(
    text: str, words: Sequence[tuple[int, int] | None], spans: Sequence[Sequence[int]]
) -> list[bool]:
    """Which candidate word spans may be entities: none may cross a sentence end ("Praze. Fiala",
    ".\\n\\nOlaf Scholz") or start or end on punctuation ("Анкару ."); a full stop may end an
    entity only after an initial or an abbreviation's letters ("U.S.", "Jr.").

    Args:
        text (str): The text the word offsets point into.
        words (Sequence[tuple[int, int] | None]): Character span of each word (None: no characters).
        spans (Sequence[Sequence[int]]): Candidate ``(start, end)`` word spans, end exclusive.

    Returns:
        list[bool]: One flag per candidate.
    """
    n = len(words)
    breaks = [k < n - 1 and _ends_sentence(text, words, k) for k in range(n)]
    before_break = [0] * (n + 1)  # prefix counts of sentence ends
    for k in range(n):
        before_break[k + 1] = before_break[k] + breaks[k]

    def word(k: int) -> str:
        span = words[k]
        return "" if span is None else text[span[0] : span[1]]

    out = []
    for start, end in spans:
        start, end = int(start), int(end)
        ok = before_break[end - 1] - before_break[start] == 0  # no sentence end before the last word
        first, last = word(start), word(end - 1)
        if first in _TRAILING_JUNK:
            ok = False
        elif last in _TRAILING_JUNK and end - 1 > start:
            prev = word(end - 2)
            ok = (
                ok
                and last == "."
                and prev.isalpha()
                and (len(prev) == 1 or prev.isupper() and len(prev) <= 3)
            )
        out.append(ok)
    return out
