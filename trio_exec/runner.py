"""The only module that starts processes.

Invariants:
- argv only, never a shell; every command starts in a new session (its own process group);
- the whole group is killed when the call ends, however it ends (exit, timeout, output cap,
  cancellation): SIGTERM then SIGKILL after a short grace, and SIGKILL again in ``finally``
  even when the direct child has already exited;
- stdout and stderr are read concurrently and capped; stdin is written concurrently, so no
  pipe can deadlock and memory per call stays bounded whatever the command prints;
- the timeout is a cancel scope, turned into ``timed_out`` at one place;
- every process starts inside the plan's sandbox (``sandbox.Sandbox.prepare``), from the trio thread
  (so ``--die-with-parent``/``PR_SET_PDEATHSIG`` hold for the server's whole life), and is waited for
  through a pidfd;
- what escapes the group is killed when the call ends: the server is the subreaper of everything it
  starts (``adopt_orphans``), so a ``setsid`` daemon (no PID namespace: Landlock, no sandbox) and a
  bwrap sandbox whose outer process was killed while it was still setting up (its PID 1 had not yet
  asked to die with its parent) become the server's orphans, and each call's end kills every orphan.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import trio

from trio_exec import procfs
from trio_exec.config import KILL_GRACE_S
from trio_exec.errors import SpawnFailed
from trio_exec.plan import ExecPlan, RunResult
from trio_exec.sandbox import Mode, Prepared

_CHUNK = 64 * 1024


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


# Takes every chunk of a stream: a job keeps its output itself, without a cap.
Sink = Callable[[bytes | bytearray], None]


class _Capture:
    """Keeps at most ``limit`` bytes of a stream and drains (discards) the rest; or hands all of it to ``sink``."""

    def __init__(self, limit: int, watch: OutputWatch | None, sink: Sink | None = None) -> None:
        self.data = bytearray()
        self.limit = limit
        self.truncated = False
        self.watch = watch
        self.sink = sink

    async def drain(self, stream: trio.abc.ReceiveStream, on_overflow: Callable[[], None]) -> None:
        while chunk := await stream.receive_some(_CHUNK):
            if self.watch is not None:
                self.watch.saw(chunk)
            if self.sink is not None:
                self.sink(chunk)
                continue
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


async def _stop(procs: list[Child]) -> None:
    """SIGTERM the group, give it a short grace, then SIGKILL whatever is left and reap every stage."""
    pgid = procs[0].pid
    if any(p.returncode is None for p in procs):
        _killpg(pgid, signal.SIGTERM)
        with trio.move_on_after(KILL_GRACE_S):
            for p in procs:
                await p.wait()
    _killpg(pgid, signal.SIGKILL)
    for p in procs:
        await p.wait()


_HAS_PROCESS_GROUP = sys.version_info >= (3, 11)  # Popen(process_group=) is 3.11+


def _group(pgid: int | None, stages: int) -> dict[str, Any]:
    """Popen arguments for the command's own process group; ``pgid`` None starts it.

    A lone command gets a new session (its own group, no controlling terminal). A process group
    cannot span sessions, so the stages of a pipeline share a new group in the server's session.
    """
    if pgid is None and stages == 1:
        return {"start_new_session": True}
    group = 0 if pgid is None else pgid
    if _HAS_PROCESS_GROUP:
        return {"process_group": group}
    return {"preexec_fn": functools.partial(os.setpgid, 0, group)}  # pragma: no cover - 3.10 only


class _Wiring:
    """The parent's ends of one run's pipes and files: closed once every stage holds its own copy."""

    def __init__(self) -> None:
        self.ends: list[int] = []

    def pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        self.ends += [r, w]
        return r, w

    def adopt(self, fd: int) -> int:
        self.ends.append(fd)
        return fd

    def open(self, path: str, flags: int) -> int:
        # O_NOFOLLOW: a redirection target that became a symlink after validation is refused here.
        return self.adopt(os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))

    def keep(self, fd: int) -> trio.lowlevel.FdStream:
        """Our end of a pipe as a trio stream (no longer closed by ``close``)."""
        self.ends.remove(fd)
        return trio.lowlevel.FdStream(fd)

    def close(self) -> None:
        for fd in self.ends:
            os.close(fd)
        self.ends.clear()


_LIVE: set[int] = set()  # pids of started processes not reaped yet: never taken for orphans
_ADOPTING = False  # the server is the subreaper of its commands (adopt_orphans): their orphans are its children


def adopt_orphans(adopt: bool = True) -> bool:
    """Make this process the subreaper of every command it starts, so each call kills what escaped its group.

    Only a server calls this: any other child of the process (a test's own subprocess) would be taken for
    an orphan. True if the kernel agreed. ``adopt=False`` stops taking orphans (a server that ran inside a
    longer-lived process, as a test does, has ended); the process stays a subreaper.
    """
    global _ADOPTING  # one switch for the process, set at start-up
    _ADOPTING = procfs.set_subreaper() if adopt else False
    return _ADOPTING


class Child:
    """A started process, waited for through a pidfd (no thread, no SIGCHLD handler)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        _LIVE.add(self.pid)
        self._pidfd: int | None = os.pidfd_open(popen.pid)

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def wait(self) -> int:
        while self.popen.poll() is None:
            assert self._pidfd is not None  # noqa: S101 - closed only once the process is reaped
            await trio.lowlevel.wait_readable(self._pidfd)
        _LIVE.discard(self.pid)
        self.close()
        return self.popen.returncode

    def close(self) -> None:
        if self._pidfd is not None:
            trio.lowlevel.notify_closing(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None


def _orphans(spared: Collection[int] = ()) -> list[int]:
    """Processes re-parented to this server (a subreaper) that it did not start itself, but for ``spared``."""
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):  # any thread of ours may be an orphan's new parent
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                found.update(int(pid) for pid in f.read().split())
        except OSError:
            continue
    return sorted(found - _LIVE - set(spared))


async def kill_orphans(spared: Collection[int] = ()) -> None:
    """SIGKILL and reap every orphan (and the orphans their deaths make).

    An orphan is a command's descendant whose parent exited: a daemon that called ``setsid`` is one, and so
    is the PID 1 of a bwrap sandbox whose outer bwrap was killed before that PID 1 set ``PR_SET_PDEATHSIG``
    (killing it ends its whole PID namespace). As their subreaper, the server is their parent, so their
    pids stay theirs until reaped here. Another call's orphans go too: no orphan is ever legitimate. ``spared``:
    children of ours started otherwise (the ``--workers`` supervisor's workers).
    """
    for _ in range(16):  # each round's deaths re-parent their children to us
        found = _orphans(spared)
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in found:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                with trio.move_on_after(KILL_GRACE_S):
                    await trio.lowlevel.wait_readable(pidfd)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG, after the pidfd said it is dead
            finally:
                trio.lowlevel.notify_closing(pidfd)
                os.close(pidfd)


async def start_server_copy(argv: Sequence[str], *, env: Mapping[str, str], pass_fds: tuple[int, ...]) -> trio.Process:
    """A copy of this server (a ``--workers`` worker), never a command: no sandbox and no limits, as the server
    itself has none. Stdin and stdout are piped (its control channel); it runs in a session of its own, so a
    terminal's Ctrl-C reaches it only through its supervisor. The supervisor waits for it (trio's pidfd) and
    spares it in ``kill_orphans``."""
    return await trio.lowlevel.open_process(
        list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(env), pass_fds=pass_fds,
        start_new_session=True,
    )  # fmt: skip


def _popen(argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """``Popen`` on the calling (trio) thread, on purpose.

    ``trio.lowlevel.open_process`` forks from a worker thread that exits after ~10 s idle, and
    ``PR_SET_PDEATHSIG`` (bwrap's ``--die-with-parent``) fires when the *thread* that forked dies: the
    sandbox would kill healthy commands then, and a thread that lives on would not notice the server's
    death. The trio thread lives exactly as long as the server. vfork makes this a sub-millisecond call.
    """
    return subprocess.Popen(argv, **options)


def _both(*steps: Callable[[], None] | None) -> Callable[[], None] | None:
    """One ``preexec_fn`` out of several (None when there is none)."""
    chosen = [step for step in steps if step is not None]
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]

    def run_all() -> None:
        for step in chosen:
            step()

    return run_all


async def _spawn(
    plan: ExecPlan, stdin: int, stdout: int, stderr: int, wiring: _Wiring, prepared: list[Prepared]
) -> list[Child]:
    """Start every stage, stdin -> stage 1 | ... | stage n -> stdout, all in one new process group."""
    commands = (plan.argv, *plan.more)
    procs: list[Child] = []
    stage_in = stdin
    sandbox = plan.sandbox if plan.sandbox is not None and plan.sandbox.active else None
    home = plan.env.get("HOME", "/tmp")  # noqa: S108
    try:
        for i, argv in enumerate(commands):
            next_in, stage_out = wiring.pipe() if i < len(commands) - 1 else (None, stdout)
            box = (
                Prepared(argv=argv) if sandbox is None else sandbox.prepare(argv, cwd=plan.cwd, home=home, box=plan.box)
            )
            prepared.append(box)
            options = _group(procs[0].pid if procs else None, len(commands))
            preexec = _both(options.pop("preexec_fn", None), box.preexec_fn)
            popen = _popen(
                [*plan.wrapper, *box.argv],
                stdin=stage_in,
                stdout=stage_out,
                stderr=stderr,
                cwd=plan.cwd,
                env={**plan.env, **box.env},
                pass_fds=box.pass_fds,
                preexec_fn=preexec,
                **options,
            )
            box.spawned()
            procs.append(Child(popen))
            stage_in = next_in if next_in is not None else stage_in
    except (OSError, subprocess.SubprocessError) as e:
        if procs:
            with trio.CancelScope(shield=True):
                await _stop(procs)
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SpawnFailed(f"cannot start {commands[len(procs)][0]}: {why}") from None
    return procs


_SIGNALS = frozenset(int(s) for s in signal.Signals)


def _status(returncode: int | None, *, boxed: bool) -> int | None:
    """Popen's return code (negative: killed by that signal) of one stage.

    bwrap reports a command killed by signal N as exit status 128 + N, as a shell does; inside the
    sandbox that status is read back as the signal (a command that exits with 128 + N itself reads
    the same: the price of the box, stated in SECURITY.md).
    """
    if boxed and returncode is not None and returncode - 128 in _SIGNALS:
        return -(returncode - 128)
    return returncode


async def run(
    plan: ExecPlan,
    watch: OutputWatch | None = None,
    *,
    sinks: tuple[Sink, Sink] | None = None,
    on_spawn: Callable[[], None] | None = None,
) -> RunResult:
    """Run ``plan`` (one command or a pipeline) to completion, timeout or cancellation.

    Never leaves a process behind. ``watch``, when given, sees every chunk of output as it
    arrives (for progress reports). ``sinks`` (stdout's, stderr's) take the whole output instead of the
    capped capture (the result's ``stdout`` and ``stderr`` are then empty); ``on_spawn`` is told once every
    stage has started.

    One function over 50 lines on purpose: everything it opens (pipes, files, the process group, the
    sandboxes) is released by the one shielded ``finally`` at its end, whichever step fails or is cancelled.
    """
    started = trio.current_time()
    wiring = _Wiring()
    streams: list[trio.lowlevel.FdStream] = []
    prepared: list[Prepared] = []
    # A daemon that left the group, or a sandbox cut off mid set-up, is found as an orphan of ours.
    orphans = _ADOPTING
    try:
        out_r, out_w = wiring.pipe()
        err_r, err_w = wiring.pipe()
        if plan.stdout_path is not None:
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if plan.append else os.O_TRUNC)
            out_w = wiring.open(plan.stdout_path, flags)
        feed = None
        if plan.stdin_path is not None:
            stdin = wiring.open(plan.stdin_path, os.O_RDONLY)
        elif plan.stdin is not None:
            stdin, feed_w = wiring.pipe()
            feed = wiring.keep(feed_w)
            streams.append(feed)
        else:
            stdin = subprocess.DEVNULL
        out_stream, err_stream = wiring.keep(out_r), wiring.keep(err_r)
        streams += [out_stream, err_stream]
        procs = await _spawn(plan, stdin, out_w, err_w, wiring, prepared)
    except BaseException:
        for stream in streams:
            stream.close()
        for box in prepared:
            box.finished()
        raise
    finally:
        wiring.close()  # the children have their copies; EOF now follows their exit
    pgid = procs[0].pid
    out_sink, err_sink = sinks if sinks is not None else (None, None)
    out = _Capture(plan.max_output_bytes, watch, out_sink)
    err = _Capture(plan.max_output_bytes, watch, err_sink)

    def overflow() -> None:
        _killpg(pgid, signal.SIGKILL)

    try:
        if on_spawn is not None:
            on_spawn()
        with trio.move_on_after(plan.timeout_s) as deadline:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(out.drain, out_stream, overflow)
                nursery.start_soon(err.drain, err_stream, overflow)
                if feed is not None and plan.stdin is not None:
                    nursery.start_soon(_feed, feed, plan.stdin)
                for proc in procs:
                    await proc.wait()
                # Background children of the command must not outlive the call, and
                # must not keep the pipes (and so this call) open.
                _killpg(pgid, signal.SIGKILL)
                if orphans:
                    await kill_orphans()
    finally:
        with trio.CancelScope(shield=True):
            await _stop(procs)
            if orphans:
                await kill_orphans()
            for stream in streams:
                await stream.aclose()
            for box in prepared:
                box.finished()
    boxed = plan.sandbox is not None and plan.sandbox.mode is Mode.BWRAP
    codes = [_status(p.returncode, boxed=boxed) for p in procs]
    stages = tuple(
        (code if code is not None and code >= 0 else None, -code if code is not None and code < 0 else None)
        for code in codes
    )
    return RunResult(
        exit_code=stages[-1][0],
        signal=stages[-1][1],
        stdout=bytes(out.data),
        stderr=bytes(err.data),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        timed_out=deadline.cancelled_caught,
        duration_s=trio.current_time() - started,
        stages=stages,
    )
