"""MCP handlers: ``tools/list`` and ``tools/call``; domain results become ``CallToolResult`` here.

This is the one place where the error tree meets the protocol: an unknown tool is a JSON-RPC
-32602 error; every ``ToolError`` is a result with ``isError: true`` and ``structuredContent.error``,
arguments that break the published ``inputSchema`` included (``invalid_arguments``: since MCP
2025-11-25, SEP-1303, the model reads them and corrects itself); a command that ran to completion
is ``isError: false`` whatever its exit code.
"""

from __future__ import annotations

import contextvars
import math
import os
import tempfile
import traceback
from collections.abc import Mapping
from typing import Any

import attrs
import jsonschema
import mcp_types as types
import trio
from loguru import logger
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError

from trio_exec import __version__, runner
from trio_exec.admission import Guards
from trio_exec.audit import REDACTED, Audit, redact_arguments, redact_argv
from trio_exec.config import ANNOTATION_KEYS, Settings
from trio_exec.errors import (
    Cancelled,
    Internal,
    InvalidArguments,
    InvalidParams,
    OutputLimit,
    Rejected,
    SpawnFailed,
    TimedOut,
    ToolError,
)
from trio_exec.guards import State
from trio_exec.inflight import CLIENT_KEY, InFlight
from trio_exec.sandbox import Box, Sandbox
from trio_exec.shell import NAME as SHELL_NAME
from trio_exec.shell import ShellTool
from trio_exec.templates import Context, Template, as_text, describe, input_schema, render, text_arguments
from trio_exec.validation import MIN_TIMEOUT_S, is_sensitive

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
        "error": {
            "type": ["object", "null"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "argument": {"type": ["string", "null"]},
                "retry_after_s": {"type": ["number", "null"]},
            },
            "required": ["code", "message", "argument", "retry_after_s"],
            "additionalProperties": False,
        },
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


@attrs.frozen
class Entry:
    """A published tool: its template (None for ``shell_execute``), schema and schema validator."""

    template: Template | None
    tool: types.Tool
    validator: jsonschema.protocols.Validator


