"""Logs and the audit trail: loguru, to stderr only (on stdio, stdout is the protocol wire).

- ``setup_logging``: the operator log on stderr, text or JSON (loguru's own serialisation);
  the MCP SDK's stdlib logging is routed into it.
- ``Audit``: one flat JSON object per line per call and per security event, written straight to
  the file (size-based rotation) or to stderr (``-``); a failing write is noticed (``--audit-fail``).
- Invariants: values of sensitive arguments (``--sensitive-keys``, substring, case-insensitive)
  become ``[REDACTED]`` in arguments and argv; known secrets (the auth token) are replaced in
  every log line and audit record before anything is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import stat
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


def log_to(sink: Any, level: str, fmt: str = "text", secrets: Iterable[str] = (), tag: str | None = None) -> int:
    """Send log lines at ``level`` to ``sink`` (a stream or a callable); ``secrets`` never appear in any line.

    ``tag`` (``worker 1``) starts every text line and is the ``extra.process`` of a JSON one. Returns loguru's
    handler id. The scrubbing patcher is process-wide: it applies to every handler.
    """
    logger.configure(patcher=_scrubber([s for s in secrets if s]), extra={"process": tag} if tag else {})
    # No locals in tracebacks, ever: loguru's diagnose mode prints every frame's variables (argument values,
    # secrets among them), and backtrace adds the frames above the catch point.
    if fmt == "json":
        return logger.add(sink, level=_LEVELS[level], serialize=True, diagnose=False, backtrace=False)
    return logger.add(
        sink,
        level=_LEVELS[level],
        format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level:<7} " + (f"[{tag}] " if tag else "") + "{message}",
        diagnose=False,
        backtrace=False,
    )


def setup_logging(level: str, fmt: str = "text", secrets: Iterable[str] = (), tag: str | None = None) -> None:
    """Send every log line (ours and the SDK's) to stderr at ``level``; ``secrets`` never appear in any line."""
    logger.remove()
    log_to(sys.stderr, level, fmt, secrets, tag)
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


def _strict_json(value: Any) -> Any:
    """A value the audit line can hold as strict JSON: non-finite numbers as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


AUDIT_STDIN_CHARS = 256  # stdin is input, not configuration: the audit line keeps its start and its size


def audited_arguments(arguments: Mapping[str, Any], sensitive_keys: Sequence[str]) -> dict[str, Any]:
    """A call's arguments as its audit line shows them: redacted, strict JSON, a long stdin as its start and size."""
    shown = _strict_json(redact_arguments(arguments, sensitive_keys))
    stdin = shown.get("stdin")
    if isinstance(stdin, str) and len(stdin) > AUDIT_STDIN_CHARS:
        shown["stdin"] = f"{stdin[:AUDIT_STDIN_CHARS]}[... {len(stdin)} characters]"
    return dict(shown)


def _same_file(path: str, status: os.stat_result) -> bool:
    """Is ``path`` still the file of ``status`` (no other process moved it aside)?"""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (status.st_dev, status.st_ino)


class Audit:
    """The audit trail; a no-op when no ``--audit-log`` is configured.

    Records are written straight to the file (one ``write`` per line, no buffer that could hold lost
    records back), so a write that fails is seen at once. While the file cannot be written the trail
    is *unavailable*: one log line says so (not one per record), and with ``--audit-fail closed``
    ``accepting`` is False, so no call runs unaudited; each later call (and each ``/health``) tries
    again by writing an ``audit_restored`` record, which also ends the outage when it succeeds.
    """

    def __init__(
        self,
        path: str | None,
        rotate: int | None,
        secrets: Iterable[str] = (),
        fail: str = "closed",
        stamp: Mapping[str, Any] | None = None,
    ) -> None:
        self.enabled = path is not None
        self.stamp = dict(stamp or {})  # fields of every record (``worker``: which of --workers wrote it)
        self.path = path
        self.fail_closed = fail == "closed"
        self.available = True
        self.lost = 0  # records lost in the current outage
        self._rotate = rotate
        self._secrets = [s for s in secrets if s]
        self._fd: int | None = None
        self._broken_line = False  # a write stopped half-way: the next record starts on a new line
        if path is not None and path != "-":
            try:  # a file that cannot even be opened is an outage from the start
                self._open(path)
            except OSError as e:
                self._lost(e)
                self.lost = 0

    def close(self) -> None:
        """Close the file (at the server's end; a record after it would open it again)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def record(self, event: str, **fields: Any) -> bool:
        """Write one record: ``event`` (``call``, ``auth_failure``, ``breaker``) plus ``fields``; False if lost."""
        if not self.enabled:
            return True
        line = json.dumps(
            {
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "event": event,
                **self.stamp,
                **fields,
            },
            ensure_ascii=False,
            default=str,
        )
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        try:
            self._write((line + "\n").encode("utf-8", errors="replace"))
        except OSError as e:
            self._lost(e)
            return False
        if not self.available:
            self.available = True
            logger.warning("audit log {} is writable again; {} record(s) were lost meanwhile", self.path, self.lost)
            self.lost = 0
        return True

    def accepting(self) -> bool:
        """May a call run? False only with ``--audit-fail closed`` while the trail is unavailable (retried here)."""
        if self.available or not self.fail_closed:
            return True
        return self.record("audit_restored", lost=self.lost)

    def _lost(self, error: OSError) -> None:
        self.lost += 1
        if not self.available:
            return
        self.available = False
        then = (
            "new calls are refused until it is writable again (--audit-fail closed)"
            if self.fail_closed
            else "calls go on WITHOUT an audit trail (--audit-fail open)"
        )
        logger.error("audit log {} cannot be written ({}): {}", self.path, error.strerror or error, then)

    def _write(self, data: bytes) -> None:
        if self.path == "-":
            sys.stderr.flush()  # after any log line already queued there
            fd = 2
        elif self._fd is None:
            fd = self._open(self.path or "")
        elif self._rotate:
            fd = self._rotated(self._fd, len(data))
        else:
            fd = self._fd
        if self._broken_line:
            data = b"\n" + data
        view = memoryview(data)
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except OSError:
            self._broken_line = self._broken_line or len(view) < len(data)
            raise
        self._broken_line = False

    def _open(self, path: str) -> int:
        # 0600: the trail names clients, tools and (redacted) arguments; no other user of the host reads it.
        # A file an earlier version made readable to others is narrowed too; its rotations keep the mode.
        fd = self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        status = os.fstat(fd)
        if status.st_mode & 0o077 and status.st_uid == os.geteuid() and stat.S_ISREG(status.st_mode):
            os.fchmod(fd, 0o600)
        return fd

    def _rotated(self, fd: int, adding: int) -> int:
        """The fd to append ``adding`` bytes to, with ``--audit-rotate``: a full file is moved aside first.

        Other processes may write the same file (``--workers``): the file's real size decides, a file another
        one moved aside is followed to its successor, and the move happens under a lock, once.
        """
        path = self.path or ""
        limit = self._rotate or 0
        status = os.fstat(fd)
        if not _same_file(path, status):  # another process moved it aside: append to the new one
            os.close(fd)
            self._fd = None
            fd = self._open(path)
            status = os.fstat(fd)
        if status.st_size == 0 or status.st_size + adding <= limit:
            return fd
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)  # one mover at a time; released by the close below
        try:
            if _same_file(path, status):  # nobody moved it while we waited for the lock
                stem, ext = os.path.splitext(path)
                os.rename(path, f"{stem}.{datetime.now().strftime('%Y-%m-%d_%H-%M-%S_%f')}{ext}")
        finally:
            os.close(fd)
            self._fd = None
        return self._open(path)
