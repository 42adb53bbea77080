"""Request limits from the settings, checked before any work: 413 for too much, 422 for out of range.

Pydantic checks what a body says by itself; these limits are configurable, so they are checked
here against :class:`api.settings.ServiceSettings`. The message names the limit and the setting
that raises it.
"""

from __future__ import annotations

from collections.abc import Sequence

from api.errors import ServiceError
from api.settings import ServiceSettings


def check_items(count: int, what: str, settings: ServiceSettings) -> None:
    """At most ``max_items`` texts or documents per request."""
    if count > settings.max_items:
        raise ServiceError(
            413,
            f"too many {what}: {count} in one request, at most {settings.max_items} "
            "(send several requests, or raise SPANLINK_MAX_ITEMS)",
            {"limit": settings.max_items, "count": count},
        )


def check_texts(
    texts: Sequence[str], what: str, settings: ServiceSettings, ids: Sequence[str | None] = ()
) -> None:
    """Every text at most ``max_text_chars`` characters; the error names the first that is not."""
    for i, text in enumerate(texts):
        if len(text) > settings.max_text_chars:
            name = f"{what}[{i}]" + (f" (id {ids[i]!r})" if i < len(ids) and ids[i] is not None else "")
            raise ServiceError(
                413,
                f"{name} has {len(text):,} characters, at most {settings.max_text_chars:,} "
                "(split it, or raise SPANLINK_MAX_TEXT_CHARS)",
                {"limit": settings.max_text_chars, "index": i},
            )


def check_text(text: str, what: str, settings: ServiceSettings) -> None:
    """One text (not a list) at most ``max_text_chars`` characters; the error names the field as sent."""
    if len(text) > settings.max_text_chars:
        raise ServiceError(
            413,
            f"{what} has {len(text):,} characters, at most {settings.max_text_chars:,} "
            "(split it, or raise SPANLINK_MAX_TEXT_CHARS)",
            {"limit": settings.max_text_chars},
        )


def check_mentions(count: int, who: str, settings: ServiceSettings) -> None:
    """At most ``max_mentions`` given mentions per text."""
    if count > settings.max_mentions:
        raise ServiceError(
            413,
            f"{who} has {count} mentions, at most {settings.max_mentions}",
            {"limit": settings.max_mentions},
        )
