"""The jobs face every client can use: background calls, and the tools ``job_output``, ``job_cancel``, ``job_list``.

A tool the operator marked ``background`` takes two reserved arguments: ``background: true`` starts the call as a
job (``trio_exec.jobs``) and answers once it started, with its id and what it printed so far; ``wait_s: N`` waits
up to N seconds first, and a job that ends by then answers like a plain call (and stays readable). Past
``--max-output-bytes`` a job keeps running: its answer says where to page on. The three job tools are published
when any tool is ``background``; each answers with a result (never a protocol error), and a client only ever
reaches its own jobs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import mcp_types as types
import trio
from mcp.server.context import ServerRequestContext

from trio_exec.errors import Internal, InvalidArguments, ToolError
from trio_exec.joboutput import Page
from trio_exec.jobs import STREAMS, Job, Jobs, State
from trio_exec.plan import ExecPlan, RunResult
from trio_exec.progress import reporting
from trio_exec.results import ERROR_SCHEMA, JOB_SCHEMA, call_result, error_dict, job_line
from trio_exec.tools.arguments import check_finite, check_schema

if TYPE_CHECKING:
    import jsonschema

    from trio_exec.server import Service

OUTPUT, CANCEL, LIST = "job_output", "job_cancel", "job_list"
NAMES = (OUTPUT, CANCEL, LIST)
PAGE_BYTES = 64 * 1024  # job_output's page unless it asks for another size
MAX_TAIL_LINES = 100_000


def background_schema(schema: Mapping[str, Any], max_wait_s: float) -> dict[str, Any]:
    """A background tool's ``inputSchema``: its own, plus ``background`` and ``wait_s``."""
    return {
        **schema,
        "properties": {
            **schema.get("properties", {}),
            "background": {
                "type": "boolean",
                "description": "Run as a background job: answer at once with its id and its output so far, and "
                "read the rest with job_output (for builds, test suites, servers: anything that runs long).",
            },
            "wait_s": {
                "type": "number",
                "minimum": 0,
                "maximum": max_wait_s,
                "description": "Run as a job and wait up to this many seconds: a command that ends by then "
                "answers in full; one still running answers with its job id and output so far.",
            },
        },
    }


def background_arguments(arguments: Mapping[str, Any], max_wait_s: float) -> tuple[Mapping[str, Any], float | None]:
    """The tool's own arguments, and how long to wait for the job (None: not a job); ``InvalidArguments``."""
    if "background" not in arguments and "wait_s" not in arguments:
        return arguments, None
    rest = {k: v for k, v in arguments.items() if k not in ("background", "wait_s")}
    background, wait_s = arguments.get("background"), arguments.get("wait_s", 0)
    if background is not None and not isinstance(background, bool):
        raise InvalidArguments("argument 'background' must be true or false", argument="background")
    if isinstance(wait_s, bool) or not isinstance(wait_s, (int, float)) or not 0 <= wait_s <= max_wait_s:
        raise InvalidArguments(f"argument 'wait_s' must be a number from 0 to {max_wait_s:g}", argument="wait_s")
    if background is False:
        if "wait_s" in arguments:
            raise InvalidArguments(
                "argument 'wait_s' runs the call as a job, and 'background' is false; drop one of them",
                argument="wait_s",
            )
        return rest, None
    return rest, float(wait_s)


def job_dict(job: Job, now: float) -> dict[str, Any]:
    """A job as ``JOB_SCHEMA`` says."""
    result = job.result
    return {
        "id": job.id,
        "tool": job.tool,
        "state": job.state.value,
        "exit_code": None if result is None else result.exit_code,
        "signal": None if result is None else result.signal,
        "started_at": job.started_at.isoformat(timespec="milliseconds"),
        "duration_ms": round(job.duration_s(now) * 1000, 3),
        "stdout_bytes": job.stdout.total,
        "stderr_bytes": job.stderr.total,
        "stdout_dropped": job.stdout.dropped,
        "stderr_dropped": job.stderr.dropped,
        "error": None if job.error is None else error_dict(job.error),
    }


