"""Every ``CallToolResult`` the server sends, success and every error, built by one function.

A command that ran to completion is ``isError: false`` whatever its exit code; a call that did not start
one (rejected, refused, spawn failure) or that we stopped (timeout, output cap) is ``isError: true`` with
``structuredContent.error`` (DESIGN §4). The text content is a readable preview; the full output is in
``structuredContent``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mcp_types as types

from trio_exec.errors import OutputLimit, TimedOut, ToolError
from trio_exec.plan import RunResult

ERROR_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "argument": {"type": ["string", "null"]},
        "retry_after_s": {"type": ["number", "null"]},
    },
    "required": ["code", "message", "argument", "retry_after_s"],
    "additionalProperties": False,
}
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "exit_code": {"type": ["integer", "null"]},
        "signal": {"type": ["integer", "null"]},
        "stdout": {"type": "string"},
        "stderr": {"type": "string"},
        "stdout_truncated": {"type": "boolean"},
        "stderr_truncated": {"type": "boolean"},
        "timed_out": {"type": "boolean"},
        "duration_ms": {"type": "number"},
        # A type union rather than oneOf: the same contract, and clients validate it much faster.
        "error": ERROR_SCHEMA,
    },
    "required": [
        "exit_code",
        "signal",
        "stdout",
        "stderr",
        "stdout_truncated",
        "stderr_truncated",
        "timed_out",
        "duration_ms",
        "error",
    ],
    "additionalProperties": False,
}


_STAGE = {
    "type": "object",
    "properties": {
        "program": {"type": "string"},
        "exit_code": {"type": ["integer", "null"]},
        "signal": {"type": ["integer", "null"]},
    },
    "required": ["program", "exit_code", "signal"],
    "additionalProperties": False,
}
SHELL_OUTPUT_SCHEMA: dict[str, Any] = {
    **OUTPUT_SCHEMA,
    "properties": {**OUTPUT_SCHEMA["properties"], "stages": {"type": "array", "items": _STAGE}},
    "required": [*OUTPUT_SCHEMA["required"], "stages"],
}


JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "tool": {"type": "string"},
        "state": {"enum": ["working", "completed", "failed", "cancelled"]},
        "exit_code": {"type": ["integer", "null"]},
        "signal": {"type": ["integer", "null"]},
        "started_at": {"type": "string", "format": "date-time"},
        "duration_ms": {"type": "number"},
        "stdout_bytes": {"type": "integer"},
        "stderr_bytes": {"type": "integer"},
        "stdout_dropped": {"type": "integer"},
        "stderr_dropped": {"type": "integer"},
        "error": ERROR_SCHEMA,
    },
    "required": [
        "id", "tool", "state", "exit_code", "signal", "started_at", "duration_ms", "stdout_bytes", "stderr_bytes",
        "stdout_dropped", "stderr_dropped", "error",
    ],
    "additionalProperties": False,
}  # fmt: skip


def output_schema(*, pipeline: bool, background: bool = False) -> dict[str, Any]:
    """The ``outputSchema`` of a tool (a pipeline's results list its stages; a background call's, its job)."""
    schema = SHELL_OUTPUT_SCHEMA if pipeline else OUTPUT_SCHEMA
    if background:
        schema = {**schema, "properties": {**schema["properties"], "job": JOB_SCHEMA}}
    return schema


def call_result(
    result: RunResult | None,
    *,
    error: ToolError | None = None,
    programs: Sequence[str] | None = None,
    job: Mapping[str, Any] | None = None,
) -> types.CallToolResult:
    """The answer to a call: what the command did (``result``, None when none started) and what went wrong.

    ``programs``: a pipeline's stages as the agent named them; their statuses come from ``result`` (none when
    no command started). ``job``: the job the call started (``JOB_SCHEMA``), whose output it shows so far.
    """
    content: dict[str, Any] = {
        "exit_code": None if result is None else result.exit_code,
        "signal": None if result is None else result.signal,
        "stdout": "" if result is None else result.stdout.decode("utf-8", errors="replace"),
        "stderr": "" if result is None else result.stderr.decode("utf-8", errors="replace"),
        "stdout_truncated": result is not None and result.stdout_truncated,
        "stderr_truncated": result is not None and result.stderr_truncated,
        "timed_out": result is not None and result.timed_out,
        "duration_ms": 0.0 if result is None else round(result.duration_s * 1000, 3),
        "error": None if error is None else error_dict(error),
    }
    if programs is not None:
        statuses = () if result is None else result.stages
        content["stages"] = [
            {"program": name, "exit_code": code, "signal": sig}
            for name, (code, sig) in zip(programs, statuses, strict=True)
        ]
    if job is not None:
        content["job"] = job
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=_text(content))],
        structured_content=content,
        is_error=error is not None,
    )


def completed(result: RunResult, programs: Sequence[str] | None = None) -> types.CallToolResult:
    """A command that started: ran to completion (isError false), or was stopped by us."""
    error: ToolError | None = None
    if result.timed_out:
        error = TimedOut(f"the command did not finish within its timeout ({result.duration_s:.1f}s elapsed)")
    elif result.output_limited:
        error = OutputLimit("the command printed more than the output limit and was stopped")
    return call_result(result, error=error, programs=programs)


def failed(error: ToolError, *, pipeline: bool = False) -> types.CallToolResult:
    """A call that did not start a command (rejected, refused, spawn failure)."""
    return call_result(None, error=error, programs=() if pipeline else None)


def error_dict(error: ToolError) -> dict[str, Any]:
    return {
        "code": error.code,
        "message": error.message,
        "argument": error.argument,
        "retry_after_s": error.retry_after_s,
    }


def job_line(job: Mapping[str, Any]) -> str:
    """One line saying what a job is doing, and how to go on with it."""
    if job["state"] == "working":
        return (
            f"job {job['id']} ({job['tool']}) is running, {job['duration_ms'] / 1000:.1f}s so far: read its output "
            f'with job_output {{"id": "{job["id"]}"}} (wait_s waits for more), stop it with job_cancel'
        )
    return f"job {job['id']} ({job['tool']}) {job['state']} after {job['duration_ms'] / 1000:.1f}s"


TEXT_PREVIEW_CHARS = 64 * 1024  # per stream; the full output is in structuredContent


def _text(c: Mapping[str, Any]) -> str:
    lines = []
    job = c.get("job")
    if job is not None:
        lines.append(job_line(job))
    if c["error"] is not None:
        lines.append(f"error ({c['error']['code']}): {c['error']['message']}")
    if c["exit_code"] is not None:
        lines.append(f"exit code: {c['exit_code']}")
    elif c["signal"] is not None:
        lines.append(f"killed by signal {c['signal']}")
    for stream in ("stdout", "stderr"):
        body: str = c[stream]
        if body:
            cut = " (truncated)" if c[f"{stream}_truncated"] else ""
            if len(body) > TEXT_PREVIEW_CHARS:
                more = len(body) - TEXT_PREVIEW_CHARS
                body = f"{body[:TEXT_PREVIEW_CHARS]}\n[... {more} more characters in structuredContent.{stream}]"
            lines.append(f"--- {stream}{cut} ---\n{body}")
    return "\n".join(lines)
