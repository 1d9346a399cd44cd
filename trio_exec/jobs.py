"""The job table: commands that run on after the call that started them, owned by the app nursery.

A job is a plan started by a call that asked to run in the background (the reserved arguments ``background``
and ``wait_s`` of a tool the operator marked ``background``). It runs in this table's nursery, which the app
nursery owns: shutting the server down cancels every job, and the runner kills its process group and sandbox
as for any call. Its output goes into one ``joboutput.StreamBuffer`` per stream, so printing never stops a
job; ``--job-max-runtime`` does (or the shorter ``timeout`` its call gave), and so does ``job_cancel``.

Invariants:
- a job is seen, read and stopped only by its owner, the client key of the call that started it;
- at most ``--max-jobs`` jobs are kept (``--max-jobs-per-client`` of one client), running or ended: a new job
  makes room by forgetting the oldest ended one, and is refused (``busy``) when every kept job runs;
- an ended job is forgotten ``--job-ttl`` seconds after its end (the expiry task);
- every start, end, read, cancel and expiry is one audit record.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import attrs
import trio
from loguru import logger

from trio_exec import runner
from trio_exec.config import JobSettings
from trio_exec.errors import Busy, Internal, NotFound, TimedOut, ToolError
from trio_exec.joboutput import StreamBuffer
from trio_exec.plan import ExecPlan, RunResult

if TYPE_CHECKING:
    from trio_exec.audit import Audit

STREAMS = ("stdout", "stderr")


class State(enum.Enum):
    WORKING = "working"
    COMPLETED = "completed"  # the command ended by itself, whatever its exit status
    FAILED = "failed"  # it could not start, or ran past its time limit and was stopped
    CANCELLED = "cancelled"  # job_cancel, or the server shutting down


@attrs.define(eq=False)
class Job:
    """One job: who owns it, what it printed, and how it ended."""

    id: str
    owner: str
    tool: str
    programs: tuple[str, ...] | None  # a pipeline's stages as the agent named them
    limit_s: float  # its time limit
    started: float  # trio's clock
    started_at: datetime  # the wall clock, for clients
    stdout: StreamBuffer
    stderr: StreamBuffer
    watch: runner.OutputWatch = attrs.field(factory=runner.OutputWatch)
    state: State = State.WORKING
    result: RunResult | None = None  # None until it ends, and when it did not run to an end
    error: ToolError | None = None  # why it failed
    ended: float | None = None
    ended_at: datetime | None = None  # the wall clock, for clients
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    spawned: bool = False
    done: trio.Event = attrs.field(factory=trio.Event)
    cursors: dict[str, int] = attrs.field(factory=lambda: dict.fromkeys(STREAMS, 0))  # where job_output continues
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def stream(self, name: str) -> StreamBuffer:
        return self.stdout if name == "stdout" else self.stderr

    @property
    def updated_at(self) -> datetime:
        """When its state last changed (its start or its end), on the wall clock."""
        return self.ended_at or self.started_at

    def duration_s(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def write_stdout(self, chunk: bytes | bytearray) -> None:
        self.stdout.write(chunk)
        self.notify()

    def write_stderr(self, chunk: bytes | bytearray) -> None:
        self.stderr.write(chunk)
        self.notify()

    def mark_started(self) -> None:
        self.spawned = True
        self.notify()

    async def changed(self) -> None:
        """Until it prints, starts or ends."""
        await self._changed.wait()

    async def wait_started(self) -> None:
        """Until every stage started (or it ended without starting)."""
        while not (self.spawned or self.done.is_set()):
            await self.changed()


def _new_id() -> str:
    return secrets.token_hex(8)  # unguessable, though ownership is what protects a job


class Jobs:
    """Every job of one server."""

    def __init__(self, settings: JobSettings, audit: Audit) -> None:
        self.settings = settings
        self.audit = audit
        self._jobs: dict[str, Job] = {}  # in the order they started
        self._nursery: trio.Nursery | None = None
        self._ended = trio.Event()  # wakes the expiry task

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs.values()))

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the jobs and forget the expired ones, for the server's life; its end cancels every job."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await self._expire_forever()
            finally:
                self._nursery = None

    def start(self, tool: str, plan: ExecPlan, owner: str, *, programs: tuple[str, ...] | None = None) -> Job:
        """Start ``plan`` as a job of ``owner`` (``Busy`` when its limits are reached)."""
        if self._nursery is None:
            raise Internal("this server is not running jobs (it is shutting down); retry later")
        self._make_room(owner)
        limit = self.settings.job_output_bytes
        now = trio.current_time()
        job = Job(
            id=_new_id(),
            owner=owner,
            tool=tool,
            programs=programs,
            limit_s=plan.timeout_s,
            started=now,
            started_at=datetime.now(timezone.utc),
            stdout=StreamBuffer(limit),
            stderr=StreamBuffer(limit),
        )
        self._jobs[job.id] = job
        self.audit.record("job_start", job=job.id, tool=tool, client=owner, limit_s=plan.timeout_s)
        self._nursery.start_soon(self._run, job, plan)
        return job

    def beside(self, job: Job, task: Callable[[], Awaitable[None]]) -> None:
        """Run ``task`` for ``job`` (a notification, progress) in the table's nursery: the server's end cancels it."""
        if self._nursery is not None:
            self._nursery.start_soon(self._beside, job, task)

    async def _beside(self, job: Job, task: Callable[[], Awaitable[None]]) -> None:
        try:
            await task()
        except Exception:  # never the server's end
            logger.exception("job {}: a task beside it failed", job.id)

    def get(self, job_id: str, owner: str) -> Job:
        """``owner``'s job ``job_id``; ``NotFound`` for any other (the same answer whether it exists or not)."""
        job = self._jobs.get(job_id)
        if job is None or job.owner != owner:
            raise NotFound(
                f"no job {job_id[:64]!r} of this client: it never existed, belongs to another client, or ended more "
                f"than {self.settings.job_ttl_s:g}s ago and was forgotten (--job-ttl); job_list shows your jobs",
                argument="id",
            )
        return job

    def mine(self, owner: str) -> list[Job]:
        return [job for job in self._jobs.values() if job.owner == owner]

    async def cancel(self, job: Job) -> State:
        """Stop ``job`` (its process group, its sandbox) and wait for its end; returns its state before."""
        before = job.state
        if before is State.WORKING:
            job.scope.cancel()
            await job.done.wait()
        self.audit.record("job_cancel", job=job.id, tool=job.tool, client=job.owner, state=before.value)
        return before

    def forget(self, job: Job, reason: str) -> None:
        if self._jobs.pop(job.id, None) is not None:
            self.audit.record("job_expired", job=job.id, tool=job.tool, client=job.owner, reason=reason)

    def read(self, job: Job, stream: str, *, offset: int, size: int) -> None:
        """One audit record for a read of ``size`` bytes of ``job``'s ``stream`` at ``offset``."""
        self.audit.record(
            "job_read", job=job.id, tool=job.tool, client=job.owner, stream=stream, offset=offset, bytes=size
        )

    def _make_room(self, owner: str) -> None:
        s = self.settings
        mine = self.mine(owner)
        if len(mine) >= s.max_jobs_per_client:
            self._forget_oldest_ended(mine, f"this client has {len(mine)} jobs running (--max-jobs-per-client)")
        if len(self._jobs) >= s.max_jobs:
            self._forget_oldest_ended(list(self._jobs.values()), f"{len(self._jobs)} jobs are running (--max-jobs)")

    def _forget_oldest_ended(self, jobs: list[Job], running: str) -> None:
        ended = [job for job in jobs if job.ended is not None]
        if not ended:
            raise Busy(f"{running}; wait for one to end (job_output with wait_s) or stop one with job_cancel")
        self.forget(min(ended, key=lambda job: job.ended or 0.0), "room for a new job")

    async def _run(self, job: Job, plan: ExecPlan) -> None:
        try:
            with job.scope:
                job.result = await runner.run(
                    plan, job.watch, sinks=(job.write_stdout, job.write_stderr), on_spawn=job.mark_started
                )
            if job.result is not None and job.result.timed_out:
                job.error = TimedOut(f"the job ran for its time limit of {job.limit_s:g}s and was stopped")
        except ToolError as e:  # it did not start
            job.error = e
        except Exception as e:  # a surprise ends this job, never the server
            logger.exception("job {} of tool {}: internal error", job.id, job.tool)
            job.error = Internal(f"the server failed while running this job ({type(e).__name__})")
        finally:
            self._ended_now(job)

    def _ended_now(self, job: Job) -> None:
        job.ended = trio.current_time()
        job.ended_at = datetime.now(timezone.utc)
        if job.error is not None:
            job.state = State.FAILED
        elif job.result is None:
            job.state = State.CANCELLED
        else:
            job.state = State.COMPLETED
        job.done.set()
        job.notify()
        self._ended.set()
        result = job.result
        fields: dict[str, Any] = {
            "job": job.id,
            "tool": job.tool,
            "client": job.owner,
            "state": job.state.value,
            "outcome": job.error.code if job.error is not None else job.state.value,
            "exit_code": None if result is None else result.exit_code,
            "signal": None if result is None else result.signal,
            "bytes_out": job.stdout.total + job.stderr.total,
            "dropped": job.stdout.dropped + job.stderr.dropped,
            "duration_ms": round(job.duration_s(job.ended) * 1000, 3),
        }
        self.audit.record("job_end", **fields)

    async def _expire_forever(self) -> None:
        ttl = self.settings.job_ttl_s
        while True:
            now = trio.current_time()
            for job in self:
                if job.ended is not None and job.ended + ttl <= now:
                    self.forget(job, "ttl")
            dues = [job.ended + ttl for job in self._jobs.values() if job.ended is not None]
            with trio.move_on_at(min(dues) if dues else float("inf")):
                await self._ended.wait()
            self._ended = trio.Event()
