"""The servers under test, the workloads they run, and the measurements that need a server.

Invariants: every server is a real child process; speed and default-cap memory go through the
real ``mcp.Client`` over the real stdio transport; each check states what a correct answer is,
so a refused or broken call can never be timed as a fast one; every process the timeout tests
start carries a tag, so the caller can always find and kill what a server left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import mcp_types as types
import trio
from _measure import Call, Row, children_with, live_processes_with, poll, rss_mb
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

BENCH_DIR = Path(__file__).resolve().parent
COMPETITOR = "mcp-shell-server"
COMPETITOR_VENV = BENCH_DIR / f".venv-{COMPETITOR}"
BIG_OUTPUT_BYTES = 50 * 1024 * 1024  # what the memory command prints
RAISED_CAP_BYTES = 64 * 1024 * 1024  # an output cap above BIG_OUTPUT_BYTES
LEAK_TIMEOUT_S = 1  # the competitor takes whole seconds only
RETURN_LIMIT_S = 20.0  # how long a timed-out call may take to come back
INSTALL_TIMEOUT_S = 600.0

Mode = Literal["legacy", "auto"]
Check = Callable[[types.CallToolResult], bool]


# --------------------------------------------------------------------------- servers and workloads


@dataclass(frozen=True)
class Server:
    """How to start one MCP server over stdio."""

    label: str  # names its log file
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cmdline_mark: str  # a substring of the server's command line, to find its pid

    @property
    def key(self) -> tuple[object, ...]:
        return (self.argv, tuple(sorted(self.env.items())))


@dataclass(frozen=True)
class Workload:
    """One tool call on one server, and what a correct answer looks like."""

    server: Server
    tool: str
    arguments: Mapping[str, Any]
    check: Check


# The guards stay on (their bookkeeping runs on every call) but must not refuse the benchmark's
# hundreds of calls per second, nor open a circuit on the failures it provokes on purpose.
TRIO_EXEC_GUARDS = ("--rate-limit-rps", "1000000", "--rate-limit-burst", "1000000", "--circuit-threshold", "1000000")


PYTHON_VIEW = tuple(
    arg
    for p in dict.fromkeys(os.path.realpath(p) for p in (sys.prefix, sys.base_prefix))
    for arg in ("--sandbox-ro", p)
)


def trio_exec(*args: str) -> Server:
    # env=os.environ so the server runs exactly as it would from this shell (and finds the venv).
    argv = (sys.executable, "-m", "trio_exec", *TRIO_EXEC_GUARDS, *args)
    return Server("trio-exec", argv, dict(os.environ), "trio_exec")


def shell_server(executable: Path, allow: str, **env: str) -> Server:
    return Server(COMPETITOR, (str(executable),), {**os.environ, "ALLOW_COMMANDS": allow, **env}, COMPETITOR)


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def structured(result: types.CallToolResult) -> dict[str, Any]:
    return result.structured_content or {}


def error_code(result: types.CallToolResult) -> str | None:
    error = structured(result).get("error")
    return error.get("code") if isinstance(error, dict) else None


@contextlib.asynccontextmanager
async def connect(server: Server, mode: Mode, errlog: TextIO) -> AsyncIterator[tuple[Client, int]]:
    """The real SDK client over the real stdio transport, and the server's pid.

    ``Client(StdioServerParameters(...))`` is ``Client(stdio_client(params))``; we build the
    transport ourselves only to send the server's stderr to a log file instead of the terminal.
    """
    params = StdioServerParameters(command=server.argv[0], args=list(server.argv[1:]), env=dict(server.env))
    before = children_with(server.cmdline_mark)
    async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
        new = children_with(server.cmdline_mark) - before
        if len(new) != 1:
            raise RuntimeError(f"expected one new server process matching {server.cmdline_mark!r}, found {new}")
        yield client, new.pop()


async def call_checked(client: Client, work: Workload) -> types.CallToolResult:
    result = await client.call_tool(work.tool, dict(work.arguments))
    if not work.check(result):
        raise RuntimeError(f"unexpected result from {work.tool}: {text_of(result)[:300]!r}")
    return result


def checked_call(client: Client, work: Workload) -> Call:
    async def call() -> None:
        await call_checked(client, work)

    return call


# --------------------------------------------------------------------------- measurements


def floor_call() -> Call:
    """A bare ``trio.run_process(["/usr/bin/echo", "hi"])``: what any trio server pays per command."""
    echo = shutil.which("echo")
    if echo is None:
        raise RuntimeError("no echo on PATH")

    async def call() -> None:
        proc = await trio.run_process([echo, "hi"], capture_stdout=True)
        if proc.stdout != b"hi\n":
            raise RuntimeError(f"echo printed {proc.stdout!r}")

    return call


async def memory(row: Row, work: Workload, errlog: TextIO) -> None:
    """The server's RSS when idle and its peak (VmHWM) over one call that prints 50 MB."""
    async with connect(work.server, "legacy", errlog) as (client, pid):
        row.idle_rss_mb = rss_mb(pid, "VmHWM")
        result = await call_checked(client, work)
        row.peak_rss_mb = rss_mb(pid, "VmHWM")  # before the client closes and the server exits
    stdout = structured(result).get("stdout")
    kept = f", {len(stdout)} chars of stdout returned" if isinstance(stdout, str) else ""
    row.notes.append(
        f"50 MB command, default cap: {'error' if result.is_error else 'ok'}: {text_of(result)[:70]!r}{kept}"
    )


