"""``--workers 2`` against one worker: HTTP calls/s with 16 in flight, from a raw JSON-RPC client.

A server with ``--workers N`` is a supervisor and N worker processes, each accepting on its own
``SO_REUSEPORT`` socket of one port; the kernel spreads *connections* (not requests) over them by a hash of
the 4-tuple. So the client keeps 16 keep-alive connections, one per call in flight, opened afresh for each
round (a new hash draw: one unlucky split cannot decide the whole measurement); one connection would pin
every call to one worker.

The client is a few lines of HTTP/1.1 over trio sockets, not the SDK nor httpx nor h11: it runs on the same
two cores as the servers, so every millisecond it spends is taken from them (h11 alone costs 0.14 ms per
call). The request is the same bytes every time (the server is stateless Streamable HTTP, which needs no
``initialize``: each POST is a complete ``tools/call``), and every answer is parsed and checked (``stdout``
is ``hi\\n``), so a refused call never counts as a fast one.

The servers run ``echo`` with the guards raised (``TRIO_EXEC_GUARDS``) and the sandbox as shipped (one
diagnostic pair without it). All of them start up front; the rounds interleave every server, in alternating
order, and the report takes each one's median round: the machine is small and shared, and the kernel may
still be releasing the previous round's sandboxes (network namespaces go in a workqueue) when a round starts.

Besides calls/s and latency, each side reports its CPU per call (client, server, commands) and how many
cores it kept busy, its own processes and the whole machine: on 2 cores, one worker whose calls (with their
commands and the client) already keep 1.5 cores busy can gain at most 2 / 1.5 from a second one, however
well the server itself scales; the server's CPU per call, 1 worker against 2, says whether it does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from _measure import IN_FLIGHT, Cpu, Plan, Stats, connections_per_process, cpu_of, machine_busy_s
from _servers import Server, trio_exec

WORKERS = 2
TARGET_WORKERS_SPEEDUP = 1.8
START_TIMEOUT_S = 60.0  # for every server to log that it serves
STOP_TIMEOUT_S = 20.0
PROTOCOL = "2025-06-18"  # the legacy era: no per-request _meta to build

# The supervisor's line once every worker serves; a single server's line has no "with N workers".
SERVING = re.compile(r"serving \d+ tool\(s\) on http://127\.0\.0\.1:(\d+)/mcp(?: with \d+ workers \(pids ([\d, ]+)\))?")

Check = Callable[[dict[str, Any]], bool]


def http_server(workers: int, *extra: str) -> Server:
    label = "-".join(("trio-exec-http", f"{workers}w", *(x.strip("-") for x in extra)))
    args = ("--transport", "streamable-http", "--bind", "127.0.0.1:0", "--workers", str(workers), *extra)
    server = trio_exec(*args, "--cmd", 'echo|"echo {message}"')
    return Server(label, server.argv, server.env, server.cmdline_mark)


def echoed(message: dict[str, Any]) -> bool:
    result = message.get("result") or {}
    return result.get("isError") is False and (result.get("structuredContent") or {}).get("stdout") == "hi\n"


def rejected(message: dict[str, Any]) -> bool:
    result = message.get("result") or {}
    error = (result.get("structuredContent") or {}).get("error") or {}
    return result.get("isError") is True and error.get("code") == "rejected"


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Live:
    """A server that serves: its port, and the processes whose CPU is its own."""

    label: str
    port: int
    pids: tuple[int, ...]  # the server itself, or the supervisor and then its workers
    workers: tuple[int, ...]  # the processes that accept connections


def _read(path: Path) -> str:
    """A log or a /proc file (small, local: reading it from a trio task is fine); empty when it is gone."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _kill_worker(pid: int) -> None:
    """SIGKILL a worker that outlived its supervisor's pipe (its pid is checked: still a trio-exec)."""
    if "trio_exec" in _read(Path(f"/proc/{pid}/cmdline")):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def _serving(proc: trio.Process, log: Path) -> re.Match[str]:
    with trio.fail_after(START_TIMEOUT_S):
        while not (found := SERVING.search(_read(log))):
            if proc.poll() is not None:
                last = _read(log).strip().splitlines()[-1:]
                raise RuntimeError(f"{log.stem} exited with {proc.returncode} before serving: {last}")
            await trio.sleep(0.05)
    return found


