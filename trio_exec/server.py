"""The call pipeline: guards -> ``tool.plan`` -> ``runner.run`` -> one audit record -> ``results``.

This is the one place where the error tree meets the protocol: an unknown tool is a JSON-RPC
-32602 error; every ``ToolError`` is a result with ``isError: true`` and ``structuredContent.error``,
arguments that break the published ``inputSchema`` included (``invalid_arguments``: since MCP
2025-11-25, SEP-1303, the model reads them and corrects itself); a command that ran to completion
is ``isError: false`` whatever its exit code. Tools decide; this module only translates and records.
"""

from __future__ import annotations

import contextvars
import traceback
from collections.abc import Mapping
from typing import Any

import attrs
import mcp_types as types
import trio
from loguru import logger
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from trio_exec import __version__, job_tools, runner, tasks
from trio_exec.admission import Guards
from trio_exec.audit import REDACTED, Audit, audited_arguments, redact_argv
from trio_exec.config import Settings
from trio_exec.errors import Cancelled, Internal, InvalidParams, SpawnFailed, ToolError
from trio_exec.inflight import CLIENT_KEY, InFlight
from trio_exec.jobs import Jobs
from trio_exec.plan import ExecPlan, PlanDefaults, RunResult
from trio_exec.progress import reporting
from trio_exec.results import completed, failed, output_schema
from trio_exec.tools import Tool
from trio_exec.validation import is_sensitive


@attrs.frozen
class Service:
    """The tools a server publishes and what runs their calls (built by ``trio_exec.compose``)."""

    settings: Settings
    tools: Mapping[str, Tool]
    defaults: PlanDefaults
    guards: Guards
    audit: Audit
    jobs: Jobs
    inflight: InFlight = attrs.field(factory=InFlight)  # calls the HTTP transport may stop

    @property
    def background(self) -> bool:
        """Some tool may run as a job: the job tools are published."""
        return any(tool.background for tool in self.tools.values())


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


def _failed_execution(result: RunResult, timeout_chosen: bool) -> bool:
    """What counts for the circuit breaker: only failures the client did not choose (DESIGN §6).

    A timeout counts when it was the operator's limit (not a shorter one the client asked for); a
    death by a signal counts unless we sent it (timeout, output cap). Output floods never count:
    the client chose the command and its arguments, and the cap already stopped it.
    """
    if result.timed_out:
        return not timeout_chosen
    return result.signal is not None and not result.output_limited


