"""Logging: loguru, to stderr only (on stdio, stdout is the protocol wire).

Invariant: nothing here or anywhere else writes to stdout while serving; no log line may
contain the auth token or the value of a sensitive argument.
"""

from __future__ import annotations

import logging
import sys

from loguru import logger

_LEVELS = {"trace": "TRACE", "debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR"}


class _ToLoguru(logging.Handler):
    """Route the MCP SDK's stdlib logging into loguru (and so to stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info, depth=6).log(level, record.getMessage())


def setup_logging(level: str) -> None:
    """Send every log line to stderr at ``level`` (one of the CLI's names)."""
    logger.remove()
    logger.add(sys.stderr, level=_LEVELS[level], format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level:<7} {message}")
    logging.basicConfig(handlers=[_ToLoguru()], level=logging.WARNING, force=True)
