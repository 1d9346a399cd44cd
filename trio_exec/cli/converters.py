"""Converters from a command-line, environment or config-file value to a setting's type.

Each takes the raw value and ``what`` (the flag, variable or config key, for the message) and returns the
value or raises ``ConfigError`` with one line that says what is wanted instead.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from trio_exec.config import check_paths
from trio_exec.errors import ConfigError


def as_bool(text: Any, what: str) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{what} must be true or false, not {text!r}")


def as_number(kind: type[int] | type[float], *, minimum: float = 0, strict: bool = True) -> Callable[[Any, str], Any]:
    def convert(text: Any, what: str) -> Any:
        if isinstance(text, bool):
            raise ConfigError(f"{what} must be a number")
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise ConfigError(f"{what} must be {'an integer' if kind is int else 'a number'}, not {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
            raise ConfigError(f"{what} must be {bound}, not {text!r}")
        return value

    return convert


_SIZE_SUFFIXES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def as_size(text: Any, what: str) -> int:
    """A byte count: an integer with an optional K, M, G or T suffix (powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        raw = str(text).strip().lower().removesuffix("b").removesuffix("i")
        suffix = raw[-1:] if raw[-1:] in _SIZE_SUFFIXES else ""
        number = raw[: len(raw) - len(suffix)]
        if not number.isdigit():
            raise ConfigError(f"{what} must be a size such as 512M or 1048576, not {text!r}")
        value = int(number) * _SIZE_SUFFIXES[suffix]
    if value < 1:
        raise ConfigError(f"{what} must be at least 1 byte")
    return value


def as_names(text: Any, what: str) -> tuple[str, ...]:
    items = text if isinstance(text, list) else str(text).split(",")
    return tuple(str(x).strip() for x in items if str(x).strip())


def as_paths(text: Any, what: str) -> tuple[str, ...]:
    """Absolute paths that exist: a list (repeated flag, config) or one ':'-separated string (environment)."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(":")
    return check_paths([str(p) for p in items if str(p)], what)


def as_choice(choices: Sequence[str]) -> Callable[[Any, str], str]:
    def convert(text: Any, what: str) -> str:
        value = str(text).strip().lower()
        if value not in choices:
            raise ConfigError(f"{what} must be one of {', '.join(choices)}, not {text!r}")
        return value

    return convert


def as_workers(text: Any, what: str) -> int:
    """``--workers``: a positive integer, or ``auto`` for the CPUs this process may run on."""
    if isinstance(text, str) and text.strip().lower() == "auto":
        return len(os.sched_getaffinity(0))
    if isinstance(text, bool):
        raise ConfigError(f"{what} must be a positive integer or 'auto'")
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a positive integer or 'auto', not {text!r}") from None
    if value < 1:
        raise ConfigError(f"{what} must be at least 1, not {text!r}")
    return value


def as_text(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise ConfigError(f"{what} must be a string")
    return text