@attrs.frozen
class Started:
    """A background call's job, the call's answer, and the job's result if it ended while the call waited."""

    job: Job
    answer: types.CallToolResult
    ended: RunResult | None


async def start(
    jobs: Jobs,
    ctx: ServerRequestContext[Any],
    tool: str,
    plan: ExecPlan,
    wait_s: float,
    client: str,
    *,
    max_output_bytes: int,
) -> Started:
    """Start ``plan`` as a job and wait up to ``wait_s`` for its end.

    A job that could not start raises its ``SpawnFailed`` (and is forgotten): the call failed as any call would.
    """
    job = jobs.start(tool, plan, client, programs=plan.programs)
    await job.wait_started()
    if job.state is State.FAILED and not job.spawned and job.error is not None:
        jobs.forget(job, "did not start")
        raise job.error
    if wait_s > 0:
        with trio.move_on_after(wait_s):
            async with reporting(ctx, job.watch):
                await job.done.wait()
    out, err = (_page_on(job, name, job.cursors[name], max_output_bytes) for name in STREAMS)
    return Started(job, _call_answer(job, out, err), job.result if job.state is not State.WORKING else None)


def final_answer(job: Job, max_output_bytes: int) -> types.CallToolResult:
    """What the call that started ``job`` would have answered had it waited for the end (``tasks/result``).

    Its output from the start (up to ``max_output_bytes`` of each stream; its ``job`` says where to page on),
    whatever ``job_output`` read before; the same answer each time.
    """
    out, err = (job.stream(name).read(0, max_output_bytes) for name in STREAMS)
    return _call_answer(job, out, err)


def _call_answer(job: Job, out: Page, err: Page) -> types.CallToolResult:
    now = trio.current_time()
    result = job.result
    shown = RunResult(
        exit_code=None if result is None else result.exit_code,
        signal=None if result is None else result.signal,
        stdout=out.data,
        stderr=err.data,
        stdout_truncated=out.next_offset < out.total,
        stderr_truncated=err.next_offset < err.total,
        timed_out=result is not None and result.timed_out,
        duration_s=job.duration_s(now),
        stages=result.stages if result is not None else ((None, None),) * len(job.programs or ()),
    )
    return call_result(shown, error=job.error, programs=job.programs, job=job_dict(job, now))


def _page_on(job: Job, stream: str, offset: int, max_bytes: int) -> Page:
    page = job.stream(stream).read(offset, max_bytes)
    return _seen(job, stream, page)


def _seen(job: Job, stream: str, page: Page) -> Page:
    job.cursors[stream] = page.next_offset
    return page


