"""MCP tasks: the job table (``trio_exec.jobs``) as the protocol's own long-running calls.

Revision 2025-11-25 (tasks are experimental there; the TypeScript SDK 1.32 client speaks them): a tool the
operator marked ``background`` declares ``execution.taskSupport: "optional"`` and the server declares
``capabilities.tasks``. A ``tools/call`` with a ``task`` field starts the call as a job and answers a
``CreateTaskResult``; ``tasks/get`` says how it is, ``tasks/result`` waits for its end and answers what the call
would have, ``tasks/list`` lists the client's tasks, ``tasks/cancel`` stops one; ``notifications/tasks/status``
says when one ended. A task is a job: the same owner check, limits, time limit, output buffers and audit records
as the job tools, and a job started by ``background: true`` is a task too.

The SDK validates a ``tools/call`` answer as a ``CallToolResult`` whatever the call asked for, so ``route_task_calls``
(a ``Server.middleware`` entry) hands a ``tools/call`` carrying ``task`` to a method of its own, which the SDK
checks like any (initialized connection, params against ``CallToolRequestParams``) and does not reshape.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import mcp_types as types
import trio
from loguru import logger
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from trio_exec import job_tools
from trio_exec.errors import NotFound
from trio_exec.jobs import Job, State

if TYPE_CHECKING:
    from trio_exec.server import Service

RELATED_TASK = "io.modelcontextprotocol/related-task"
POLL_INTERVAL_MS = 1000
LIST_PAGE = 100  # tasks per tasks/list page
CALL_AS_TASK = "trio-exec/tools/call-as-task"  # where route_task_calls sends a task-augmented tools/call
_ROUTED: contextvars.ContextVar[bool] = contextvars.ContextVar("trio_exec_routed_task_call", default=False)

# Starts a call as a job (guards, validation, audit: server._admitted_call), or says why it did not.
StartCall = Callable[
    [ServerRequestContext[Any], types.CallToolRequestParams], Awaitable["types.CallToolResult | job_tools.Started"]
]

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


def capability() -> types.ServerTasksCapability:
    """``capabilities.tasks`` of a server whose background tools may run as tasks (2025-11-25)."""
    return types.ServerTasksCapability(
        list=types.TasksListCapability(),
        cancel=types.TasksCancelCapability(),
        requests=types.ServerTasksRequestsCapability(
            tools=types.TasksToolsCapability(call=types.TasksCallCapability())
        ),
    )


def modern(ctx: ServerRequestContext[Any]) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def status_message(job: Job) -> str:
    """One line on how ``job`` is doing, for ``statusMessage``."""
    if job.state is State.WORKING:
        line = job.watch.last_line
        return f"running {job.tool}" + (f"; last line: {line}" if line else "")
    if job.error is not None:
        return f"{job.error.code}: {job.error.message}"
    if job.state is State.CANCELLED:
        return "cancelled: the command was stopped before it ended"
    result = job.result
    if result is not None and result.exit_code is not None:
        return f"the command exited with code {result.exit_code}"
    return f"the command was killed by signal {result.signal if result else None}"


def task_fields(job: Job, ttl_ms: int) -> dict[str, Any]:
    """``job`` as a 2025-11-25 ``Task`` (checked by the SDK's model)."""
    status = {
        State.WORKING: "working",
        State.COMPLETED: "completed",
        State.FAILED: "failed",  # a tool error (isError: true) is "failed" in this revision
        State.CANCELLED: "cancelled",
    }[job.state]
    task = types.Task(
        task_id=job.id,
        status=cast(types.TaskStatus, status),
        status_message=status_message(job),
        created_at=_iso(job.started_at),
        last_updated_at=_iso(job.updated_at),
        ttl=ttl_ms,
        poll_interval=POLL_INTERVAL_MS,
    )
    return task.model_dump(by_alias=True, mode="json", exclude_none=True)


def _iso(moment: Any) -> str:
    return str(moment.isoformat(timespec="milliseconds")).replace("+00:00", "Z")


def not_found(error: NotFound) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=error.message)


def refused(answer: types.CallToolResult) -> MCPError:
    """A task-augmented call that did not start: its error, as the JSON-RPC error a task request expects."""
    error = (answer.structured_content or {}).get("error") or {"code": "internal", "message": "the call failed"}
    code = INVALID_PARAMS if error["code"] in ("invalid_arguments", "rejected") else INTERNAL_ERROR
    return MCPError(code=code, message=f"{error['code']}: {error['message']}", data={"error": error})