async def _admitted_call(
    service: Service,
    ctx: ServerRequestContext[Any],
    tool: Tool,
    arguments: Mapping[str, Any],
    client: str,
    *,
    task_wait_s: float | None = None,
) -> types.CallToolResult | job_tools.Started:
    """Guards, validation, execution and one audit record, in DESIGN order.

    With ``task_wait_s`` (a call that is to be a task: ``trio_exec.tasks``) the call becomes a job whatever its
    arguments say, and its ``Started`` comes back after up to ``task_wait_s`` seconds (or the call's own longer
    ``wait_s``); a refusal is still a result.

    One function over 50 lines on purpose: the audit ``record`` and the breaker's ``verdict`` are filled in by
    every step, and its outer ``finally`` is what guarantees one record for every way a call can end.
    """
    name = tool.name
    pipeline = tool.pipeline
    keys = service.settings.policy.sensitive_keys
    record: dict[str, Any] = {
        "request_id": ctx.request_id,
        "transport": service.settings.transport,
        "client": client,
        "tool": name,
        "arguments": audited_arguments(arguments, keys),
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
            return failed(e, pipeline=pipeline)
        verdict: bool | None = None  # None: nothing for the breaker to count (rejected, cancelled)
        try:
            own, wait_s = (arguments, None)
            if tool.background:
                own, wait_s = job_tools.background_arguments(arguments, service.settings.runner.max_timeout_s)
            if task_wait_s is not None:
                wait_s = max(task_wait_s, wait_s or 0.0)  # the call's own wait_s may wait longer
            plan = tool.plan(own, service.defaults)
            record["argv"] = (
                redact_argv(plan.argv, arguments, keys)
                if not plan.more
                else [redact_argv(argv, arguments, keys) for argv in plan.stages]
            )
            if wait_s is not None:
                with admission.scope:  # Guards.shutdown ends the wait (the job ends with the server)
                    launched = await _start_job(
                        service, ctx, tool, plan, wait_s, client, given_timeout="timeout" in own
                    )
                if admission.scope.cancelled_caught:
                    raise Cancelled("server shutting down: the job was stopped; retry later")
                ended, job = launched.ended, launched.job
                verdict = None if ended is None else _failed_execution(ended, plan.timeout_chosen)
                record.update(
                    outcome="ok" if job.error is None else job.error.code, job=job.id, job_state=job.state.value
                )
                return launched if task_wait_s is not None else launched.answer
            watch = runner.OutputWatch()
            with admission.scope, service.inflight.track(http_scope(ctx), ctx.request_id) as abandoned:
                # admission.scope: cancelled by Guards.shutdown (the call still answers); abandoned: by the HTTP
                # transport when the client cancels the call or goes away (the answer is for the audit trail)
                async with reporting(ctx, watch):
                    result = await runner.run(plan, watch)
            if admission.scope.cancelled_caught:
                raise Cancelled("server shutting down: the command was stopped before it ended; retry later")
            if abandoned.cancelled_caught:
                raise Cancelled("the client cancelled this call or closed its connection: the command was stopped")
            verdict = _failed_execution(result, plan.timeout_chosen)
        except ToolError as e:
            verdict = True if isinstance(e, SpawnFailed) else None  # rejections, refusals: the client's doing
            record.update(outcome=e.code, message=e.message, argument=e.argument)
            logger.info("tool {} {}: {}", name, e.code, e.message)
            return failed(e, pipeline=pipeline)
        except Exception as e:  # any surprise becomes one answer, never a traceback with values
            internal = _internal(name, e, arguments, keys)
            record.update(outcome=internal.code, message=internal.message, argument=None)
            return failed(internal, pipeline=pipeline)
        finally:
            service.guards.finish(admission, failed=verdict)
        response = completed(result, plan.programs)
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


async def _start_job(
    service: Service,
    ctx: ServerRequestContext[Any],
    tool: Tool,
    plan: ExecPlan,
    wait_s: float,
    client: str,
    *,
    given_timeout: bool,
) -> job_tools.Started:
    """A background call: its plan as a job, limited by ``--job-max-runtime``, or less: the call's ``timeout``, or
    the tool's own ``timeout_s`` (the operator's limit for that tool holds for its jobs too)."""
    if not given_timeout:
        limit = service.settings.jobs.job_max_runtime_s
        if plan.tool_timeout_s is not None:
            limit = min(limit, plan.tool_timeout_s)
        plan = attrs.evolve(plan, timeout_s=limit, timeout_chosen=False)
    max_output = service.settings.runner.max_output_bytes
    return await job_tools.start(service.jobs, ctx, tool.name, plan, wait_s, client, max_output_bytes=max_output)


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


def published(tool: Tool, max_wait_s: float) -> types.Tool:
    """What ``tools/list`` says of a tool (``max_wait_s``: the longest ``wait_s`` of a background call)."""
    annotations = tool.annotations()
    schema = tool.input_schema()
    return types.Tool(
        name=tool.name,
        description=tool.description(),
        input_schema=job_tools.background_schema(schema, max_wait_s) if tool.background else schema,
        output_schema=output_schema(pipeline=tool.pipeline, background=tool.background),
        annotations=None if annotations is None else types.ToolAnnotations.model_validate(annotations),
        execution=types.ToolExecution(task_support="optional") if tool.background else None,
    )


class _Server(Server[Any]):
    """The SDK's low-level server, declaring ``capabilities.tasks`` (2025-11-25) when some tool runs as a task."""

    tasks: bool = False

    def get_capabilities(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        capabilities = super().get_capabilities(
            notification_options, experimental_capabilities, extensions, protocol_version=protocol_version
        )
        if self.tasks and protocol_version not in MODERN_PROTOCOL_VERSIONS:
            capabilities.tasks = tasks.capability()
        return capabilities


def build_server(service: Service) -> Server[Any]:
    """The low-level MCP server publishing ``service``'s tools."""
    max_wait_s = service.settings.runner.max_timeout_s
    listed = {name: published(tool, max_wait_s) for name, tool in service.tools.items()}
    if service.background:
        listed.update((t.name, t) for t in job_tools.published(service.settings.runner.max_output_bytes, max_wait_s))

    def unknown(name: str) -> MCPError:
        names = ", ".join(sorted(listed))
        return MCPError(code=InvalidParams.jsonrpc_code, message=f"unknown tool {name!r}; the tools are: {names}")

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=list(listed.values()))

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | dict[str, Any]:
        tool = service.tools.get(params.name)
        arguments = params.arguments or {}
        if tool is None and params.name in job_tools.NAMES and service.background:
            return await job_tools.call(service, ctx, params.name, arguments, client_key(ctx))
        if tool is None:
            raise unknown(params.name)
        as_task = tool.background and tasks.modern(ctx) and tasks.declared(ctx)  # 2026-07-28: the server decides
        wait_s = tasks.IMMEDIATE_S if as_task else None
        answer = await _admitted_call(service, ctx, tool, tool.as_texts(arguments), client_key(ctx), task_wait_s=wait_s)
        if not isinstance(answer, job_tools.Started):
            return answer
        if as_task and answer.ended is None:
            return methods.created(answer.job)
        return answer.answer

    async def call_as_task(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | job_tools.Started:
        tool = service.tools.get(params.name)
        if tool is None and params.name not in listed:
            raise unknown(params.name)
        if tool is None or not tool.background:
            raise MCPError(
                code=types.METHOD_NOT_FOUND,
                message=f"tool {params.name!r} does not run as a task (its execution.taskSupport is forbidden): "
                "call it without 'task'",
            )
        arguments = tool.as_texts(params.arguments or {})
        return await _admitted_call(service, ctx, tool, arguments, client_key(ctx), task_wait_s=0.0)

    methods = tasks.TaskMethods(service, call_as_task, client_key, http_scope)
    server = _Server(
        "trio-exec",
        version=__version__,
        instructions="Runs operator-approved commands. Each tool runs one fixed program; arguments are "
        "validated and passed as argv, never through a shell.",
        get_tool_input_schema=lambda name: t.input_schema if (t := listed.get(name)) else None,
        on_list_tools=list_tools,
    )
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)  # may answer a task (2026)
    if service.background:
        server.tasks = True
        methods.register(server)
    return server