@attrs.frozen
class Service:
    """The tools a server publishes and how it runs them."""

    settings: Settings
    context: Context
    entries: Mapping[str, Entry]
    guards: Guards
    audit: Audit
    shell: ShellTool | None = None
    sandbox: Sandbox | None = None
    inflight: InFlight = attrs.field(factory=InFlight)  # calls the HTTP transport may stop

    @classmethod
    def create(
        cls,
        settings: Settings,
        context: Context,
        templates: list[Template],
        audit: Audit,
        shell: ShellTool | None = None,
        sandbox: Sandbox | None = None,
    ) -> Service:
        entries = {}
        for t in templates:
            stdin = t.spec.stdin
            schema = input_schema(t, max_timeout_s=settings.max_timeout_s, stdin=stdin)
            annotations = None
            if t.spec.annotations:
                annotations = types.ToolAnnotations.model_validate(
                    {ANNOTATION_KEYS[k]: v for k, v in t.spec.annotations.items()}
                )
            tool = types.Tool(
                name=t.name,
                description=describe(t),
                input_schema=schema,
                output_schema=OUTPUT_SCHEMA,
                annotations=annotations,
            )
            strict = input_schema(t, max_timeout_s=settings.max_timeout_s, stdin=stdin, published=False)
            entries[t.name] = Entry(template=t, tool=tool, validator=jsonschema.Draft202012Validator(strict))

        if shell is not None:
            tool = types.Tool(
                name=SHELL_NAME,
                description=shell.description(settings.max_timeout_s, settings.max_output_bytes),
                input_schema=shell.input_schema(settings.max_timeout_s),
                output_schema=SHELL_OUTPUT_SCHEMA,
            )
            checker = jsonschema.Draft202012Validator(shell.input_schema(settings.max_timeout_s, published=False))
            entries[SHELL_NAME] = Entry(template=None, tool=tool, validator=checker)

        def breaker_changed(tool: str, client: str, state: State) -> None:
            logger.warning("circuit of tool {} for client {} is now {}", tool, client, state.value)
            audit.record("breaker", tool=tool, client=client, state=state.value)

        guards = Guards(
            tools=entries,
            max_concurrent=settings.max_concurrent,
            rate=settings.rate_limit_rps,
            burst=settings.rate_limit_burst,
            circuit_threshold=settings.circuit_threshold,
            circuit_timeout_s=settings.circuit_timeout_s,
            on_breaker_change=breaker_changed,
        )
        return cls(
            settings=settings,
            context=context,
            entries=entries,
            guards=guards,
            audit=audit,
            shell=shell,
            sandbox=sandbox,
        )

    def operator_timeout_s(self, entry: Entry) -> float:
        """The timeout the operator set for this tool (per tool, else ``--cmd-timeout``; never above the cap)."""
        t = entry.template
        return min((t and t.spec.timeout_s) or self.settings.cmd_timeout_s, self.settings.max_timeout_s)

    def plan(self, entry: Entry, arguments: Mapping[str, Any]) -> tuple[runner.ExecPlan, list[str] | None]:
        """Validate a call and make its plan (and, for ``shell_execute``, its stages' programs).

        Raises ``InvalidArguments``, ``Rejected`` (or ``SpawnFailed``) before anything starts.
        """
        s = self.settings
        t = entry.template
        check_finite(arguments)
        check_arguments(entry, arguments)
        asked = arguments.get("timeout")
        timeout = float(asked or (t and t.spec.timeout_s) or s.cmd_timeout_s)
        if asked is not None and not asked >= MIN_TIMEOUT_S:  # the schema says so too; one layer is not enough
            raise Rejected(f"argument 'timeout': give at least {MIN_TIMEOUT_S:g} seconds", argument="timeout")
        stdin = encode_stdin(arguments.get("stdin"), s.max_stdin_bytes)
        base = runner.ExecPlan(
            argv=(),
            wrapper=runner.limits_prefix(s.limits, s.prlimit_path),
            cwd=s.base_path or os.getcwd(),
            env=runner.child_env(
                search_path=runner.SAFE_PATH,
                home=s.base_path or tempfile.gettempdir(),
                passthrough=s.passthrough_env,
                extra=t.spec.env if t else {},
            ),
            stdin=stdin,
            timeout_s=min(timeout, s.max_timeout_s),
            max_output_bytes=s.max_output_bytes,
            sandbox=self.sandbox,
            box=Box(network=s.sandbox_network)
            if t is None
            else Box(network=t.spec.network, writable=t.spec.writable, ro=t.spec.sandbox_ro, rw=t.spec.sandbox_rw),
        )
        if t is None:
            if self.shell is None:  # pragma: no cover - the entry exists only with a shell tool
                raise RuntimeError("shell_execute without an allowlist")
            return self.shell.plan(arguments, base=base)
        argv = render(t, arguments, self.context)
        return attrs.evolve(base, argv=argv, cwd=t.spec.cwd or base.cwd), None


def _non_finite(value: Any, where: str) -> str | None:
    """Where a NaN or infinity hides in ``value`` (JSON allows neither, Python's parser reads both)."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, Mapping):
        return next((w for k, v in value.items() if (w := _non_finite(v, f"{where}.{k}")) is not None), None)
    if isinstance(value, (list, tuple)):
        return next((w for i, v in enumerate(value) if (w := _non_finite(v, f"{where}[{i}]")) is not None), None)
    return None


def check_finite(arguments: Mapping[str, Any]) -> None:
    """Refuse NaN, Infinity and -Infinity anywhere in the arguments, before anything starts."""
    for name, value in arguments.items():
        where = _non_finite(value, name)
        if where is not None:
            raise InvalidArguments(
                f"argument {name!r}: {where} is NaN or infinite, which is not a JSON number; give a finite number",
                argument=name,
            )


def encode_stdin(stdin: Any, limit: int) -> bytes | None:
    """The ``stdin`` argument as UTF-8, once, refused above ``limit`` bytes (``--max-stdin-bytes``)."""
    if not isinstance(stdin, str):
        return None
    # Each character is 1-4 bytes: decide from the length alone where it can, without a copy.
    data = None if len(stdin) > limit else stdin.encode("utf-8", "surrogatepass")
    if data is None or len(data) > limit:
        raise Rejected(
            f"argument 'stdin': more than the limit of {limit} bytes (--max-stdin-bytes); "
            "send less input, or write it to a file inside the base path and pass its name",
            argument="stdin",
        )
    return data


def _for_audit(value: Any) -> Any:
    """A value the audit line can hold as strict JSON: non-finite numbers as text, long stdin as its size."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {k: _for_audit(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_for_audit(v) for v in value]
    return value