class _LineReader:
    """Reads newline-delimited messages, keeping only the head of each: a reply may be 300+ MB."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buf = bytearray()

    async def next_line(self, keep: int = 200) -> tuple[bytes, int]:
        """The first ``keep`` bytes of the next line and its full length."""
        head, size = bytearray(), 0
        while True:
            end = self._buf.find(b"\n")
            part = self._buf if end < 0 else self._buf[: end + 1]
            head += part[: max(0, keep - len(head))]
            size += len(part)
            if end >= 0:
                del self._buf[: end + 1]
                return bytes(head), size
            self._buf.clear()
            chunk = await self._stream.receive_some(1 << 20)
            if not chunk:
                raise EOFError("the server closed stdout")
            self._buf += chunk


async def raised_cap_memory(row: Row, work: Workload, errlog: TextIO) -> None:
    """Peak RSS over one call whose 50 MB of output is all returned (the cap raised to 64 MiB).

    Driven with raw JSON-RPC (legacy handshake) because the SDK's stdio client splits one huge
    line in quadratic time; this measures the server, not a client. We never parse the reply.
    """
    proc = await trio.lowlevel.open_process(
        list(work.server.argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errlog,
        env=dict(work.server.env),
        start_new_session=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    lines = _LineReader(proc.stdout)

    async def send(message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        await proc.stdin.send_all(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")

    try:
        client_info = {"name": "trio-exec-bench", "version": "0"}
        params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client_info}
        await send({"id": 1, "method": "initialize", "params": params})
        await lines.next_line()
        await send({"method": "notifications/initialized"})
        await send({"id": 2, "method": "tools/call", "params": {"name": work.tool, "arguments": dict(work.arguments)}})
        for _ in range(100):  # skip any notifications before the reply
            head, size = await lines.next_line()
            if b'"id":2' in head:
                break
        if b'"result"' not in head:
            raise RuntimeError(f"the call failed: {head[:150]!r}")
        row.raised_cap_rss_mb = rss_mb(proc.pid, "VmHWM")
        row.notes.append(f"50 MB command, cap 64 MiB: a {size / 1e6:.0f} MB reply")
    finally:
        with trio.CancelScope(shield=True):
            await proc.stdin.aclose()
            with trio.move_on_after(5):
                await proc.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


SPAWNER = """#!/bin/sh
# A command whose children outlive it unless the whole process group is killed.
{python} -c '__import__("time").sleep(300)' "$1" &
{python} -c '__import__("time").sleep(301)' "$1"
"""


def write_spawner(folder: Path) -> Path:
    """An executable that starts a background and a foreground grandchild, both tagged by ``$1``.

    The tag is what we count afterwards (GNU ``sleep`` refuses extra arguments, python does not).
    A script rather than ``sh -c '...'``: mcp-shell-server refuses ``sh`` and ``python3`` whatever
    ALLOW_COMMANDS says, and both servers must run the same workload.
    """
    path = folder / "spawner"
    path.write_text(SPAWNER.format(python=shlex.quote(sys.executable)))
    path.chmod(0o755)
    return path


async def leftovers(row: Row, work: Workload, marker: str, errlog: TextIO) -> None:
    """Call a command that times out after 1 s; count its processes still alive afterwards.

    Counted while the server still runs: a real server runs for days, and when a server is slow to
    exit, the SDK client kills its whole process group, which would hide what it left.
    """
    async with connect(work.server, "legacy", errlog) as (client, _):
        result: types.CallToolResult | None = None
        started = time.perf_counter()
        with trio.move_on_after(RETURN_LIMIT_S):
            result = await call_checked(client, work)
        elapsed = time.perf_counter() - started
        if result is None:
            row.notes.append(f"the timed-out call had not returned after {RETURN_LIMIT_S:.0f} s")
        else:
            row.notes.append(f"the timed-out call returned after {elapsed:.1f} s: {text_of(result)[:70]!r}")
        # Signals already sent land within microseconds; a bounded moment before counting.
        await poll(lambda: not live_processes_with(marker), 1.0)
        row.leftovers = len(live_processes_with(marker))


def kill_all_with(marker: str) -> int:
    """SIGKILL what the benchmark's own commands left behind (found by their unique tag)."""
    pids = live_processes_with(marker)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


