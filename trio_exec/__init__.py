"""trio-exec: a secure command-execution MCP server on trio."""

from __future__ import annotations

__version__ = "0.1.0"
