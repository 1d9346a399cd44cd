"""Regular expressions the operator or the agent writes: one way to compile them, one error text.

Job: compile a config file's ``pattern`` constraint, a ``regex`` placeholder's value or an
``--allow-patterns`` entry, and say why one does not compile. No timeout or size limit applies here
beyond the callers' own (a value is at most ``MAX_VALUE_BYTES``); Python's ``re`` has neither.

Invariants:
- Pure: ``re`` and ``warnings`` only.
- ``compile_error`` never raises: re's own error, a RecursionError (deep nesting) and an OverflowError
  (a huge repetition count) each become a reason.
- FutureWarning ("possible nested set") is advice about future syntax, not a compile failure: it is silenced.
"""

from __future__ import annotations

import re
import warnings

__all__ = ["CANNOT_COMPILE", "TOO_COMPLEX", "compile_error", "compile_regex"]

CANNOT_COMPILE = "Python's re module cannot compile it"
TOO_COMPLEX = "the pattern is too deeply nested or a repetition count is too large"


def compile_regex(pattern: str) -> re.Pattern[str]:
    """``re.compile(pattern)`` with warnings silenced; raises re.error, RecursionError or OverflowError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return re.compile(pattern)


def compile_error(pattern: str) -> str | None:
    """None if Python's ``re`` compiles ``pattern``, else why not: re's message, or ``TOO_COMPLEX``."""
    try:
        compile_regex(pattern)
    except re.error as exc:
        return str(exc)
    except (RecursionError, OverflowError):
        return TOO_COMPLEX
    return None