async def route_task_calls(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
    """``Server.middleware``: a 2025-era ``tools/call`` with a ``task`` field goes to ``CALL_AS_TASK``."""
    if ctx.method == "tools/call" and isinstance(ctx.params, dict) and "task" in ctx.params and not modern(ctx):
        token = _ROUTED.set(True)
        try:
            return await call_next(dataclasses.replace(ctx, method=CALL_AS_TASK))
        finally:
            _ROUTED.reset(token)
    return await call_next(ctx)


class TaskMethods:
    """The ``tasks/*`` methods of one server, over its job table."""

    def __init__(
        self,
        service: Service,
        start_call: StartCall,
        client_of: Callable[[ServerRequestContext[Any]], str],
        http_scope_of: Callable[[ServerRequestContext[Any]], Any],
    ) -> None:
        self.service = service
        self.jobs = service.jobs
        self.start_call = start_call
        self.client_of = client_of
        self.http_scope_of = http_scope_of
        self.ttl_ms = int(service.settings.jobs.job_ttl_s * 1000)  # kept at least this long from its start

    def register(self, server: Server[Any]) -> None:
        server.add_request_handler(CALL_AS_TASK, types.CallToolRequestParams, self.call_as_task)
        server.add_request_handler("tasks/get", types.GetTaskRequestParams, self.get)
        server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams, self.result)
        server.add_request_handler("tasks/list", types.PaginatedRequestParams, self.list)
        server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams, self.cancel)
        server.middleware.append(route_task_calls)

    def _job(self, ctx: ServerRequestContext[Any], task_id: str) -> Job:
        try:
            return self.jobs.get(task_id, self.client_of(ctx))
        except NotFound as e:
            raise not_found(e) from None

    async def call_as_task(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> HandlerResult:
        if not _ROUTED.get():
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data=CALL_AS_TASK)
        started = await self.start_call(ctx, params)
        if isinstance(started, types.CallToolResult):
            raise refused(started)
        job = started.job
        self.jobs.when_ended(job, lambda: self._notify_status(ctx, job))
        return types.CreateTaskResult(task=types.Task.model_validate(task_fields(job, self.ttl_ms)))

    async def _notify_status(self, ctx: ServerRequestContext[Any], job: Job) -> None:
        """``notifications/tasks/status`` at the end (optional in the spec: sent where the session still listens)."""
        params = types.TaskStatusNotificationParams.model_validate(task_fields(job, self.ttl_ms))
        notification = types.TaskStatusNotification(params=params)
        with trio.move_on_after(5):
            try:
                await ctx.session.send_notification(cast(types.ServerNotification, notification))
            except Exception as e:  # the client went away: it polls tasks/get, as the spec says it should
                logger.debug("task {}: status notification not sent ({})", job.id, type(e).__name__)

    async def get(self, ctx: ServerRequestContext[Any], params: types.GetTaskRequestParams) -> HandlerResult:
        job = self._job(ctx, params.task_id)
        return types.GetTaskResult.model_validate(task_fields(job, self.ttl_ms))

    async def result(self, ctx: ServerRequestContext[Any], params: types.GetTaskPayloadRequestParams) -> HandlerResult:
        job = self._job(ctx, params.task_id)
        with self.service.inflight.track(self.http_scope_of(ctx), ctx.request_id):  # the client may stop waiting
            await job.done.wait()
        answer = job_tools.final_answer(job, self.service.settings.runner.max_output_bytes)
        self.jobs.read(job, "result", offset=0, size=sum(len(c.text) for c in answer.content if c.type == "text"))
        dumped = answer.model_dump(by_alias=True, mode="json", exclude_none=True)
        dumped["_meta"] = {**dumped.get("_meta", {}), RELATED_TASK: {"taskId": job.id}}
        return dumped

    async def list(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams) -> HandlerResult:
        mine = self.jobs.mine(self.client_of(ctx))
        start = 0
        if params.cursor is not None:
            if not params.cursor.isdigit() or int(params.cursor) > len(mine):
                raise MCPError(code=INVALID_PARAMS, message=f"invalid cursor {params.cursor[:40]!r}: use a nextCursor")
            start = int(params.cursor)
        page = mine[start : start + LIST_PAGE]
        more = start + LIST_PAGE < len(mine)
        return types.ListTasksResult(
            tasks=[types.Task.model_validate(task_fields(job, self.ttl_ms)) for job in page],
            next_cursor=str(start + LIST_PAGE) if more else None,
        )

    async def cancel(self, ctx: ServerRequestContext[Any], params: types.CancelTaskRequestParams) -> HandlerResult:
        job = self._job(ctx, params.task_id)
        if job.state is not State.WORKING:
            raise MCPError(
                code=INVALID_PARAMS, message=f"task {job.id} already ended ({job.state.value}): nothing to cancel"
            )
        await self.jobs.cancel(job)
        return types.CancelTaskResult.model_validate(task_fields(job, self.ttl_ms))
