"""``--workers N``: N copies of the server on one port, and the supervisor that keeps them running.

The supervisor (``supervise``: the process the operator started) binds one listening socket per worker on
``--bind`` with ``SO_REUSEPORT``, so the kernel spreads new connections over them, and starts each worker as
``python -m trio_exec`` with its socket (through ``runner.start_server_copy``: only the runner starts
processes). It keeps the sockets: a worker that dies is replaced on the same socket, so the connections queued
there meanwhile are served by its successor, not refused. The supervisor runs no command and imports neither
the MCP SDK nor an HTTP stack.

The control pipe is the worker's stdin and stdout (a network transport uses neither):
- supervisor -> worker: one JSON line with the command line (so a token given with ``--auth-token`` is in no
  worker's ``/proc/<pid>/cmdline``), the worker's index and the count; then the table of workers whenever it
  changes, which ``/health`` shows. The pipe's end (the supervisor is gone, even killed) drains and stops the
  worker: no worker outlives its supervisor.
- worker -> supervisor: one line once it serves.

Signals: the first SIGINT/SIGTERM is passed on to every worker (each drains for ``--shutdown-grace``) and no
worker is replaced from then on; a second is passed on too (each stops at once). Workers run in process groups
of their own, so a terminal's Ctrl-C reaches them once, through the supervisor.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs
import trio
from loguru import logger

from trio_exec.audit import Audit, setup_logging
from trio_exec.config import WORKER_ENV, Settings
from trio_exec.errors import ConfigError
from trio_exec.procfs import set_subreaper
from trio_exec.runner import kill_orphans, start_server_copy

START_TIMEOUT_S = 60.0  # a worker that does not serve this long after its start is killed and replaced
QUICK_EXIT_S = 5.0  # a worker that dies sooner than this after its start is replaced after a growing pause
MAX_PAUSE_S = 30.0
STOP_SLACK_S = 15.0  # after --shutdown-grace and this, a worker that still runs is killed


# --- the worker's side ---------------------------------------------------------------------------------------


@attrs.define
class Worker:
    """This process is worker ``index`` of ``count``: its socket, its command line, and the supervisor's table."""

    index: int
    count: int
    listen_fd: int
    argv: list[str]
    table: list[dict[str, Any]] = attrs.field(factory=list)
    _pending: bytes = b""  # what was read past the first line

    @classmethod
    def handshake(cls, listen_fd: str) -> Worker:
        """Read the supervisor's first line from stdin (before trio starts); the socket is kept from commands."""
        data = b""
        while b"\n" not in data:
            chunk = os.read(0, 65536)
            if not chunk:
                raise ConfigError("started as a worker, but the supervisor went away before saying what to serve")
            data += chunk
        line, _, rest = data.partition(b"\n")
        hello = json.loads(line)
        fd = int(listen_fd)
        os.set_inheritable(fd, False)  # no command inherits the listening socket
        return cls(int(hello["index"]), int(hello["count"]), fd, [str(a) for a in hello["argv"]], pending=rest)

    @property
    def name(self) -> str:
        return f"worker {self.index}"

    def health(self) -> dict[str, Any]:
        """What ``/health`` adds: this worker, and every worker as the supervisor last reported them."""
        return {"worker": {"index": self.index, "pid": os.getpid()}, "workers": self.table}

    def ready(self, where: str) -> None:
        """Tell the supervisor this worker serves (one short line on a pipe of our own: it does not block)."""
        os.write(1, json.dumps({"ready": where, "pid": os.getpid()}).encode() + b"\n")

    async def serve_control(self, stopping: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        """Follow the supervisor's table; when its pipe ends (it is gone), stop as on SIGTERM."""
        task_status.started()
        buffered = self._pending
        async with trio.lowlevel.FdStream(os.dup(0)) as pipe:
            while True:
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    self._take(line)
                chunk = await pipe.receive_some()
                if not chunk:
                    break
                buffered += chunk
        if not stopping.is_set():
            logger.warning("the supervisor went away: stopping this worker (running calls may finish)")
            stopping.set()

    def _take(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if isinstance(message, dict) and isinstance(message.get("workers"), list):
            self.table = message["workers"]


# --- the supervisor ------------------------------------------------------------------------------------------


def listening_sockets(bind: str, count: int, backlog: int, write_timeout_s: float) -> list[socket.socket]:
    """``count`` sockets listening on ``HOST:PORT`` together (``SO_REUSEPORT``); port 0 picks one for all."""
    from trio_exec.transports.sockets import set_write_timeout

    host, _, port = bind.rpartition(":")
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if len(sockets) > 1:  # the port the first one got
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(backlog)
            set_write_timeout(sock, write_timeout_s)
    except OSError as e:
        for sock in sockets:
            sock.close()
        raise ConfigError(f"--bind {bind}: cannot listen there with --workers {count} ({e.strerror})") from None
    return sockets


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@attrs.define(eq=False)
class _Slot:
    """One worker's place: its socket, and whichever process serves it now."""

    index: int
    sock: socket.socket
    process: trio.Process | None = None
    state: str = "starting"  # starting | serving | restarting | stopped
    restarts: int = 0
    since: str = ""
    served: trio.Event = attrs.Factory(trio.Event)  # set when this slot's first process serves

    def row(self) -> dict[str, Any]:
        pid = None if self.process is None or self.state == "restarting" else self.process.pid
        return {"index": self.index, "pid": pid, "state": self.state, "restarts": self.restarts, "since": self.since}


@attrs.define(eq=False)
class Supervisor:
    """Keep ``count`` workers serving until a signal; see the module's text."""

    settings: Settings
    argv: list[str]
    environ: dict[str, str]
    tools: int
    audit: Audit
    slots: list[_Slot]
    stopping: trio.Event = attrs.Factory(trio.Event)
    code: int = 0
    url: str = ""
    _changed: trio.Event = attrs.Factory(trio.Event)
    _spawning: trio.Lock = attrs.Factory(trio.Lock)  # a worker's start and the orphan sweep never overlap

    async def run(self) -> int:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._signals, nursery)
            nursery.start_soon(self._broadcast)
            async with trio.open_nursery() as keepers:
                for slot in self.slots:
                    keepers.start_soon(self._keep, slot)
                await self._announce()
            nursery.cancel_scope.cancel()
        return self.code

    async def _announce(self) -> None:
        for slot in self.slots:
            await slot.served.wait()
        if not self.stopping.is_set():
            pids = ", ".join(str(s.process.pid) for s in self.slots if s.process is not None)
            logger.info("serving {} tool(s) on {} with {} workers (pids {})", self.tools, self.url,
                        len(self.slots), pids)  # fmt: skip

    async def _keep(self, slot: _Slot) -> None:
        """Run the slot's worker, and another each time it dies, until the server stops."""
        quick = 0
        while not self.stopping.is_set():
            started = trio.current_time()
            code, served = await self._run_once(slot)
            await self._sweep()
            if self.stopping.is_set():
                if code not in (0, -signal.SIGTERM):
                    self.code = self.code or 1
                    logger.warning("worker {} {} while stopping", slot.index, _exit_text(code))
                break
            if not slot.served.is_set():  # the first start failed: the configuration cannot serve
                logger.error("worker {} {} before it served: stopping", slot.index, _exit_text(code))
                self.code = code if code > 0 else 1
                self._stop()
                break
            pid = slot.process.pid if slot.process is not None else None
            logger.warning("worker {} (pid {}) {}: starting another", slot.index, pid, _exit_text(code))
            self.audit.record("worker_replaced", worker=slot.index, pid=pid, status=_exit_text(code), served=served)
            slot.restarts += 1
            quick = quick + 1 if trio.current_time() - started < QUICK_EXIT_S else 0
            if quick:
                slot.state = "restarting"
                self._changed.set()
                with trio.move_on_after(min(0.5 * 2 ** (quick - 1), MAX_PAUSE_S)):
                    await self.stopping.wait()
        slot.state = "stopped"
        slot.served.set()  # nobody waits for a slot that will not serve

    async def _run_once(self, slot: _Slot) -> tuple[int, bool]:
        """One worker process on the slot's socket, to its end: (its exit status, whether it served)."""
        fd = slot.sock.fileno()
        async with self._spawning:
            process = await start_server_copy(
                [sys.executable, "-m", "trio_exec"], env={**self.environ, WORKER_ENV: str(fd)}, pass_fds=(fd,)
            )
            slot.process, slot.state = process, "starting"
        assert process.stdin is not None  # noqa: S101 - asked for above
        assert process.stdout is not None  # noqa: S101
        slot.since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._changed.set()
        served = False
        hello = {"argv": self.argv, "index": slot.index, "count": len(self.slots)}
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):  # it died: its status says why
            await process.stdin.send_all(json.dumps(hello).encode() + b"\n")
        async with trio.open_nursery() as nursery:

            async def follow() -> None:
                nonlocal served
                assert process.stdout is not None  # noqa: S101
                buffered = b""
                while chunk := await process.stdout.receive_some():
                    buffered += chunk
                    if not served and b"\n" in buffered:
                        line = buffered.partition(b"\n")[0]
                        served = True
                        self.url = self.url or str(json.loads(line).get("ready", ""))
                        slot.state = "serving"
                        slot.served.set()
                        self._changed.set()
                    if served:
                        buffered = b""

            async def deadline() -> None:
                await trio.sleep(START_TIMEOUT_S)
                if not served:
                    logger.error("worker {} (pid {}) did not serve within {:g}s: killing it", slot.index,
                                 process.pid, START_TIMEOUT_S)  # fmt: skip
                    _kill_group(process)

            nursery.start_soon(follow)
            nursery.start_soon(deadline)
            await process.wait()
            nursery.cancel_scope.cancel()
        await process.stdin.aclose()
        await process.stdout.aclose()
        return process.returncode or 0, served

    async def _sweep(self) -> None:
        """Kill what a dead worker left: its commands, re-parented to us (a subreaper), whatever the sandbox."""
        async with self._spawning:
            live = [s.process.pid for s in self.slots if s.process is not None and s.process.returncode is None]
            await kill_orphans(spared=live)

    def _stop(self) -> None:
        """No worker is replaced from now on; every running one is asked to drain.

        Our copies of the sockets close now: once the workers close theirs (at the end of their drain), a new
        connection is refused at once instead of waiting in a queue that nobody reads.
        """
        self.stopping.set()
        for slot in self.slots:
            slot.sock.close()
            if slot.process is not None and slot.process.returncode is None:
                slot.process.send_signal(signal.SIGTERM)

    async def _signals(self, nursery: trio.Nursery, *, task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                if not self.stopping.is_set():
                    logger.info("received {}: stopping {} workers; running calls may finish", name, len(self.slots))
                    self._stop()
                    nursery.start_soon(self._kill_late)
                else:
                    logger.info("received {} again: the workers stop now", name)
                    self._stop()

    async def _kill_late(self) -> None:
        """A worker that outlives its grace by far (it hangs) is killed with its process group."""
        await trio.sleep(self.settings.network.shutdown_grace_s + STOP_SLACK_S)
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode is None:
                logger.error("worker {} (pid {}) did not stop: killing it", slot.index, slot.process.pid)
                _kill_group(slot.process)

    async def _broadcast(self) -> None:
        """Send the table to every serving worker whenever it changes (one sender per pipe: this task)."""
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            line = json.dumps({"workers": [s.row() for s in self.slots]}).encode() + b"\n"
            for slot in self.slots:
                process = slot.process
                if process is None or slot.state != "serving" or process.stdin is None:
                    continue
                # A worker too busy to read its pipe gets the next table; one that is ending, none.
                with trio.move_on_after(1), contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await process.stdin.send_all(line)


def _kill_group(process: trio.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # its own group (start_new_session): it and what it left


def supervise(settings: Settings, argv: Sequence[str], environ: Mapping[str, str], tools: int) -> int:
    """Run ``--workers`` copies of the server until a signal stops them; returns the exit code."""
    s = settings
    secrets = [s.network.auth_token] if s.network.auth_token else []
    setup_logging(s.log.level, s.log.format, secrets)
    count = s.network.workers
    set_subreaper()  # a dead worker's commands come to us, and die (Supervisor._sweep)
    sockets = listening_sockets(s.network.bind, count, s.network.backlog, s.network.write_timeout_s)
    audit = Audit(s.log.audit_log, s.log.audit_rotate, secrets, fail=s.log.audit_fail)
    logger.info("trio-exec supervisor (pid {}) starting {} workers on {}", os.getpid(), count, s.network.bind)
    env = {k: v for k, v in environ.items() if k != WORKER_ENV}
    slots = [_Slot(i, sock) for i, sock in enumerate(sockets)]
    supervisor = Supervisor(s, list(argv), env, tools, audit, slots)
    started = time.monotonic()
    try:
        code = trio.run(supervisor.run)
    finally:
        audit.close()
    logger.info("stopped ({} workers, after {:.0f}s)", count, time.monotonic() - started)
    return code