_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "description": "The job's id (from the call that started it).",
}
_NULLABLE_JOB = {**JOB_SCHEMA, "type": ["object", "null"]}
INPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    OUTPUT: {
        "type": "object",
        "properties": {
            "id": _ID,
            "stream": {"enum": list(STREAMS), "description": "Which output to read (default stdout)."},
            "offset": {
                "type": "integer",
                "minimum": 0,
                "description": "Absolute byte offset to read from; default: where your last read of this stream "
                "ended (each answer's next_offset).",
            },
            "tail_lines": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_TAIL_LINES,
                "description": "Instead of paging: the last N lines printed so far.",
            },
            "max_bytes": {"type": "integer", "minimum": 1, "description": f"Page size (default {PAGE_BYTES})."},
            "wait_s": {
                "type": "number",
                "minimum": 0,
                "description": "Wait up to this many seconds for new output (until: output) or for the job's "
                "end (until: end) before answering; default 0.",
            },
            "until": {"enum": ["output", "end"], "description": "What wait_s waits for (default output)."},
        },
        "required": ["id"],
        "additionalProperties": False,
    },
    CANCEL: {"type": "object", "properties": {"id": _ID}, "required": ["id"], "additionalProperties": False},
    LIST: {"type": "object", "properties": {}, "additionalProperties": False},
}
OUTPUT_SCHEMAS: dict[str, dict[str, Any]] = {
    OUTPUT: {
        "type": "object",
        "properties": {
            "job": _NULLABLE_JOB,
            "stream": {"enum": [*STREAMS, None]},
            "output": {"type": "string"},
            "offset": {"type": "integer"},
            "next_offset": {"type": "integer"},
            "skipped_bytes": {"type": "integer"},
            "more": {"type": "boolean"},
            "waited": {"enum": ["output", "end", "timeout", None]},
            "error": ERROR_SCHEMA,
        },
        "required": ["job", "stream", "output", "offset", "next_offset", "skipped_bytes", "more", "waited", "error"],
        "additionalProperties": False,
    },
    CANCEL: {
        "type": "object",
        "properties": {"job": _NULLABLE_JOB, "was": {"enum": [s.value for s in State] + [None]}, "error": ERROR_SCHEMA},
        "required": ["job", "was", "error"],
        "additionalProperties": False,
    },
    LIST: {
        "type": "object",
        "properties": {"jobs": {"type": "array", "items": JOB_SCHEMA}, "error": ERROR_SCHEMA},
        "required": ["jobs", "error"],
        "additionalProperties": False,
    },
}
_DESCRIPTIONS = {
    OUTPUT: "Read a background job's output, a page at a time (offset, next_offset) or its last lines "
    "(tail_lines); wait_s waits for new output or the end. Says the job's state and exit code.",
    CANCEL: "Stop a background job (its whole process group) and say how it ended.",
    LIST: "Your background jobs: running, and ended ones still kept (--job-ttl).",
}
_ANNOTATIONS = {
    OUTPUT: types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
    CANCEL: types.ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
    ),
    LIST: types.ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
}


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    """A job tool's schema validator, built at its first call (jsonschema costs ~20 ms of start-up)."""
    import jsonschema

    return jsonschema.Draft202012Validator(INPUT_SCHEMAS[name])


def published(max_output_bytes: int, max_wait_s: float) -> list[types.Tool]:
    """The three job tools as ``tools/list`` shows them."""
    schemas = {name: dict(schema) for name, schema in INPUT_SCHEMAS.items()}
    output = schemas[OUTPUT]["properties"] = dict(INPUT_SCHEMAS[OUTPUT]["properties"])
    output["max_bytes"] = {**output["max_bytes"], "maximum": max_output_bytes}
    output["wait_s"] = {**output["wait_s"], "maximum": max_wait_s}
    return [
        types.Tool(
            name=name,
            description=_DESCRIPTIONS[name],
            input_schema=schemas[name],
            output_schema=OUTPUT_SCHEMAS[name],
            annotations=_ANNOTATIONS[name],
        )
        for name in NAMES
    ]


async def call(
    service: Service, ctx: ServerRequestContext[Any], name: str, arguments: Mapping[str, Any], client: str
) -> types.CallToolResult:
    """One call of a job tool (rate-limited like any call, refused while the audit trail is down)."""
    try:
        if not service.audit.accepting():
            raise Internal("the audit log cannot be written and this server runs no call unaudited; retry later")
        service.guards.check_rate(client, trio.current_time())
        check_finite(arguments)
        check_schema(name, _validator(name), arguments)
        if name == OUTPUT:
            return await _output(service, ctx, arguments, client)
        if name == CANCEL:
            return await _cancel(service.jobs, arguments, client)
        return _list(service.jobs, client)
    except ToolError as e:
        return _failed(name, e)


