"""MCP tasks: the job table (``trio_exec.jobs``) as the protocol's own long-running calls.

Revision 2025-11-25 (tasks are experimental there; the TypeScript SDK 1.32 client speaks them): a tool the
operator marked ``background`` declares ``execution.taskSupport: "optional"`` and the server declares
``capabilities.tasks``. A ``tools/call`` with a ``task`` field starts the call as a job and answers a
``CreateTaskResult``; ``tasks/get`` says how it is, ``tasks/result`` waits for its end and answers what the call
would have, ``tasks/list`` lists the client's tasks, ``tasks/cancel`` stops one; ``notifications/tasks/status``
says when one ended. A task is a job: the same owner check, limits, time limit, output buffers and audit records
as the job tools, and a job started by ``background: true`` is a task too.

Revision 2026-07-28 (the ``io.modelcontextprotocol/tasks`` extension, SEP-2663): the server lists the extension
under ``capabilities.extensions`` and a client declares it per request (``_meta`` client capabilities). The server
decides: a background tool's call from a declaring client that has not ended within ``IMMEDIATE_S`` answers a flat
task (``resultType: "task"``, ``ttlMs``, ``pollIntervalMs``); ``tasks/get`` inlines the result (or the error) once
it ended, ``tasks/update`` and ``tasks/cancel`` answer an empty result, ``tasks/result`` and ``tasks/list`` no longer
exist. A tool error is ``completed`` with ``isError: true``; only the server's own failure is ``failed``. A
``task`` field in the call is ignored, and a client that did not declare the extension gets no task.

The SDK validates a ``tools/call`` answer as a ``CallToolResult`` whatever the call asked for, so ``route_task_calls``
(a ``Server.middleware`` entry) hands a ``tools/call`` carrying ``task`` to a method of its own, which the SDK
checks like any (initialized connection, params against ``CallToolRequestParams``) and does not reshape.
"""

from __future__ import annotations

import contextvars
import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import mcp_types as types
import trio
from loguru import logger
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import decode_header_value
from mcp_types import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from trio_exec import job_tools
from trio_exec.errors import NotFound
from trio_exec.jobs import Job, State
from trio_exec.progress import reporting

if TYPE_CHECKING:
    from trio_exec.server import Service

EXTENSION = "io.modelcontextprotocol/tasks"
RELATED_TASK = "io.modelcontextprotocol/related-task"
IMMEDIATE_S = 0.5  # 2026-07-28: a call that ends within this answers at once, without a task
POLL_INTERVAL_MS = 1000
LIST_PAGE = 100  # tasks per tasks/list page
CALL_AS_TASK = "trio-exec/tools/call-as-task"  # where route_task_calls sends a task-augmented tools/call
_ROUTED: contextvars.ContextVar[bool] = contextvars.ContextVar("trio_exec_routed_task_call", default=False)

# Starts a call as a job (guards, validation, audit: server._admitted_call), or says why it did not.
StartCall = Callable[
    [ServerRequestContext[Any], types.CallToolRequestParams], Awaitable["types.CallToolResult | job_tools.Started"]
]

_LEGACY_STATUS: dict[State, types.TaskStatus] = {
    State.WORKING: "working",
    State.COMPLETED: "completed",
    State.FAILED: "failed",  # a tool error (isError: true) is "failed" in this revision
    State.CANCELLED: "cancelled",
}


class UpdateTaskParams(types.RequestParams):
    """``tasks/update`` (2026-07-28): answers to a task's input requests (this server never asks any)."""

    task_id: str
    input_responses: dict[str, Any] | None = None


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


def declared(ctx: ServerRequestContext[Any]) -> bool:
    """This request's client declared the tasks extension (2026-07-28: per request, in ``_meta``)."""
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.extensions and EXTENSION in capabilities.extensions)


def missing_extension(what: str) -> MCPError:
    data = types.MissingRequiredClientCapabilityErrorData(
        required_capabilities=types.ClientCapabilities(extensions={EXTENSION: {}})
    )
    return MCPError(
        code=MISSING_REQUIRED_CLIENT_CAPABILITY,
        message=f"{what} needs the {EXTENSION} extension: declare it in this request's client capabilities",
        data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
    )


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
    if result is None or result.exit_code is not None:
        return f"the command exited with code {result.exit_code if result else None}"
    return f"the command was killed by signal {result.signal}"


