"""Entity display names: the most representative of an entity's surface forms, recomputed as they change.

An entity is born with the fullest form of the first group that mentioned it, which in inflected
languages is often not the nominative ("Donalda Tuska", "Krakowa", "Києві"), and it should not
keep that name once 74 mentions have said "Donald Tusk", nor after the document that gave it is
deleted. Without a lemmatizer per language, the name is chosen from the alias counts alone:

1. Aliases are gathered into *families* of inflected variants of one name: same number of tokens,
   each token equal up to a short ending in the shared transliteration (``names.stem_match``),
   so "donald tusk" / "donalda tuska" / "donaldem tuskiem" are one family, "tusk" another, and
   "дональд туск" (transliterated "donald tusk") joins the Latin one.
2. Among families holding at least ``FULL_SHARE`` of the best family's mentions, the one with the
   most tokens wins (a full name over a bare surname, "Unia Europejska" over "UE"), then the one
   with the most mentions (the language of most mentions).
3. Within the family, the forms that carry at least ``NOMINATIVE_SHARE`` of its best form's count
   compete, in the script of most of the family's mentions, and the shortest wins, then the most
   frequent: in Slavic languages the nominative of a name is usually its shortest form ("Kraków"
   vs "Krakowa", "Krakowie"; "Київ" vs "Києві"; "Путин" vs "Путина"), and where forms are equally
   long ("Polska", "Polski") the count decides.

Aliases are stored case-folded, so the display casing comes from the surfaces the caller has seen
(``cased``); a form never seen in its original casing is title-cased word by word.
"""

from __future__ import annotations

from collections.abc import Mapping

from linking.names import name_tokens, script_of, stem_match

FULL_SHARE = 0.2  # a fuller family needs this share of the best family's mentions to win
NOMINATIVE_SHARE = 1 / 3  # forms of a family below this share of its most frequent form do not compete


def _same_family(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return len(a) == len(b) and all(stem_match(x, y) for x, y in zip(a, b))


def families(alias_counts: Mapping[str, int]) -> list[list[str]]:
    """Aliases (with a positive count) grouped into inflection families, most frequent alias first."""
    out: list[tuple[tuple[str, ...], list[str]]] = []
    for alias in sorted(alias_counts, key=lambda a: (-alias_counts[a], a)):
        if alias_counts[alias] <= 0:
            continue
        tokens = name_tokens(alias)
        if not tokens:
            continue
        for head, members in out:
            if _same_family(head, tokens):
                members.append(alias)
                break
        else:
            out.append((tokens, [alias]))
    return [members for _, members in out]


def representative_alias(alias_counts: Mapping[str, int]) -> str | None:
    """The alias that best names the entity (see the module docstring); None without counted aliases.

    >>> representative_alias({"donalda tuska": 10, "donald tusk": 74, "tusk": 200})
    'donald tusk'
    >>> representative_alias({"krakowa": 15, "kraków": 10, "krakowie": 12})
    'kraków'
    """
    groups = families(alias_counts)
    if not groups:
        return None
    support = [sum(alias_counts[a] for a in g) for g in groups]
    floor = FULL_SHARE * max(support)
    best = max(
        (i for i in range(len(groups)) if support[i] >= floor),
        key=lambda i: (len(name_tokens(groups[i][0])), support[i], -i),
    )
    family = groups[best]
    by_script: dict[str, int] = {}
    for alias in family:
        by_script[script_of(alias)] = by_script.get(script_of(alias), 0) + alias_counts[alias]
    script = max(by_script, key=lambda s: by_script[s])
    top = max(alias_counts[a] for a in family if script_of(a) == script)
    contenders = [a for a in family if script_of(a) == script and alias_counts[a] >= NOMINATIVE_SHARE * top]
    return min(contenders, key=lambda a: (len(a), -alias_counts[a], family.index(a)))


def display_form(norm: str, cased: Mapping[str, str]) -> str:
    """``norm`` in its original casing when a surface with that normalization was seen, else title-cased."""
    seen = cased.get(norm)
    if seen is not None:
        return seen
    return " ".join(word[:1].upper() + word[1:] for word in norm.split())
