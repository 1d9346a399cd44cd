"""One exception tree for trio-exec.

Every error carries a stable ``code``. Tool-level failures (``InvalidArguments``,
``Rejected``, ``SpawnFailed``, guard refusals) become ``CallToolResult`` objects with
``isError: true`` in ``server.py``; ``InvalidParams`` (an unknown tool) becomes a JSON-RPC
-32602 error; ``ConfigError`` ends startup with exit code 2.
"""

from __future__ import annotations


class TrioExecError(Exception):
    """Base of every error trio-exec raises on purpose."""

    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(TrioExecError):
    """The configuration is invalid; startup stops with exit code 2."""

    code = "config"


class InvalidParams(TrioExecError):
    """The request breaks the protocol (an unknown tool): JSON-RPC -32602."""

    code = "invalid_params"
    jsonrpc_code = -32602


class ToolError(TrioExecError):
    """A tool call that did not run to completion; reported as ``isError: true``."""

    def __init__(
        self,
        message: str,
        *,
        argument: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.argument = argument
        self.retry_after_s = retry_after_s


class InvalidArguments(ToolError):
    """The arguments break the tool's ``inputSchema`` (SEP-1303: a result the model reads, not -32602)."""

    code = "invalid_arguments"


class Rejected(ToolError):
    """An argument or command failed validation; nothing was started."""

    code = "rejected"


class SpawnFailed(ToolError):
    """The program could not be started."""

    code = "spawn_failed"


class TimedOut(ToolError):
    """The timeout ended the command."""

    code = "timeout"


class OutputLimit(ToolError):
    """The command printed more than the output cap and was stopped."""

    code = "output_limit"


class Busy(ToolError):
    """``--max-concurrent`` commands are already running."""

    code = "busy"


class RateLimited(ToolError):
    """The client's (or the server's) token bucket is empty; ``retry_after_s`` says when to retry."""

    code = "rate_limited"


class Internal(ToolError):
    """Something failed inside the server (a bug, an OS surprise, the audit trail unavailable); no argument values."""

    code = "internal"


class CircuitOpen(ToolError):
    """This tool's circuit breaker is open; ``retry_after_s`` says when a probe is allowed."""

    code = "circuit_open"


class Cancelled(ToolError):
    """The command was stopped before it ended: the server shut down, or (over HTTP) the client cancelled the
    call or went away; over stdio and WebSocket a client's own cancellation gets no reply (MCP)."""

    code = "cancelled"


class NotFound(ToolError):
    """No such job of this client: it never existed, is another client's, or expired."""

    code = "not_found"