# --------------------------------------------------------------------------- the subjects


@dataclass(frozen=True)
class Subject:
    """A server under test: the workloads of each row it fills."""

    name: str
    echo: Workload
    big: Workload
    big_raised_cap: Workload
    sleepy: Workload
    tag: str  # marks the processes ``sleepy`` starts


def trio_exec_subject(spawner: Path, tag: str) -> Subject:
    def echoed(r: types.CallToolResult) -> bool:
        return not r.is_error and structured(r).get("stdout") == "hi\n"

    def stopped(code: str) -> Check:
        return lambda r: r.is_error and error_code(r) == code

    big = f'big|"head -c {BIG_OUTPUT_BYTES} /dev/zero"'
    return Subject(
        name="trio-exec",
        echo=Workload(trio_exec("--cmd", 'echo|"echo {message}"'), "echo", {"message": "hi"}, echoed),
        big=Workload(trio_exec("--cmd", big), "big", {}, stopped("output_limit")),
        big_raised_cap=Workload(trio_exec("--cmd", big, "--max-output-bytes", str(RAISED_CAP_BYTES)), "big", {}, bool),
        sleepy=Workload(
            # The spawner runs this Python by name: shown read-only in the sandbox.
            trio_exec("--cmd", f'sleepy|"{spawner} {{tag}}"', *PYTHON_VIEW),
            "sleepy",
            {"tag": tag, "timeout": LEAK_TIMEOUT_S},
            stopped("timeout"),
        ),
        tag=tag,
    )


def trio_exec_layer(echo: Workload, layer: str) -> Workload:
    """The same echo under another sandbox layer (``off``: none): the difference is what a layer costs."""
    server = Server(f"trio-exec-{layer}", (*echo.server.argv, "--sandbox", layer), echo.server.env, "trio_exec")
    return Workload(server, echo.tool, echo.arguments, echo.check)


def trio_exec_rejected(echo: Workload) -> Workload:
    """The protocol round trip and validation with no process at all: "-x" would be read as an option."""

    def rejected(r: types.CallToolResult) -> bool:
        return r.is_error and error_code(r) == "rejected"

    return Workload(echo.server, echo.tool, {"message": "-x"}, rejected)


def competitor_subject(exe: Path, version: str, spawner: Path, tag: str) -> Subject:
    def echoed(r: types.CallToolResult) -> bool:
        return not r.is_error and text_of(r).strip() == "hi"

    def refused(r: types.CallToolResult) -> bool:
        return r.is_error

    big = {"command": ["head", "-c", str(BIG_OUTPUT_BYTES), "/dev/zero"]}
    raised = shell_server(exe, "head", MCP_SHELL_OUTPUT_LIMIT_BYTES=str(RAISED_CAP_BYTES))
    return Subject(
        name=f"{COMPETITOR} {version}",
        echo=Workload(shell_server(exe, "echo"), "shell_execute", {"command": ["echo", "hi"]}, echoed),
        big=Workload(shell_server(exe, "head"), "shell_execute", big, refused),
        big_raised_cap=Workload(raised, "shell_execute", big, bool),
        sleepy=Workload(
            shell_server(exe, str(spawner)),
            "shell_execute",
            {"command": [str(spawner), tag], "timeout": LEAK_TIMEOUT_S},
            refused,
        ),
        tag=tag,
    )


def install_competitor() -> tuple[Path | None, str]:
    """Create ``bench/.venv-mcp-shell-server`` holding the competitor: (its executable, version) or (None, why not)."""
    python, exe = COMPETITOR_VENV / "bin" / "python", COMPETITOR_VENV / "bin" / COMPETITOR
    steps = [
        ([sys.executable, "-m", "venv", str(COMPETITOR_VENV)], python.exists()),
        ([str(python), "-m", "pip", "install", "--quiet", COMPETITOR], exe.exists()),
    ]
    for argv, done in steps:
        if done:
            continue
        print(f"running {shlex.join(argv)} ...", file=sys.stderr)
        try:
            subprocess.run(argv, check=True, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.CalledProcessError as e:
            last = (e.stderr or "").strip().splitlines()
            return None, f"{argv[2]} failed: {last[-1] if last else e}"
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"{argv[2]} failed: {e}"
    if not exe.exists():
        return None, f"installed, but {exe} is missing"
    probe = f"import importlib.metadata as m; print(m.version({COMPETITOR!r}))"
    version = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    return exe, version.stdout.strip() or "?"
