"""Benchmark trio-exec against a bare ``trio.run_process`` floor and against mcp-shell-server.

One command prints one table: per-call latency (p50/p95 of sequential calls), throughput
(calls/s with 16 in flight) and CPU per call for the floor, for trio-exec over stdio (both
protocol eras) and for mcp-shell-server over stdio; each server's peak RSS while a command
prints 50 MB; and how many processes a timed-out command leaves behind; then ``--workers 2`` against one
worker over Streamable HTTP (``_workers.py``: calls/s with 16 in flight from a raw JSON-RPC client); then
background jobs (``_jobs.py``): the server's memory while 20 jobs each print 50 MB, and ``job_output``'s
latency for a 64 KiB page; and, measured first, cold starts (``_startup.py``): spawn to the first ``tools/list``
answer over stdio, trio-exec against mcp-shell-server, and ``--dry-run``'s wall time.

Invariants: every server is a real child process; speed and default-cap memory go through
the real ``mcp.Client`` over the real stdio transport (``--workers`` is HTTP-only and uses a raw
client, so that the client takes as little as possible of the cores the workers share); every wait
is bounded; whatever a timed-out command leaves behind is killed before we exit; a competitor that
cannot be installed or run is reported as unavailable, never fatal.

Run it with the project's virtualenv (the one that has trio-exec installed)::

    python bench/run.py [--quick]

This module runs the measurements and prints the report; ``_measure.py`` holds the statistics,
CPU accounting and /proc probes, ``_servers.py`` the servers, their workloads and checks.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TextIO

import trio
from _jobs import JobsResult, jobs_server
from _jobs import lines as jobs_lines
from _jobs import measure as measure_jobs
from _measure import IN_FLIGHT, Contender, Plan, Row, cpu_in_process, cpu_of, race
from _servers import (
    BENCH_DIR,
    COMPETITOR,
    Mode,
    Server,
    Subject,
    Workload,
    checked_call,
    competitor_subject,
    connect,
    floor_call,
    install_competitor,
    kill_all_with,
    leftovers,
    memory,
    raised_cap_memory,
    trio_exec_layer,
    trio_exec_rejected,
    trio_exec_subject,
    write_spawner,
)
from _startup import StartupResult
from _startup import arms as startup_arms
from _startup import lines as startup_lines
from _startup import measure as measure_startup
from _startup import verdicts as startup_verdicts
from _workers import WorkersResult
from _workers import lines as workers_lines
from _workers import measure as measure_workers
from mcp import Client

SECTION_TIMEOUT_S = 180.0  # no single measurement may take longer

TARGET_OVERHEAD_MS = 1.5
TARGET_SPEEDUP = 2.0
TARGET_RSS_MB = 100.0
TARGET_SANDBOX_MS = 3.0  # what the default sandbox (bwrap) may add at p50


# --------------------------------------------------------------------------- orchestration


async def guarded(row: Row, what: str, body: Callable[[], Awaitable[None]]) -> None:
    """Run one measurement under a deadline; a failure becomes a note on the row, not a crash."""
    try:
        with trio.fail_after(SECTION_TIMEOUT_S):
            await body()
    except Exception as e:  # a broken competitor must not stop the report
        row.notes.append(f"{what} unavailable: {describe(e)}")


def describe(e: BaseException) -> str:
    """The first leaf of an exception (group), in one short line."""
    while isinstance(inner := getattr(e, "exceptions", None), tuple) and inner:  # unwrap nursery groups
        e = inner[0]
    return f"{type(e).__name__}: {e}"[:300]


class Bench:
    """The measurements of one run; server logs go to ``log_dir``."""

    def __init__(self, plan: Plan, raised_cap: bool, log_dir: Path) -> None:
        self.plan = plan
        self.raised_cap = raised_cap
        self.log_dir = log_dir

    def errlog(self, stack: contextlib.ExitStack | contextlib.AsyncExitStack, server: Server) -> TextIO:
        """A log file for a server's stderr (a file: logging then costs what it costs in production)."""
        return stack.enter_context(open(self.log_dir / f"{server.label}.log", "a"))

    async def speed(self, floor: Row, rows: list[tuple[Row, Workload, Mode]]) -> None:
        """The floor's and every row's speed, interleaved; a server that will not start leaves a note."""
        print("measuring speed (all rows interleaved) ...", file=sys.stderr)
        contenders = [Contender(floor, floor_call(), cpu_in_process)]
        async with contextlib.AsyncExitStack() as stack:
            clients: dict[tuple[object, ...], tuple[Client, int]] = {}
            for row, work, mode in rows:
                key = (*work.server.key, mode)
                try:
                    if key not in clients:  # rows on the same server and era share one client
                        log = self.errlog(stack, work.server)
                        clients[key] = await stack.enter_async_context(connect(work.server, mode, log))
                except Exception as e:
                    row.notes.append(f"speed unavailable: {describe(e)}")
                    continue
                client, pid = clients[key]
                if mode == "auto":  # say which era "auto" settled on
                    row.name += f" -> {client.protocol_version}"
                contenders.append(Contender(row, checked_call(client, work), functools.partial(cpu_of, pid)))
            await race(contenders, self.plan)

    async def robustness(self, row: Row, subject: Subject) -> None:
        """Peak RSS over a 50 MB command (default cap, then raised) and processes left after a timeout."""
        print(f"measuring {subject.name}: memory and cleanup ...", file=sys.stderr)
        with contextlib.ExitStack() as stack:
            log = self.errlog(stack, subject.echo.server)
            await guarded(row, "memory", lambda: memory(row, subject.big, log))
            if self.raised_cap:
                await guarded(row, "memory (cap 64 MiB)", lambda: raised_cap_memory(row, subject.big_raised_cap, log))
            await guarded(row, "cleanup", lambda: leftovers(row, subject.sleepy, subject.tag, log))

    async def startup(self, competitor: Path | None, competitor_name: str) -> StartupResult:
        """Cold starts to the first ``tools/list`` over stdio, both servers, and ``--dry-run``, interleaved."""
        print("measuring cold starts (all programs interleaved) ...", file=sys.stderr)
        result = StartupResult()
        try:
            with trio.fail_after(SECTION_TIMEOUT_S * 2):
                await startup_arms(result, competitor, competitor_name)
                await measure_startup(result, self.plan.starts, self.log_dir)
        except Exception as e:
            result.notes.append(f"unavailable: {describe(e)}")
        return result

    async def workers(self) -> WorkersResult:
        """``--workers 2`` against one worker: HTTP calls/s with 16 in flight, CPU and latency."""
        print("measuring --workers over HTTP (1 and 2 workers interleaved) ...", file=sys.stderr)
        result = WorkersResult()
        try:
            with trio.fail_after(SECTION_TIMEOUT_S * 2):
                await measure_workers(result, self.plan, self.log_dir)
        except Exception as e:
            result.notes.append(f"unavailable: {describe(e)}")
        return result

    async def jobs(self) -> JobsResult:
        """Background jobs: memory with many floods at once, and one page's latency."""
        print("measuring background jobs ...", file=sys.stderr)
        result = JobsResult()
        server = jobs_server(self.log_dir)
        with contextlib.ExitStack() as stack:
            log = self.errlog(stack, server)
            try:
                with trio.fail_after(SECTION_TIMEOUT_S * 2):
                    await measure_jobs(result, server, self.plan.sequential, log)
            except Exception as e:
                result.notes.append(f"unavailable: {describe(e)}")
        return result