@contextlib.asynccontextmanager
async def serving(servers: Sequence[Server], log_dir: Path) -> AsyncIterator[list[Live]]:
    """Start every server at once, wait until each serves, and stop them all (SIGTERM, then SIGKILL)."""
    procs: list[tuple[trio.Process, Path]] = []
    lives: list[Live] = []
    try:
        for server in servers:
            log = log_dir / f"{server.label}.log"
            with contextlib.ExitStack() as stack:
                errlog = stack.enter_context(log.open("w"))  # the child keeps its own copy
                proc = await trio.lowlevel.open_process(
                    list(server.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errlog,
                    env=dict(server.env),
                    start_new_session=True,
                )
            procs.append((proc, log))
        for server, (proc, log) in zip(servers, procs, strict=True):
            found = await _serving(proc, log)
            workers = tuple(int(p) for p in found[2].split(", ")) if found[2] else (proc.pid,)
            pids = (proc.pid, *workers) if found[2] else workers
            lives.append(Live(server.label, int(found[1]), pids, workers))
        yield lives
    finally:
        with trio.CancelScope(shield=True):
            for proc, _ in procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)  # the supervisor passes it on to its workers
            with trio.move_on_after(STOP_TIMEOUT_S):
                for proc, _ in procs:
                    await proc.wait()
            for live in lives:  # workers stop when their supervisor's pipe ends; this is for a stuck one
                for pid in live.workers:
                    _kill_worker(pid)
            for proc, _ in procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


# --------------------------------------------------------------------------- the client


