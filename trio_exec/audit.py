"""Logs and the audit trail: loguru, to stderr only (on stdio, stdout is the protocol wire).

- ``setup_logging``: the operator log on stderr, text or JSON (loguru's own serialisation);
  the MCP SDK's stdlib logging is routed into it.
- ``Audit``: one flat JSON object per line per call and per security event, written through a
  loguru sink (file with size-based rotation, or ``-`` for stderr).
- Invariants: values of sensitive arguments (``--sensitive-keys``, substring, case-insensitive)
  become ``[REDACTED]`` in arguments and argv; known secrets (the auth token) are replaced in
  every log line and audit record before anything is written.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from loguru import logger

from trio_exec.validation import is_sensitive

if TYPE_CHECKING:
    from loguru import Record

REDACTED = "[REDACTED]"
_LEVELS = {"trace": "TRACE", "debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR"}
_AUDIT_KEY = "audit_line"


class _ToLoguru(logging.Handler):
    """Route the MCP SDK's stdlib logging into loguru (and so to stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info, depth=6).log(level, record.getMessage())


def _scrubber(secrets: Sequence[str]) -> Any:
    def patch(record: Record) -> None:
        for secret in secrets:
            if secret in record["message"]:
                record["message"] = record["message"].replace(secret, REDACTED)

    return patch


def setup_logging(level: str, fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Send every log line to stderr at ``level``; ``secrets`` never appear in any line."""
    logger.remove()
    logger.configure(patcher=_scrubber([s for s in secrets if s]))
    not_audit = lambda r: _AUDIT_KEY not in r["extra"]  # noqa: E731 - a one-line filter
    # No locals in tracebacks, ever: loguru's diagnose mode prints every frame's variables (argument values,
    # secrets among them), and backtrace adds the frames above the catch point.
    if fmt == "json":
        logger.add(sys.stderr, level=_LEVELS[level], serialize=True, filter=not_audit, diagnose=False, backtrace=False)
    else:
        logger.add(
            sys.stderr,
            level=_LEVELS[level],
            format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level:<7} {message}",
            filter=not_audit,
            diagnose=False,
            backtrace=False,
        )
    sdk_level = logging.DEBUG if level in ("trace", "debug") else logging.WARNING
    logging.basicConfig(handlers=[_ToLoguru()], level=sdk_level, force=True)


def redact_arguments(arguments: Mapping[str, Any], sensitive_keys: Sequence[str]) -> dict[str, Any]:
    return {k: REDACTED if is_sensitive(k, sensitive_keys) else v for k, v in arguments.items()}


def redact_argv(argv: Sequence[str], arguments: Mapping[str, Any], sensitive_keys: Sequence[str]) -> list[str]:
    """argv with every sensitive argument's value replaced, also inside larger elements (``--pw=x``)."""
    values = sorted(
        {str(v) for k, v in arguments.items() if is_sensitive(k, sensitive_keys) and str(v)}, key=len, reverse=True
    )
    out = []
    for element in argv:
        for value in values:
            element = element.replace(value, REDACTED)
        out.append(element)
    return out


class Audit:
    """The audit trail; a no-op when no ``--audit-log`` is configured."""

    def __init__(self, path: str | None, rotate: int | None, secrets: Iterable[str] = ()) -> None:
        self.enabled = path is not None
        self._secrets = [s for s in secrets if s]
        if path is None:
            return
        only_audit = lambda r: _AUDIT_KEY in r["extra"]  # noqa: E731 - a one-line filter
        fmt = "{extra[audit_line]}"
        if path == "-":
            logger.add(sys.stderr, format=fmt, filter=only_audit, level=0, colorize=False)
        else:
            logger.add(path, format=fmt, filter=only_audit, level=0, colorize=False, rotation=rotate, encoding="utf-8")

    def record(self, event: str, **fields: Any) -> None:
        """Write one record: ``event`` (``call``, ``auth_failure``, ``breaker``) plus ``fields``."""
        if not self.enabled:
            return
        line = json.dumps(
            {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": event, **fields},
            ensure_ascii=False,
            default=str,
        )
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        logger.bind(**{_AUDIT_KEY: line}).info("audit")
