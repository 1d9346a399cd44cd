"""Background jobs: the server's memory while 20 jobs each print 50 MB, and ``job_output``'s latency for one page.

A job keeps at most ``--job-output-bytes`` (8 MiB) per stream, the head and the tail, whatever it prints, so
20 jobs of 50 MB each should cost the server about 20 x 8 MiB over its idle size, not 1 GB. The jobs run
``seq 1 6700000`` (52 MB of text, no shell, so no ``--allow-dangerous``) through the real client over stdio;
each ends before the peak is read, and every page read is checked for its size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from _measure import Stats, rss_mb
from _servers import Server, connect, structured, text_of, trio_exec
from mcp import Client

JOBS = 20
FLOOD = "seq 1 6700000"  # 52,488,896 bytes of numbers, one per line
FLOOD_BYTES = 52_488_896
PAGE_BYTES = 64 * 1024
TARGET_JOBS_RSS_MB = 300.0


@dataclass
class JobsResult:
    idle_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    kept_mb: float | None = None  # of one job's stdout, head and tail
    page: Stats | None = None
    notes: list[str] = field(default_factory=list)


def jobs_server(folder: Path) -> Server:
    config = folder / "jobs.toml"
    config.write_text(f'[tools.flood]\ntemplate = "{FLOOD}"\nbackground = true\n')
    server = trio_exec("--config", str(config), "--max-jobs", str(JOBS), "--max-jobs-per-client", str(JOBS))
    return Server("trio-exec-jobs", server.argv, server.env, server.cmdline_mark)


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {text_of(result)[:300]!r}")
    return structured(result)


async def measure(result: JobsResult, server: Server, pages: int, errlog: TextIO) -> None:
    """Start ``JOBS`` floods at once, wait for their ends, read the peak; then time ``pages`` page reads."""
    async with connect(server, "legacy", errlog) as (client, pid):
        result.idle_rss_mb = rss_mb(pid, "VmHWM")
        ids = [(await _call(client, "flood", {"background": True}))["job"]["id"] for _ in range(JOBS)]
        for job_id in ids:
            while True:  # each wait is the server's (job_output waits for the end); a wait ends within 300 s
                end = await _call(client, "job_output", {"id": job_id, "wait_s": 120, "until": "end", "max_bytes": 1})
                if end["job"]["state"] != "working":
                    break
            job = end["job"]
            if job["state"] != "completed" or job["stdout_bytes"] != FLOOD_BYTES:
                raise RuntimeError(f"job {job_id} ended {job['state']} after {job['stdout_bytes']} bytes: {job}")
        result.peak_rss_mb = rss_mb(pid, "VmHWM")
        kept = FLOOD_BYTES - job["stdout_dropped"]
        result.kept_mb = kept / 2**20
        samples = []
        for i in range(pages):
            offset = (i * PAGE_BYTES) % (kept // 2 - PAGE_BYTES)  # inside the kept head
            started = time.perf_counter()
            page = await _call(client, "job_output", {"id": ids[0], "offset": offset, "max_bytes": PAGE_BYTES})
            samples.append(time.perf_counter() - started)
            if len(page["output"]) != PAGE_BYTES:
                raise RuntimeError(f"a page of {len(page['output'])} characters, not {PAGE_BYTES}")
        result.page = Stats(tuple(samples))


def lines(result: JobsResult, pages: int) -> list[str]:
    """The report's lines for the jobs."""
    out = []
    if result.peak_rss_mb is not None:
        ok = result.peak_rss_mb < TARGET_JOBS_RSS_MB
        out.append(
            f"{JOBS} jobs x 50 MB printed, server RSS idle > peak: {result.idle_rss_mb or 0:.0f} > "
            f"{result.peak_rss_mb:.0f} MB  target < {TARGET_JOBS_RSS_MB:.0f} MB  {'met' if ok else 'MISSED'}"
            f"  ({result.kept_mb:.1f} MB kept per job: --job-output-bytes, head and tail)"
        )
    if result.page is not None:
        out.append(
            f"job_output, one 64 KiB page: p50 {result.page.p50_ms:.2f} ms, p95 {result.page.p95_ms:.2f} ms "
            f"({pages} reads over the real client, stdio)"
        )
    out += [f"- jobs: {note}" for note in result.notes]
    return out