def task_fields(job: Job, ttl_ms: int) -> dict[str, Any]:
    """``job`` as a 2025-11-25 ``Task`` (checked by the SDK's model)."""
    task = types.Task(
        task_id=job.id,
        status=_LEGACY_STATUS[job.state],
        status_message=status_message(job),
        created_at=_iso(job.started_at),
        last_updated_at=_iso(job.updated_at),
        ttl=ttl_ms,
        poll_interval=POLL_INTERVAL_MS,
    )
    return task.model_dump(by_alias=True, mode="json", exclude_none=True)


def _modern_status(job: Job) -> str:
    if job.state is State.FAILED and job.error is not None and job.error.code == "internal":
        return "failed"  # the server's own failure; a tool error (a timeout) is a completed task with isError
    return {State.WORKING: "working", State.CANCELLED: "cancelled"}.get(job.state, "completed")


def modern_task(job: Job, ttl_ms: int, max_output_bytes: int) -> dict[str, Any]:
    """``job`` as a 2026-07-28 task: its result inlined once it completed, its error once it failed."""
    status = _modern_status(job)
    task: dict[str, Any] = {
        "taskId": job.id,
        "status": status,
        "statusMessage": status_message(job),
        "createdAt": _iso(job.started_at),
        "lastUpdatedAt": _iso(job.updated_at),
        "ttlMs": ttl_ms,
        "pollIntervalMs": POLL_INTERVAL_MS,
    }
    if status == "completed":
        answer = job_tools.final_answer(job, max_output_bytes)
        task["result"] = {"resultType": "complete", **answer.model_dump(by_alias=True, mode="json", exclude_none=True)}
    elif status == "failed" and job.error is not None:
        task["error"] = {"code": INTERNAL_ERROR, "message": job.error.message}
    return task


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def not_found(error: NotFound) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=error.message)


def refused(answer: types.CallToolResult) -> MCPError:
    """A task-augmented call that did not start: its error, as the JSON-RPC error a task request expects."""
    error = (answer.structured_content or {}).get("error") or {"code": "internal", "message": "the call failed"}
    code = INVALID_PARAMS if error["code"] in ("invalid_arguments", "rejected") else INTERNAL_ERROR
    return MCPError(code=code, message=f"{error['code']}: {error['message']}", data={"error": error})