async def _output(
    service: Service, ctx: ServerRequestContext[Any], arguments: Mapping[str, Any], client: str
) -> types.CallToolResult:
    runner_settings = service.settings.runner
    job = service.jobs.get(arguments["id"], client)
    stream = arguments.get("stream", "stdout")
    buffer = job.stream(stream)
    max_bytes = arguments.get("max_bytes", PAGE_BYTES)
    wait_s = arguments.get("wait_s", 0)
    for argument, value, most in (
        ("max_bytes", max_bytes, runner_settings.max_output_bytes),
        ("wait_s", wait_s, runner_settings.max_timeout_s),
    ):
        if value > most:
            bound = f"{most:g}" if isinstance(most, float) else str(most)
            raise InvalidArguments(f"argument {argument!r} must be at most {bound}", argument=argument)
    tail = arguments.get("tail_lines")
    offset = arguments.get("offset", job.cursors[stream])
    waited: str | None = None
    if wait_s > 0:
        waited = "timeout"
        seen = offset if tail is None else buffer.total
        with trio.move_on_after(wait_s):
            async with reporting(ctx, job.watch):
                if arguments.get("until") == "end":
                    await job.done.wait()
                while job.state is State.WORKING and buffer.total <= seen:
                    await job.changed()
                waited = "output" if buffer.total > seen and arguments.get("until") != "end" else "end"
    page = buffer.tail_lines(tail, max_bytes) if tail is not None else buffer.read(offset, max_bytes)
    _seen(job, stream, page)
    service.jobs.read(job, stream, offset=page.offset, size=len(page.data))
    content = {
        "job": job_dict(job, trio.current_time()),
        "stream": stream,
        "output": page.data.decode("utf-8", errors="replace"),
        "offset": page.offset,
        "next_offset": page.next_offset,
        "skipped_bytes": page.skipped,
        "more": page.next_offset < page.total,
        "waited": waited,
        "error": None,
    }
    return _answer(content, _output_text(content, page))


def _output_text(c: Mapping[str, Any], page: Page) -> str:
    job = c["job"]
    lines = [job_line(job)]
    if job["exit_code"] is not None:
        lines.append(f"exit code: {job['exit_code']}")
    elif job["signal"] is not None:
        lines.append(f"killed by signal {job['signal']}")
    if job["error"] is not None:
        lines.append(f"error ({job['error']['code']}): {job['error']['message']}")
    where = f"{c['stream']} bytes {page.offset}..{page.next_offset} of {page.total}"
    if page.skipped:
        where += f" ({page.skipped} bytes before these were dropped: --job-output-bytes keeps the head and the tail)"
    if c["more"]:
        where += f"; more from offset {page.next_offset}"
    lines += [where, f"--- {c['stream']} ---", c["output"]]
    return "\n".join(lines)


async def _cancel(jobs: Jobs, arguments: Mapping[str, Any], client: str) -> types.CallToolResult:
    job = jobs.get(arguments["id"], client)
    was = await jobs.cancel(job)
    content = {"job": job_dict(job, trio.current_time()), "was": was.value, "error": None}
    if was is State.WORKING:
        text = f"job {job.id} ({job.tool}) was stopped: {job.state.value}"
    else:
        text = f"job {job.id} ({job.tool}) had already ended: {job.state.value}; nothing was stopped"
    return _answer(content, text)


def _list(jobs: Jobs, client: str) -> types.CallToolResult:
    now = trio.current_time()
    listed = [job_dict(job, now) for job in jobs.mine(client)]
    text = "\n".join(job_line(job) for job in listed) if listed else "no jobs"
    return _answer({"jobs": listed, "error": None}, text)


def _answer(content: dict[str, Any], text: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=content, is_error=False
    )


def _failed(name: str, error: ToolError) -> types.CallToolResult:
    empty: dict[str, dict[str, Any]] = {
        OUTPUT: {"job": None, "stream": None, "output": "", "offset": 0, "next_offset": 0, "skipped_bytes": 0,
                 "more": False, "waited": None},
        CANCEL: {"job": None, "was": None},
        LIST: {"jobs": []},
    }  # fmt: skip
    content = {**empty[name], "error": error_dict(error)}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=f"error ({error.code}): {error.message}")],
        structured_content=content,
        is_error=True,
    )
