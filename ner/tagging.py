"""Tag schemes: IOB1, IOB2, BIOES and BILOU tag sequences to entity spans.

Decoding is lenient in the way conlleval and seqeval's default mode are (see `tags_to_spans`), so
every tag sequence decodes; what the scheme decides is which sequences count as malformed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SCHEMES = ("auto", "iob1", "iob2", "bioes", "bilou")

# Tag prefixes each explicit scheme accepts. BILOU's L/U are read as BIOES's E/S.
SCHEME_PREFIXES = {
    "iob1": frozenset("BI"),
    "iob2": frozenset("BI"),
    "bioes": frozenset("BIES"),
    "bilou": frozenset("BILU"),
}
_BILOU_TO_BIOES = {"L": "E", "U": "S"}


def parse_tag(tag: str) -> tuple[str, str]:
    """Splits a tag into ``(prefix, label)``; ``"O"`` gives ``("O", "")``.

    Only the first hyphen separates, so ``B-WORK-OF-ART`` has label ``WORK-OF-ART``.

    Raises:
        ValueError: If the tag is neither ``O`` nor ``<B|I|E|S|L|U>-<label>``.
    """
    if tag == "O":
        return "O", ""
    prefix, sep, label = tag.partition("-")
    if not sep or len(prefix) != 1 or prefix.upper() not in "BIESLU" or not label:
        raise ValueError(
            f"tag {tag!r} is not 'O' or '<prefix>-<label>' with prefix B, I, E, S, L or U "
            "(IO tagging without prefixes is not supported; write I-<label>)"
        )
    return prefix.upper(), label


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Works out the tagging scheme from the tags alone.

    E-/S- tags mean BIOES and L-/U- tags BILOU. Files with only B-/I- tags are IOB1 when more
    entities start with I- than with B- (IOB1 uses B- only between two adjacent entities of one
    type), else IOB2; a few stray I- starts in an IOB2 file are then reported as malformed rather
    than flipping the whole file to IOB1. Both decode the same way, so a wrong guess between the
    two only changes the warning, never the spans.

    Args:
        tag_sequences (Iterable[Sequence[str]]): Tags per sentence.

    Returns:
        str: One of ``"iob1"``, ``"iob2"``, ``"bioes"``, ``"bilou"``.

    Raises:
        ValueError: If a tag is malformed, or the tags mix BIOES and BILOU prefixes.
    """
    prefixes: set[str] = set()
    b_starts = i_starts = 0
    for tags in tag_sequences:
        previous = ("O", "")
        for tag in tags:
            prefix, label = parse_tag(tag)
            prefixes.add(prefix)
            if prefix == "B":
                b_starts += 1
            elif prefix == "I" and (previous[0] == "O" or previous[1] != label):
                i_starts += 1
            previous = (prefix, label)
    if prefixes & {"E", "S"} and prefixes & {"L", "U"}:
        raise ValueError("tags mix BIOES (E-, S-) and BILOU (L-, U-) prefixes; pick one scheme")
    if prefixes & {"E", "S"}:
        return "bioes"
    if prefixes & {"L", "U"}:
        return "bilou"
    return "iob1" if i_starts > b_starts else "iob2"


def tags_to_spans(tags: Sequence[str], scheme: str = "iob2") -> tuple[list[tuple[int, int, str]], list[int]]:
    """Decodes one sentence's tags into ``(start, end, label)`` word spans, leniently.

    One decoder serves every scheme, following conlleval (and seqeval's default, non-strict mode):
    an entity starts at a B-/S- tag, at an I-/E- tag after O, after an E-/S- tag, or after a tag of
    another type; it ends before O, B-, S-, a tag of another type, or after E-/S-. So IOB1's
    ``I-LOC I-LOC B-LOC`` and IOB2's ``B-LOC I-LOC B-LOC`` both give two entities, and an I- after O
    starts an entity instead of being dropped (seqeval's strict mode would drop it). What the scheme
    decides is which sequences count as malformed: an I- start in IOB2; an I-/E- start, or an
    entity not closed by E-/S-, in BIOES and BILOU.

    Args:
        tags (Sequence[str]): One tag per word.
        scheme (str): ``"iob1"``, ``"iob2"``, ``"bioes"`` or ``"bilou"``. Defaults to ``"iob2"``.

    Returns:
        tuple[list[tuple[int, int, str]], list[int]]: The spans (end exclusive), and the start
        index of each entity that is malformed for the scheme.

    Raises:
        ValueError: If the scheme is unknown or a tag's prefix does not belong to it.

    Example:
        >>> tags_to_spans(["B-PER", "I-PER", "O", "I-LOC"], "iob2")
        ([(0, 2, 'PER'), (3, 4, 'LOC')], [3])
    """
    if scheme not in SCHEME_PREFIXES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {tuple(SCHEME_PREFIXES)}")
    allowed = SCHEME_PREFIXES[scheme]
    closing_required = scheme in ("bioes", "bilou")
    spans: list[tuple[int, int, str]] = []
    malformed: list[int] = []
    start: int | None = None
    label = ""

    def close(end: int, closed_properly: bool) -> None:
        nonlocal start
        if start is not None:
            spans.append((start, end, label))
            if closing_required and not closed_properly and start not in malformed:
                malformed.append(start)
            start = None

    for index, tag in enumerate(tags):
        prefix, tag_label = parse_tag(tag)
        if prefix != "O" and prefix not in allowed:
            raise ValueError(
                f"tag {tag!r} does not belong to scheme {scheme!r} (prefixes {'/'.join(sorted(allowed))}); "
                "pass scheme='auto' to detect it"
            )
        prefix = _BILOU_TO_BIOES.get(prefix, prefix)
        if prefix == "O":
            close(index, closed_properly=False)
            continue
        if prefix in ("B", "S") or start is None or tag_label != label:
            close(index, closed_properly=False)
            if prefix in ("I", "E") and scheme != "iob1":
                malformed.append(index)
            start, label = index, tag_label
        if prefix in ("E", "S"):
            close(index + 1, closed_properly=True)
    close(len(tags), closed_properly=False)
    return spans, malformed
