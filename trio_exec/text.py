"""Text as a reviewer reads it and as a program may read it: quoting, invisible characters, other readings.

Job: how a refusal quotes a value (``excerpt``), which characters a value may not hide (controls, bidi and
zero-width characters: ``find_bad_char``), and the other forms a program, library or file system may read
it as (percent-decoded, Unicode-normalised: ``variants_of``).

Invariants:
- A quoted value is one readable line. ``repr`` escapes control, bidirectional and other non-printable
  characters, and a long value is cut to its first ``EXCERPT_CHARS`` characters with its length named.
- Pure: no I/O.
"""

from __future__ import annotations

import unicodedata
from typing import Literal
from urllib.parse import unquote

__all__ = ["EXCERPT_CHARS", "MAX_DECODE_ROUNDS", "excerpt", "find_bad_char", "variants_of"]

EXCERPT_CHARS = 40
MAX_DECODE_ROUNDS = 5  # percent-decoding rounds, as mcp-secure-exec


def excerpt(value: str) -> str:
    """``value`` quoted for a message: ``'abc'``, or ``'first 40 characters'... (N characters)``."""
    if len(value) <= EXCERPT_CHARS:
        return repr(value)
    return f"{value[:EXCERPT_CHARS]!r}... ({len(value)} characters)"


# Characters that change how text is displayed without being visible: a reviewer reading the audit
# log would not see what the program received (Trojan Source, CVE-2021-42574).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e")


def _char_problem(char: str, *, text: bool) -> str | None:
    """Why ``char`` may not appear in a value, or None. ``text`` allows newline and tab."""
    code = ord(char)
    if text and char in "\n\t":
        return None
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return "control characters"
    if code < 0x7F:
        return None
    if char in _BIDI_CONTROLS:
        return "Unicode bidirectional controls"
    if char in _ZERO_WIDTH:
        return "zero-width characters"
    category = unicodedata.category(char)
    if category == "Cf":  # other invisible format characters, e.g. the U+E00xx "tag" characters
        return "invisible Unicode format characters"
    if category == "Cs":
        return "lone surrogates (not valid UTF-8)"
    if category in ("Zl", "Zp") and not text:
        return "Unicode line separators"
    return None


def find_bad_char(value: str, *, text: bool = False) -> tuple[int, str, str] | None:
    """(index, character, reason) of the first character ``value`` may not hold, else None (``_char_problem``)."""
    if value.isascii() and value.isprintable():
        return None  # fast path: printable ASCII has none of the characters above
    for index, char in enumerate(value):
        reason = _char_problem(char, text=text)
        if reason is not None:
            return index, char, reason
    return None


def _percent_decodings(value: str) -> tuple[list[str], bool]:
    """Successive percent-decodings of ``value`` (up to 5), and whether more encoding layers remain."""
    forms: list[str] = []
    current = value
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = unquote(current)
        if decoded == current:
            return forms, False
        forms.append(decoded)
        current = decoded
    return forms, unquote(current) != current


def variants_of(value: str) -> tuple[list[tuple[str, str]], bool]:
    """Other readings of ``value``: percent-decoded and Unicode-normalised forms, with a label each.

    Programs, libraries and file systems may decode or normalise a value before using it, so every
    reading must be as harmless as the raw value.
    """
    decoded, too_deep = _percent_decodings(value) if "%" in value else ([], False)
    bases = [("", value)] + [("percent-decoded ", form) for form in decoded]
    seen = {value}
    variants: list[tuple[str, str]] = []
    for prefix, form in bases:
        candidates = [(f"{prefix}form", form)]
        if not form.isascii():  # normalisation never changes ASCII
            candidates += [(f"{prefix}{nf} form", unicodedata.normalize(nf, form)) for nf in _NORMAL_FORMS]
        for label, candidate in candidates:
            if candidate not in seen:
                seen.add(candidate)
                variants.append((label, candidate))
    return variants, too_deep


_NORMAL_FORMS: tuple[Literal["NFC", "NFD", "NFKC", "NFKD"], ...] = ("NFC", "NFD", "NFKC", "NFKD")
