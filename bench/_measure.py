"""How the benchmark measures: latency statistics, CPU accounting, interleaved speed runs, /proc.

Invariants: a speed measurement never changes what it measures (the calls are the caller's);
every wait on /proc is bounded; nothing here starts or stops a process.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import trio

IN_FLIGHT = 16

Call = Callable[[], Awaitable[None]]


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stats:
    """Latency samples in seconds, summarised in milliseconds."""

    samples_s: tuple[float, ...]

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile in seconds (linear interpolation between closest ranks)."""
        xs = sorted(self.samples_s)
        if not xs:
            return math.nan
        k = (len(xs) - 1) * q / 100
        lo = math.floor(k)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)

    @property
    def p50_ms(self) -> float:
        return self.percentile(50) * 1000

    @property
    def p95_ms(self) -> float:
        return self.percentile(95) * 1000


@dataclass(frozen=True)
class Plan:
    """How many calls each speed measurement makes, and in how many interleaved slices."""

    warmup: int
    sequential: int
    concurrent: int
    rounds: int  # sequential calls are taken in this many slices, round-robin over the rows
    starts: int = 9  # interleaved rounds of cold starts (``_startup.py``), each starting every program once


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of the client (this process), of the server and of the commands it reaped."""

    client: float = 0.0
    server: float = 0.0
    commands: float = 0.0

    def astuple(self) -> tuple[float, float, float]:
        return (self.client, self.server, self.commands)

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(*(a - b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def per_call_ms(self, calls: int) -> Cpu:
        return Cpu(*(x * 1000 / calls for x in self.astuple()))


@dataclass(frozen=True)
class Speed:
    """One row's speed: sequential latency, CPU per sequential call, throughput with 16 in flight."""

    latency: Stats
    cpu_ms: Cpu  # per sequential call
    calls_per_s: float


@dataclass
class Row:
    """One line of the table; a field left ``None`` was not measured for that row."""

    name: str
    speed: Speed | None = None
    idle_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    raised_cap_rss_mb: float | None = None
    leftovers: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Contender:
    """One row's speed, measured in slices that alternate with the other rows' slices.

    Interleaving matters on a small shared machine: a burst of load from elsewhere then
    slows every row alike instead of whichever row happened to be running.
    """

    row: Row
    call: Call
    cpu: Callable[[], Cpu]
    samples: list[float] = field(default_factory=list)
    cpu_spent: Cpu = field(default_factory=Cpu)
    concurrent_calls: int = 0
    concurrent_s: float = 0.0

    async def warm_up(self, calls: int) -> None:
        for _ in range(calls):
            await self.call()

    async def sequential(self, calls: int) -> None:
        before = self.cpu()
        for _ in range(calls):
            started = time.perf_counter()
            await self.call()
            self.samples.append(time.perf_counter() - started)
        self.cpu_spent += self.cpu() - before

    async def concurrent(self, calls: int) -> None:
        """``calls`` calls made by 16 workers pulling from one counter."""
        issued = 0

        async def worker() -> None:
            nonlocal issued
            while issued < calls:
                issued += 1
                await self.call()

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(IN_FLIGHT):
                nursery.start_soon(worker)
        self.concurrent_s += time.perf_counter() - started
        self.concurrent_calls += calls

    def speed(self) -> Speed:
        cpu_ms = self.cpu_spent.per_call_ms(len(self.samples))
        return Speed(Stats(tuple(self.samples)), cpu_ms, self.concurrent_calls / self.concurrent_s)


async def race(contenders: list[Contender], plan: Plan) -> None:
    """Warm every contender up, then measure them slice by slice, round-robin."""
    for c in contenders:
        await c.warm_up(plan.warmup)
    for _ in range(plan.rounds):
        for c in contenders:
            await c.sequential(plan.sequential // plan.rounds)
    for _ in range(2):  # two large slices: small ones would be mostly ramp-up and ramp-down
        for c in contenders:
            await c.concurrent(plan.concurrent // 2)
    for c in contenders:
        c.row.speed = c.speed()


# --------------------------------------------------------------------------- /proc


def _status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` as a dict; empty when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def live_processes_with(marker: str) -> list[int]:
    """Pids of live (not zombie) processes other than us whose command line contains ``marker``."""
    me = os.getpid()
    return [
        pid
        for pid in _pids()
        if pid != me and marker in _cmdline(pid) and not _status(pid).get("State", "Z").startswith("Z")
    ]


def children_with(marker: str) -> set[int]:
    """Pids of our live children whose command line contains ``marker`` (the stdio client spawns servers)."""
    me = str(os.getpid())
    return {pid for pid in live_processes_with(marker) if _status(pid).get("PPid") == me}


def rss_mb(pid: int, key: Literal["VmHWM", "VmRSS"]) -> float:
    """A memory figure of ``/proc/<pid>/status`` in MiB."""
    value = _status(pid).get(key)
    if value is None:
        raise RuntimeError(f"process {pid} has no {key} (gone?)")
    return int(value.split()[0]) / 1024  # the kernel reports kB


def cpu_of(*server_pids: int) -> Cpu:
    """CPU so far of this process, of the server's processes and of the children they have reaped.

    A server with ``--workers`` is several processes (the supervisor and its workers): their sum.
    """
    server = commands = 0.0
    for pid in server_pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        utime, stime, cutime, cstime = (int(x) / os.sysconf("SC_CLK_TCK") for x in fields[11:15])
        server, commands = server + utime + stime, commands + cutime + cstime
    return Cpu(time.process_time(), server, commands)


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (``/proc/stat``: user, nice, system, irq, softirq).

    Unlike ``cpu_of`` this also sees the kernel's own threads (a sandbox's network namespace is released
    in a workqueue, after the command is reaped) and whatever else runs on the machine.
    """
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def connections_per_process(port: int, pids: Sequence[int]) -> list[int]:
    """How many established TCP connections to local ``port`` each of ``pids`` holds (IPv4 loopback).

    The kernel spreads connections over ``SO_REUSEPORT`` sockets by a hash of the 4-tuple, so this is
    how a multi-worker server's load was split.
    """
    established = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "01":  # local address, state ESTABLISHED
                established.add(fields[9])  # the socket's inode
    return [len(_socket_inodes(pid) & established) for pid in pids]


def cpu_in_process() -> Cpu:
    """CPU so far of this process and of the children it has reaped (the floor has no server)."""
    t = os.times()
    return Cpu(time.process_time(), 0.0, t.children_user + t.children_system)


async def poll(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Whether ``predicate`` became true within ``timeout_s``; /proc has no change notification."""
    with trio.move_on_after(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polling /proc, there is no event to wait on
            await trio.sleep(0.02)
        return True
    return False