@dataclass
class Report:
    floor: Row
    ours: Row
    theirs: Row
    rows: list[Row]
    unboxed: Row | None = None
    landlock: Row | None = None
    jobs: JobsResult | None = None
    workers: WorkersResult | None = None
    startup: StartupResult | None = None


async def run_all(plan: Plan, raised_cap: bool, competitor: tuple[Path | None, str], log_dir: Path) -> Report:
    bench = Bench(plan, raised_cap, log_dir)
    tag = f"trio-exec-bench-orphan-{os.getpid()}"  # every process our timeout tests start carries it
    spawner = write_spawner(log_dir)
    ours = trio_exec_subject(spawner, f"{tag}-trio-exec")
    exe, status = competitor
    theirs = None if exe is None else competitor_subject(exe, status, spawner, f"{tag}-competitor")

    floor = Row("floor: trio.run_process(echo hi)")
    legacy, auto = Row("trio-exec stdio (legacy)"), Row("trio-exec stdio (auto)")
    landlock = Row("  trio-exec stdio (legacy), --sandbox landlock")
    unboxed = Row("  trio-exec stdio (legacy), --sandbox off")
    rejected = Row("  trio-exec, argument rejected (no process)")
    other = Row(f"{theirs.name if theirs else COMPETITOR} stdio (legacy)")
    rows = [floor, legacy, auto, landlock, unboxed, rejected, other]
    speed_rows: list[tuple[Row, Workload, Mode]] = [
        (legacy, ours.echo, "legacy"),
        (auto, ours.echo, "auto"),
        (landlock, trio_exec_layer(ours.echo, "landlock"), "legacy"),
        (unboxed, trio_exec_layer(ours.echo, "off"), "legacy"),
        (rejected, trio_exec_rejected(ours.echo), "legacy"),
    ]
    if theirs is None:
        other.notes.append(f"unavailable: {status}")
    else:
        speed_rows.append((other, theirs.echo, "legacy"))  # an mcp 1.x server: legacy handshake only
    try:
        # First, while no other server of ours runs and no sandbox of ours is being torn down.
        startup = await bench.startup(exe, theirs.name if theirs else COMPETITOR)
        try:
            with trio.fail_after(SECTION_TIMEOUT_S * len(rows)):
                await bench.speed(floor, speed_rows)
        except Exception as e:
            for row in rows:
                row.notes.append(f"speed unavailable: {describe(e)}")
        workers = await bench.workers()
        await bench.robustness(legacy, ours)
        if theirs is not None:
            await bench.robustness(other, theirs)
        jobs = await bench.jobs()
    finally:
        killed = kill_all_with(tag)
        if killed:
            print(f"killed {killed} process(es) that timed-out commands left behind", file=sys.stderr)
    return Report(floor, legacy, other, rows, unboxed, landlock, jobs, workers, startup)