AUDIT_STDIN_CHARS = 256  # stdin is input, not configuration: the audit line keeps its start and its size


def _audited_arguments(arguments: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    shown = _for_audit(redact_arguments(arguments, keys))
    stdin = shown.get("stdin")
    if isinstance(stdin, str) and len(stdin) > AUDIT_STDIN_CHARS:
        shown["stdin"] = f"{stdin[:AUDIT_STDIN_CHARS]}[... {len(stdin)} characters]"
    return dict(shown)


def as_texts(entry: Entry, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
    """The numbers (and booleans) a client gave where the tool takes text, as their canonical text.

    The published schema allows them; everything after this (validation, argv, the audit trail) sees text.
    """
    if entry.template is not None:
        return text_arguments(entry.template, arguments)
    command = arguments.get("command")
    if not isinstance(command, list):
        return arguments
    return {**arguments, "command": [v if (text := as_text(v)) is None else text for v in command]}


def check_arguments(entry: Entry, arguments: Mapping[str, Any]) -> None:
    """The low-level Server does not validate against ``inputSchema``; we do."""
    error = jsonschema.exceptions.best_match(entry.validator.iter_errors(dict(arguments)))
    if error is not None:
        raise InvalidArguments(f"tool {entry.tool.name!r}: {_schema_problem(error)}", argument=_schema_argument(error))


_SCHEMA_RULES = {
    "type": "must be of type {}",
    "maxLength": "is longer than {} characters",
    "enum": "must be one of {}",
    "pattern": "must match the pattern {}",
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be greater than {}",
}


def _schema_argument(error: jsonschema.ValidationError) -> str | None:
    """The argument a schema error is about: its path, or the property a required/unknown rule names."""
    if error.path:
        return str(error.path[0])
    if not isinstance(error.instance, Mapping):
        return None
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [p for p in error.validator_value if p not in error.instance]
        return str(missing[0]) if missing else None
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        extra = [p for p in error.instance if p not in known]
        return str(extra[0]) if extra else None
    return None


def _schema_problem(error: jsonschema.ValidationError) -> str:
    # Never echo the value: it may be a secret. Property names and rules are safe to show.
    if error.validator in ("required", "additionalProperties"):
        return str(error.message)
    where = f"argument {error.path[0]!r}" if error.path else "arguments"
    rule = _SCHEMA_RULES.get(str(error.validator), f"breaks the schema rule {error.validator}")
    return f"{where} {rule.format(error.validator_value)}"


def completed(result: runner.RunResult, programs: list[str] | None = None) -> types.CallToolResult:
    """A command that started: ran to completion (isError false), or was stopped by us."""
    error: ToolError | None = None
    if result.timed_out:
        error = TimedOut(f"the command did not finish within its timeout ({result.duration_s:.1f}s elapsed)")
    elif result.output_limited:
        error = OutputLimit("the command printed more than the output limit and was stopped")
    content: dict[str, Any] = {
        "exit_code": result.exit_code,
        "signal": result.signal,
        "stdout": result.stdout.decode("utf-8", errors="replace"),
        "stderr": result.stderr.decode("utf-8", errors="replace"),
        "stdout_truncated": result.stdout_truncated,
        "stderr_truncated": result.stderr_truncated,
        "timed_out": result.timed_out,
        "duration_ms": round(result.duration_s * 1000, 3),
        "error": None if error is None else _error_dict(error),
    }
    if programs is not None:
        content["stages"] = [
            {"program": name, "exit_code": code, "signal": sig}
            for name, (code, sig) in zip(programs, result.stages, strict=True)
        ]
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=_text(content))],
        structured_content=content,
        is_error=error is not None,
    )


