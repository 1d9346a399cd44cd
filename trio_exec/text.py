"""Message text: how a refusal quotes the value it refuses.

Invariant: a quoted value is one readable line. ``repr`` escapes control, bidirectional and other
non-printable characters, and a long value is cut to its first ``EXCERPT_CHARS`` characters with its
length named.
"""

from __future__ import annotations

__all__ = ["EXCERPT_CHARS", "excerpt"]

EXCERPT_CHARS = 40


def excerpt(value: str) -> str:
    """``value`` quoted for a message: ``'abc'``, or ``'first 40 characters'... (N characters)``."""
    if len(value) <= EXCERPT_CHARS:
        return repr(value)
    return f"{value[:EXCERPT_CHARS]!r}... ({len(value)} characters)"