def request(port: int, tool: str, arguments: dict[str, Any]) -> bytes:
    """One stateless ``tools/call`` POST, the same bytes every time."""
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    ).encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\naccept: application/json, text/event-stream\r\n"
        f"content-type: application/json\r\nmcp-protocol-version: {PROTOCOL}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection; ``call`` sends the request and returns the JSON-RPC answer.

    Reads exactly what hypercorn sends: a ``content-length`` body (``--json-response``) or a chunked
    ``text/event-stream`` (the default) whose last ``data:`` line is the answer.
    """

    def __init__(self, stream: trio.SocketStream, request: bytes) -> None:
        self._stream = stream
        self._request = request
        self._buf = bytearray()

    async def _until(self, end: bytes) -> bytes:
        while (at := self._buf.find(end)) < 0:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self._buf += chunk
        part = bytes(self._buf[:at])
        del self._buf[: at + len(end)]
        return part

    async def _exactly(self, size: int) -> bytes:
        while len(self._buf) < size:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self._buf += chunk
        part = bytes(self._buf[:size])
        del self._buf[:size]
        return part

    async def call(self) -> dict[str, Any]:
        await self._stream.send_all(self._request)
        status, *header_lines = (await self._until(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        if not status.startswith("HTTP/1.1 200") or headers.get("connection") == "close":
            raise RuntimeError(f"{status!r} {headers}")
        if "content-length" in headers:
            return dict(json.loads(await self._exactly(int(headers["content-length"]))))
        body = bytearray()
        while size := int((await self._until(b"\r\n")).split(b";")[0], 16):  # chunked: size, data, CRLF
            body += (await self._exactly(size + 2))[:-2]
        await self._until(b"\r\n")  # the empty trailer
        data = [line[5:] for line in body.splitlines() if line.startswith(b"data:")]
        return dict(json.loads(data[-1]))


# --------------------------------------------------------------------------- the measurement


@dataclass
class Arm:
    """One server and one workload, measured round by round with 16 calls in flight on 16 connections."""

    live: Live
    request: bytes
    check: Check
    rates: list[float] = field(default_factory=list)  # calls/s of each round
    samples: list[float] = field(default_factory=list)  # every call's latency
    cpu_spent: Cpu = field(default_factory=Cpu)
    busy_s: float = 0.0  # the whole machine's CPU seconds during the rounds
    wall_s: float = 0.0
    calls: int = 0
    splits: list[list[int]] = field(default_factory=list)  # connections per worker, each round

    async def round(self, calls: int, record: bool = True) -> None:
        async with contextlib.AsyncExitStack() as stack:
            conns = []
            for _ in range(IN_FLIGHT):
                stream = await stack.enter_async_context(await trio.open_tcp_stream("127.0.0.1", self.live.port))
                conns.append(Connection(stream, self.request))
            issued, samples = 0, []

            async def worker(conn: Connection) -> None:
                nonlocal issued
                while issued < calls:
                    issued += 1
                    started = time.perf_counter()
                    answer = await conn.call()
                    samples.append(time.perf_counter() - started)
                    if not self.check(answer):
                        raise RuntimeError(f"unexpected answer: {json.dumps(answer)[:300]}")

            cpu, busy, started = cpu_of(*self.live.pids), machine_busy_s(), time.perf_counter()
            async with trio.open_nursery() as nursery:
                for conn in conns:
                    nursery.start_soon(worker, conn)
            wall = time.perf_counter() - started
            cpu, busy = cpu_of(*self.live.pids) - cpu, machine_busy_s() - busy
            split = connections_per_process(self.live.port, self.live.workers)  # before our connections close
        if record:
            self.rates.append(calls / wall)
            self.samples += samples
            self.cpu_spent += cpu
            self.busy_s += busy
            self.wall_s += wall
            self.calls += calls
            self.splits.append(split)

    @property
    def calls_per_s(self) -> float:
        return statistics.median(self.rates)

    @property
    def latency(self) -> Stats:
        return Stats(tuple(self.samples))

    @property
    def cpu_ms(self) -> Cpu:
        return self.cpu_spent.per_call_ms(self.calls)

    @property
    def busy_cores(self) -> float:
        """How many cores the whole machine kept busy: ours, the kernel's threads and anything else."""
        return self.busy_s / self.wall_s

    @property
    def own_cores(self) -> float:
        """How many cores the client, the server and its commands kept busy."""
        return sum(self.cpu_spent.astuple()) / self.wall_s


@dataclass(frozen=True)
class Pair:
    """One worker against ``WORKERS``, same workload."""

    name: str
    one: Arm
    many: Arm

    @property
    def ratio(self) -> float:
        return self.many.calls_per_s / self.one.calls_per_s


@dataclass
class WorkersResult:
    pairs: list[Pair] = field(default_factory=list)
    rounds: int = 0
    calls: int = 0
    background_cores: float | None = None  # the machine's load just before the rounds
    notes: list[str] = field(default_factory=list)


async def measure(result: WorkersResult, plan: Plan, log_dir: Path) -> None:
    """Start the six servers, warm every arm up, then interleave ``plan.rounds`` rounds of every arm.

    Besides the headline (SSE, the default) and ``--json-response``, two diagnostics say what limits the
    ratio: the same calls without the sandbox (the commands' cost), and a call refused before anything
    is spawned (the server and the client alone: does the server itself scale over two cores?).
    """
    variants = ((), ("--json-response",), ("--sandbox", "off"))
    servers = [http_server(n, *extra) for extra in variants for n in (1, WORKERS)]
    async with serving(servers, log_dir) as (sse1, sse2, json1, json2, off1, off2):

        def pair(name: str, one: Live, many: Live, arguments: dict[str, Any], check: Check) -> Pair:
            arms = (Arm(live, request(live.port, "echo", arguments), check) for live in (one, many))
            return Pair(name, *arms)

        echo = {"message": "hi"}
        result.pairs = [
            pair("streamable HTTP, SSE (the default)", sse1, sse2, echo, echoed),
            pair("  --json-response", json1, json2, echo, echoed),
            pair("  --sandbox off", off1, off2, echo, echoed),
            pair("  argument rejected (no process)", sse1, sse2, {"message": "-x"}, rejected),
        ]
        every = [arm for pair in result.pairs for arm in (pair.one, pair.many)]
        for arm in every:
            await arm.round(plan.warmup * 2, record=False)
        busy = machine_busy_s()
        await trio.sleep(1.0)
        result.background_cores = machine_busy_s() - busy
        result.rounds, result.calls = plan.rounds, plan.concurrent // 2
        for i in range(plan.rounds):
            for arm in every if i % 2 == 0 else every[::-1]:  # alternate: no arm always follows the same one
                await arm.round(result.calls)