def failed(error: ToolError, *, shell: bool = False) -> types.CallToolResult:
    """A call that did not start a command (rejected, refused, spawn failure)."""
    content: dict[str, Any] = {
        "exit_code": None,
        "signal": None,
        "stdout": "",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "timed_out": False,
        "duration_ms": 0.0,
        "error": _error_dict(error),
    }
    if shell:
        content["stages"] = []
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=_text(content))],
        structured_content=content,
        is_error=True,
    )


def _error_dict(error: ToolError) -> dict[str, Any]:
    return {
        "code": error.code,
        "message": error.message,
        "argument": error.argument,
        "retry_after_s": error.retry_after_s,
    }


TEXT_PREVIEW_CHARS = 64 * 1024  # per stream; the full output is in structuredContent


def _text(c: Mapping[str, Any]) -> str:
    lines = []
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


PROGRESS_INTERVAL_S = 2.0  # well under the 5 s that clients with idle timeouts need


async def _run_reporting_progress(ctx: ServerRequestContext[Any], plan: runner.ExecPlan) -> runner.RunResult:
    """Run ``plan`` while sending ``notifications/progress`` (message: the latest output line)."""
    watch = runner.OutputWatch()
    started = trio.current_time()

    async def tick() -> None:
        while True:
            await trio.sleep(PROGRESS_INTERVAL_S)
            elapsed = trio.current_time() - started
            message = watch.last_line or f"running for {elapsed:.0f}s"
            await ctx.session.report_progress(round(elapsed, 3), None, message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        result = await runner.run(plan, watch)
        nursery.cancel_scope.cancel()
    return result


# Who is calling, for rate limits and the audit trail. Network transports set it per request
# (token fingerprint, else client address). A stateless or WebSocket session's handlers run in the
# context of the request or connection that opened it; a stateful HTTP session outlives the request
# that opened it, so the key of each POST travels in its ASGI scope. stdio has one client.
CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("trio_exec_client", default="stdio")


def http_scope(ctx: ServerRequestContext[Any]) -> Any:
    """The ASGI scope of the HTTP request that carried this message (None off HTTP)."""
    return getattr(ctx.request, "scope", None)


def client_key(ctx: ServerRequestContext[Any]) -> str:
    scope = http_scope(ctx)
    if isinstance(scope, Mapping) and isinstance(key := scope.get(CLIENT_KEY), str):
        return key
    return CLIENT.get()


def _failed_execution(result: runner.RunResult, timeout_chosen: bool) -> bool:
    """What counts for the circuit breaker: only failures the client did not choose (DESIGN §6).

    A timeout counts when it was the operator's limit (not a shorter one the client asked for); a
    death by a signal counts unless we sent it (timeout, output cap). Output floods never count:
    the client chose the command and its arguments, and the cap already stopped it.
    """
    if result.timed_out:
        return not timeout_chosen
    return result.signal is not None and not result.output_limited


async def _admitted_call(
    service: Service, ctx: ServerRequestContext[Any], entry: Entry, arguments: Mapping[str, Any], client: str
) -> types.CallToolResult:
    """Guards, validation, execution and one audit record, in DESIGN order."""
    name = entry.tool.name
    is_shell = entry.template is None
    keys = service.settings.sensitive_keys
    record: dict[str, Any] = {
        "request_id": ctx.request_id,
        "transport": service.settings.transport,
        "client": client,
        "tool": name,
        "arguments": _audited_arguments(arguments, keys),
        "argv": None,
        "outcome": "cancelled",  # unless something below says otherwise
    }
    started = trio.current_time()
    try:
        try:
            if not service.audit.accepting():
                raise Internal(
                    "the audit log cannot be written and this server runs no call unaudited (--audit-fail closed); "
                    "the operator must make it writable again; retry later"
                )
            admission = service.guards.admit(name, client)
        except ToolError as e:
            record.update(outcome=e.code, message=e.message)
            return failed(e, shell=is_shell)
        verdict: bool | None = None  # None: nothing for the breaker to count (rejected, cancelled)
        try:
            plan, programs = service.plan(entry, arguments)
            stages = [plan.argv, *plan.more]
            record["argv"] = (
                redact_argv(plan.argv, arguments, keys)
                if not plan.more
                else [redact_argv(argv, arguments, keys) for argv in stages]
            )
            token = (ctx.meta or {}).get("progress_token")
            with admission.scope, service.inflight.track(http_scope(ctx), ctx.request_id) as abandoned:
                # admission.scope: cancelled by Guards.shutdown (the call still answers); abandoned: by the HTTP
                # transport when the client cancels the call or goes away (the answer is for the audit trail)
                result = await (runner.run(plan) if token is None else _run_reporting_progress(ctx, plan))
            if admission.scope.cancelled_caught:
                raise Cancelled("server shutting down: the command was stopped before it ended; retry later")
            if abandoned.cancelled_caught:
                raise Cancelled("the client cancelled this call or closed its connection: the command was stopped")
            verdict = _failed_execution(result, plan.timeout_s < service.operator_timeout_s(entry))
        except ToolError as e:
            verdict = True if isinstance(e, SpawnFailed) else None  # rejections, refusals: the client's doing
            record.update(outcome=e.code, message=e.message, argument=e.argument)
            logger.info("tool {} {}: {}", name, e.code, e.message)
            return failed(e, shell=is_shell)
        except Exception as e:  # any surprise becomes one answer, never a traceback with values
            internal = _internal(name, e, arguments, keys)
            record.update(outcome=internal.code, message=internal.message, argument=None)
            return failed(internal, shell=is_shell)
        finally:
            service.guards.finish(admission, failed=verdict)
        response = completed(result, programs)
        error = response.structured_content["error"] if response.structured_content else None
        record.update(
            outcome=error["code"] if error else "ok",
            exit_code=result.exit_code,
            signal=result.signal,
            bytes_out=len(result.stdout) + len(result.stderr),
            truncated=result.output_limited,
        )
        logger.debug("tool {} exit={} signal={}", name, result.exit_code, result.signal)
        return response
    finally:
        record["duration_ms"] = round((trio.current_time() - started) * 1000, 3)
        service.audit.record("call", **record)


def _internal(tool: str, error: Exception, arguments: Mapping[str, Any], keys: tuple[str, ...]) -> Internal:
    """Log an unexpected exception once (type, redacted message, frames without locals) and say so briefly."""
    secrets = sorted({str(v) for k, v in arguments.items() if is_sensitive(k, keys) and str(v)}, key=len, reverse=True)
    message = str(error)
    for secret in secrets:
        message = message.replace(secret, REDACTED)
    frames = "".join(traceback.format_tb(error.__traceback__))  # file, line and code only: no locals, no values
    for secret in secrets:
        frames = frames.replace(secret, REDACTED)
    logger.error("tool {}: internal error {}: {}\n{}", tool, type(error).__name__, message, frames.rstrip())
    return Internal(
        f"the server failed while handling this call ({type(error).__name__}); nothing more was run. "
        "The operator's log has the details"
    )


def build_server(service: Service) -> Server[Any]:
    """The low-level MCP server publishing ``service``'s tools."""
    tools = [e.tool for e in service.entries.values()]

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        entry = service.entries.get(params.name)
        arguments = params.arguments or {}
        if entry is None:
            names = ", ".join(sorted(service.entries))
            raise MCPError(
                code=InvalidParams.jsonrpc_code, message=f"unknown tool {params.name!r}; the tools are: {names}"
            )
        return await _admitted_call(service, ctx, entry, as_texts(entry, arguments), client_key(ctx))

    return Server(
        "trio-exec",
        version=__version__,
        instructions="Runs operator-approved commands. Each tool runs one fixed program; arguments are "
        "validated and passed as argv, never through a shell.",
        get_tool_input_schema=lambda name: e.tool.input_schema if (e := service.entries.get(name)) else None,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