# --------------------------------------------------------------------------- report


def machine() -> list[str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    versions = ", ".join(f"{d} {metadata.version(d)}" for d in ("trio-exec", "trio", "mcp"))
    repo = BENCH_DIR.parent
    git = subprocess.run(
        ["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"{datetime.datetime.now().isoformat(timespec='minutes')}  {os.cpu_count()} cores ({model}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"{versions} (git {git.stdout.strip() or '?'}); load average {load}",
    ]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[Row]) -> str:
    header = (
        "",
        "p50 ms",
        "p95 ms",
        f"calls/s @{IN_FLIGHT}",
        "CPU ms/call cli+srv+cmd",
        "RSS MB idle>peak",
        "peak, cap 64M",
        "left after timeout",
    )
    lines = [header]
    for r in rows:
        s = r.speed
        rss = "-" if r.peak_rss_mb is None else f"{r.idle_rss_mb or 0:.0f} > {r.peak_rss_mb:.0f}"
        cpu = "-" if s is None else "+".join(f"{x:.2f}" for x in s.cpu_ms.astuple())
        lines.append(
            (
                r.name,
                _fmt(None if s is None else s.latency.p50_ms, ".2f"),
                _fmt(None if s is None else s.latency.p95_ms, ".2f"),
                _fmt(None if s is None else s.calls_per_s, ".0f"),
                cpu,
                rss,
                _fmt(r.raised_cap_rss_mb, ".0f"),
                "-" if r.leftovers is None else str(r.leftovers),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for line in lines:
        cells = [line[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True))]
        out.append("  ".join(cells).rstrip())
    out.insert(1, "-" * max(len(line) for line in out))
    return "\n".join(out)


def verdicts(report: Report) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    floor, ours, theirs = report.floor.speed, report.ours.speed, report.theirs.speed
    out = []
    if floor and ours:
        over = ours.latency.p50_ms - floor.latency.p50_ms
        out.append(f"trio-exec p50 minus floor p50:   {over:+7.2f} ms  target <= {TARGET_OVERHEAD_MS} ms")
        out[-1] += f"  {verdict(over <= TARGET_OVERHEAD_MS)}"
    unboxed = report.unboxed.speed if report.unboxed else None
    if ours and unboxed:
        added = ours.latency.p50_ms - unboxed.latency.p50_ms
        out.append(f"sandbox (bwrap) adds at p50:     {added:+7.2f} ms  target <= {TARGET_SANDBOX_MS} ms")
        out[-1] += f"  {verdict(added <= TARGET_SANDBOX_MS)}"
        cpu = ours.cpu_ms - unboxed.cpu_ms
        out[-1] += f"  (CPU per call: server {cpu.server:+.2f} ms, command {cpu.commands:+.2f} ms)"
    landlock = report.landlock.speed if report.landlock else None
    if landlock and unboxed:
        added = landlock.latency.p50_ms - unboxed.latency.p50_ms
        cpu = landlock.cpu_ms - unboxed.cpu_ms
        out.append(f"sandbox (landlock) adds at p50:  {added:+7.2f} ms  (the fallback layer; CPU per call: server "
                   f"{cpu.server:+.2f} ms, command {cpu.commands:+.2f} ms)")  # fmt: skip
    if ours and theirs:
        ratio = ours.calls_per_s / theirs.calls_per_s
        out.append(f"calls/s @{IN_FLIGHT}, trio-exec / {COMPETITOR}: {ratio:.2f}x  target >= {TARGET_SPEEDUP}x")
        out[-1] += f"  {verdict(ratio >= TARGET_SPEEDUP)}"
    else:
        out.append(f"calls/s @{IN_FLIGHT}, trio-exec / {COMPETITOR}: not measured")
    if report.ours.peak_rss_mb is not None:
        peak = report.ours.peak_rss_mb
        out.append(f"trio-exec peak RSS, 50 MB printed: {peak:5.0f} MB  target < {TARGET_RSS_MB:.0f} MB")
        out[-1] += f"  {verdict(peak < TARGET_RSS_MB)}"
    if report.ours.leftovers is not None:
        left = report.ours.leftovers
        out.append(f"trio-exec processes left after a timeout: {left}  target 0  {verdict(left == 0)}")
    if report.startup is not None:
        out += startup_verdicts(report.startup)
    return out


def render(report: Report, plan: Plan, header: list[str], log_dir: Path) -> str:
    calls = f"{plan.sequential} sequential calls after {plan.warmup} warm-up calls"
    out = ["", *header, f"{calls}; {plan.concurrent} calls {IN_FLIGHT} at a time", "", table(report.rows), ""]
    if report.startup is not None:
        out += [*startup_lines(report.startup), ""]
    out += verdicts(report)
    if report.workers is not None:
        out += ["", *workers_lines(report.workers)]
    if report.jobs is not None:
        out += ["", *jobs_lines(report.jobs, plan.sequential)]
    notes = [f"- {r.name.strip()}: {n}" for r in report.rows for n in r.notes]
    if notes:
        out += ["", *notes]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    out += ["", f"server logs: {log_dir}; load average now {load}"]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark trio-exec against its floor and mcp-shell-server.")
    parser.add_argument("--quick", action="store_true", help="fewer calls, no 64 MiB-cap run (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        plan = Plan(warmup=20, sequential=60, concurrent=100, rounds=3, starts=3)
    else:
        plan = Plan(warmup=20, sequential=300, concurrent=400, rounds=5)
    header = machine()
    competitor = install_competitor()
    log_dir = Path(tempfile.mkdtemp(prefix="trio-exec-bench-"))
    report = trio.run(run_all, plan, not args.quick, competitor, log_dir)
    print(render(report, plan, header, log_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