def _cells(arm: Arm) -> list[str]:
    lat = arm.latency
    return [
        f"{arm.calls_per_s:.0f}",
        f"{lat.p50_ms:.0f}/{lat.percentile(99) * 1000:.0f}",
        "+".join(f"{x:.2f}" for x in arm.cpu_ms.astuple()),
        f"{arm.own_cores:.2f}/{arm.busy_cores:.2f}",
    ]


def _table(result: WorkersResult) -> list[str]:
    w = f"{WORKERS}w"
    header = ["", "calls/s 1w", w, "ratio", "p50/p99 ms 1w", w, "CPU ms/call cli+srv+cmd 1w", w, "cores ours/all 1w", w]
    rows = [header]
    for pair in result.pairs:
        (rate1, lat1, cpu1, busy1), (rate2, lat2, cpu2, busy2) = _cells(pair.one), _cells(pair.many)
        rows.append([pair.name, rate1, rate2, f"{pair.ratio:.2f}x", lat1, lat2, cpu1, cpu2, busy1, busy2])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out = []
    for r in rows:
        out.append("  ".join([r[0].ljust(widths[0]), *(c.rjust(n) for c, n in zip(r[1:], widths[1:], strict=True))]))
    out.insert(1, "-" * max(len(line) for line in out))
    return out


def lines(result: WorkersResult) -> list[str]:
    """The report's table for ``--workers``, the target line and the connection splits."""
    if not result.pairs or not result.pairs[0].many.rates:
        return [f"--workers {WORKERS}: not measured", *(f"- workers: {note}" for note in result.notes)]
    calls = f"median of {result.rounds} interleaved rounds of {result.calls} calls"
    out = [
        f"--workers {WORKERS} vs 1, HTTP calls/s @{IN_FLIGHT}: {IN_FLIGHT} connections, raw JSON-RPC client, echo, "
        f"guards raised, sandbox as shipped unless said; {calls}",
        "",
        *_table(result),
        "",
    ]
    sse = result.pairs[0]
    cores = os.cpu_count() or 1
    ok = sse.ratio >= TARGET_WORKERS_SPEEDUP
    out.append(
        f"--workers {WORKERS} / 1, HTTP calls/s @{IN_FLIGHT}: {sse.ratio:.2f}x  target >= {TARGET_WORKERS_SPEEDUP}x  "
        f"{'met' if ok else 'MISSED'}  (with 1 worker our processes already keep {sse.one.own_cores:.2f} of {cores} "
        f"cores busy, so at most {cores / sse.one.own_cores:.2f}x is left; server CPU per call "
        f"{sse.one.cpu_ms.server:.2f} -> {sse.many.cpu_ms.server:.2f} ms)"
    )
    splits = ", ".join("+".join(map(str, s)) for s in sse.many.splits)
    out.append(f"- workers: connections per worker in each round of the SSE row: {splits}")
    if result.background_cores is not None:
        load = result.background_cores
        out.append(f"- workers: the machine's load just before the rounds (servers idle): {load:.2f} cores")
    out += [f"- workers: {note}" for note in result.notes]
    return out