async def route_task_calls(ctx: ServerRequestContext[Any], call_next: CallNext) -> HandlerResult:
    """``Server.middleware``: a 2025-era ``tools/call`` with a ``task`` field goes to ``CALL_AS_TASK``."""
    if ctx.method == "tools/call" and isinstance(ctx.params, Mapping) and "task" in ctx.params and not modern(ctx):
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
        server.add_request_handler("tasks/update", UpdateTaskParams, self.update)
        server.middleware.append(route_task_calls)
        server.extensions[EXTENSION] = {}

    def _job(self, ctx: ServerRequestContext[Any], task_id: str) -> Job:
        try:
            return self.jobs.get(task_id, self.client_of(ctx))
        except NotFound as e:
            raise not_found(e) from None

    def created(self, job: Job) -> dict[str, Any]:
        """The 2026-07-28 answer to a call that became a task (the job is in the table before it is sent)."""
        task = modern_task(job, self.ttl_ms, self.service.settings.runner.max_output_bytes)
        return {"resultType": "task", **{k: v for k, v in task.items() if k not in ("result", "error")}}

    def _modern_job(self, ctx: ServerRequestContext[Any], method: str, task_id: str) -> Job:
        """The checks of a 2026-07-28 ``tasks/*`` request, in the extension's order: headers, extension, id."""
        scope = self.http_scope_of(ctx)
        if isinstance(scope, Mapping):
            named = dict(scope.get("headers") or ()).get(b"mcp-name")
            if decode_header_value(None if named is None else named.decode("latin-1")) != task_id:  # as the SDK's
                raise MCPError(
                    code=HEADER_MISMATCH, message="mcp-name header does not match the request body's 'taskId' parameter"
                )
        if not declared(ctx):
            raise missing_extension(method)
        return self._job(ctx, task_id)

    async def call_as_task(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> HandlerResult:
        if not _ROUTED.get():
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data=CALL_AS_TASK)
        started = await self.start_call(ctx, params)
        if isinstance(started, types.CallToolResult):
            raise refused(started)
        job = started.job
        self.jobs.beside(job, lambda: self._notify_status(ctx, job))
        return types.CreateTaskResult(task=types.Task.model_validate(task_fields(job, self.ttl_ms)))

    async def _notify_status(self, ctx: ServerRequestContext[Any], job: Job) -> None:
        """While it runs: progress, if the call asked (its progressToken holds for the task's life); at its end:
        ``notifications/tasks/status``. Both are optional in the spec: sent where the client still listens."""
        try:
            async with reporting(ctx, job.watch, answered=True):
                await job.done.wait()
            params = types.TaskStatusNotificationParams.model_validate(task_fields(job, self.ttl_ms))
            notification = types.TaskStatusNotification(params=params)
            with trio.move_on_after(5):
                await ctx.session.send_notification(cast(types.ServerNotification, notification))
        except Exception as e:  # the client went away: it polls tasks/get, as the spec says it should
            logger.debug("task {}: a notification was not sent ({})", job.id, type(e).__name__)

    async def get(self, ctx: ServerRequestContext[Any], params: types.GetTaskRequestParams) -> HandlerResult:
        if modern(ctx):
            job = self._modern_job(ctx, "tasks/get", params.task_id)
            task = modern_task(job, self.ttl_ms, self.service.settings.runner.max_output_bytes)
            return {"resultType": "complete", **task}
        job = self._job(ctx, params.task_id)
        return types.GetTaskResult.model_validate(task_fields(job, self.ttl_ms))

    async def update(self, ctx: ServerRequestContext[Any], params: UpdateTaskParams) -> HandlerResult:
        if not modern(ctx):
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data="tasks/update")
        self._modern_job(ctx, "tasks/update", params.task_id)
        return {}  # this server never asks for input: an answer changes nothing

    async def result(self, ctx: ServerRequestContext[Any], params: types.GetTaskPayloadRequestParams) -> HandlerResult:
        if modern(ctx):  # tasks/get inlines the result at 2026-07-28
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data="tasks/result")
        job = self._job(ctx, params.task_id)
        with self.service.inflight.track(self.http_scope_of(ctx), ctx.request_id):  # the client may stop waiting
            await job.done.wait()
        answer = job_tools.final_answer(job, self.service.settings.runner.max_output_bytes)
        self.jobs.read(job, "result", offset=0, size=sum(len(c.text) for c in answer.content if c.type == "text"))
        dumped = answer.model_dump(by_alias=True, mode="json", exclude_none=True)
        dumped["_meta"] = {**dumped.get("_meta", {}), RELATED_TASK: {"taskId": job.id}}
        return dumped

    async def list(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams) -> HandlerResult:
        if modern(ctx):
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data="tasks/list")
        mine = self.jobs.mine(self.client_of(ctx))
        start = 0
        if params.cursor is not None:
            if not re.fullmatch(r"[0-9]{1,9}", params.cursor) or int(params.cursor) > len(mine):
                raise MCPError(code=INVALID_PARAMS, message=f"invalid cursor {params.cursor[:40]!r}: use a nextCursor")
            start = int(params.cursor)
        page = mine[start : start + LIST_PAGE]
        more = start + LIST_PAGE < len(mine)
        return types.ListTasksResult(
            tasks=[types.Task.model_validate(task_fields(job, self.ttl_ms)) for job in page],
            next_cursor=str(start + LIST_PAGE) if more else None,
        )

    async def cancel(self, ctx: ServerRequestContext[Any], params: types.CancelTaskRequestParams) -> HandlerResult:
        if modern(ctx):  # an acknowledgement, for a running task and an ended one alike
            job = self._modern_job(ctx, "tasks/cancel", params.task_id)
            await self.jobs.cancel(job)
            return {}
        job = self._job(ctx, params.task_id)
        if job.state is not State.WORKING:
            raise MCPError(
                code=INVALID_PARAMS, message=f"task {job.id} already ended ({job.state.value}): nothing to cancel"
            )
        await self.jobs.cancel(job)
        return types.CancelTaskResult.model_validate(task_fields(job, self.ttl_ms))
