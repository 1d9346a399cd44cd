"""The only module that starts processes.

Invariants:
- argv only, never a shell; every command starts in a new session (its own process group);
- the whole group is killed when the call ends, however it ends (exit, timeout, output cap,
  cancellation): SIGTERM then SIGKILL after a short grace, and SIGKILL again in ``finally``
  even when the direct child has already exited;
- stdout and stderr are read concurrently and capped; stdin is written concurrently, so no
  pipe can deadlock and memory per call stays bounded whatever the command prints;
- the timeout is a cancel scope, turned into ``timed_out`` at one place.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping

import attrs
import trio

from trio_exec.config import Limits
from trio_exec.errors import ConfigError, SpawnFailed

KILL_GRACE_S = 1.0
_CHUNK = 64 * 1024


@attrs.frozen
class ExecPlan:
    """A validated command, ready to run."""

    argv: tuple[str, ...]
    cwd: str
    env: Mapping[str, str] = attrs.field(repr=False)
    stdin: bytes | None = attrs.field(default=None, repr=False)
    timeout_s: float = 30.0
    max_output_bytes: int = 1024 * 1024


@attrs.frozen
class RunResult:
    """What happened to a command that was started."""

    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    duration_s: float

    @property
    def output_limited(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated


def limits_prefix(limits: Limits, prlimit_path: str | None) -> tuple[str, ...]:
    """The ``prlimit`` wrapper that applies ``limits`` to a command (empty when none is set).

    A wrapper rather than ``preexec_fn``: that would force fork instead of vfork (milliseconds
    per spawn) and is not thread-safe. Soft and hard limits are both set, so the command
    cannot raise them again.
    """
    if not limits.any():
        return ()
    if prlimit_path is None:
        raise ConfigError("resource limits need the prlimit program (util-linux), which was not found")
    options = {
        "--as": limits.memory_bytes,
        "--cpu": limits.cpu_s,
        "--fsize": limits.fsize_bytes,
        "--nofile": limits.nofile,
        "--nproc": limits.nproc,
    }
    return (prlimit_path, *(f"{k}={v}" for k, v in options.items() if v is not None), "--")


def child_env(
    *, search_path: str, home: str, passthrough: Mapping[str, str], extra: Mapping[str, str]
) -> dict[str, str]:
    """A minimal environment: nothing of the server's leaks unless the operator listed it."""
    env = {"PATH": search_path, "LANG": "C.UTF-8", "HOME": home}
    env.update(passthrough)
    env.update(extra)
    return env


class OutputWatch:
    """What a command printed last (for progress messages): one short line, never the whole output."""

    MAX_CHARS = 200

    def __init__(self) -> None:
        self.last_line = ""
        self.bytes_out = 0

    def saw(self, chunk: bytes | bytearray) -> None:
        self.bytes_out += len(chunk)
        lines = [line for line in chunk[-4 * self.MAX_CHARS :].splitlines() if line.strip()]
        if lines:
            self.last_line = lines[-1][-self.MAX_CHARS :].decode("utf-8", errors="replace")


class _Capture:
    """Keeps at most ``limit`` bytes of a stream and drains (discards) the rest."""

    def __init__(self, limit: int, watch: OutputWatch | None) -> None:
        self.data = bytearray()
        self.limit = limit
        self.truncated = False
        self.watch = watch

    async def drain(self, stream: trio.abc.ReceiveStream, on_overflow: Callable[[], None]) -> None:
        while chunk := await stream.receive_some(_CHUNK):
            if self.watch is not None:
                self.watch.saw(chunk)
            room = self.limit - len(self.data)
            if len(chunk) <= room:
                self.data += chunk
                continue
            self.data += chunk[:room]
            if not self.truncated:
                self.truncated = True
                on_overflow()


async def _feed(stream: trio.abc.SendStream, data: bytes) -> None:
    try:
        async with stream:
            view = memoryview(data)
            for i in range(0, len(view), _CHUNK):
                await stream.send_all(view[i : i + _CHUNK])
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the command closed its stdin early; not an error of ours


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is already gone
        os.killpg(pgid, sig)


async def _stop(proc: trio.Process) -> None:
    """SIGTERM the group, give it a short grace, then SIGKILL whatever is left."""
    if proc.returncode is None:
        _killpg(proc.pid, signal.SIGTERM)
        with trio.move_on_after(KILL_GRACE_S):
            await proc.wait()
    _killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


async def run(plan: ExecPlan, watch: OutputWatch | None = None) -> RunResult:
    """Run ``plan`` to completion, timeout or cancellation; never leaves a process behind.

    ``watch``, when given, sees every chunk of output as it arrives (for progress reports).
    """
    started = trio.current_time()
    try:
        proc = await trio.lowlevel.open_process(
            list(plan.argv),
            stdin=subprocess.DEVNULL if plan.stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=plan.cwd,
            env=dict(plan.env),
            start_new_session=True,
        )
    except OSError as e:
        raise SpawnFailed(f"cannot start {plan.argv[0]}: {e.strerror or e}") from None
    stdout, stderr, stdin = proc.stdout, proc.stderr, proc.stdin
    if stdout is None or stderr is None:  # pragma: no cover - we asked for pipes
        raise RuntimeError("the process has no output pipes")
    out, err = _Capture(plan.max_output_bytes, watch), _Capture(plan.max_output_bytes, watch)

    def overflow() -> None:
        _killpg(proc.pid, signal.SIGKILL)

    try:
        with trio.move_on_after(plan.timeout_s) as deadline:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(out.drain, stdout, overflow)
                nursery.start_soon(err.drain, stderr, overflow)
                if stdin is not None and plan.stdin is not None:
                    nursery.start_soon(_feed, stdin, plan.stdin)
                await proc.wait()
                # Background children of the command must not outlive the call, and
                # must not keep the pipes (and so this call) open.
                _killpg(proc.pid, signal.SIGKILL)
    finally:
        with trio.CancelScope(shield=True):
            await _stop(proc)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    await pipe.aclose()
    code = proc.returncode
    return RunResult(
        exit_code=code if code is not None and code >= 0 else None,
        signal=-code if code is not None and code < 0 else None,
        stdout=bytes(out.data),
        stderr=bytes(err.data),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        timed_out=deadline.cancelled_caught,
        duration_s=trio.current_time() - started,
    )
