"""Cold start: from spawning a server to its first ``tools/list`` answer over stdio; and ``--dry-run``.

Each start is a fresh process driven by a raw stdio client: the three messages a client sends first
(``initialize`` for the legacy era 2025-06-18, ``notifications/initialized``, ``tools/list``) are written
to its stdin at once, as JSON lines, and the clock stops when the answer with id 2 (``tools/list``) arrives
on its stdout; the answer is parsed and must list the server's tool. Then stdin is closed and the server
reaped (killed if it does not exit within ``STOP_TIMEOUT_S``), before the next start. No SDK client: it
would add its own import and its own start-up to what we measure, which is the server's.

The diagnostics say where a start goes: ``python -c pass`` in each virtualenv (the interpreter, with each
venv's ``.pth`` files), and ``python -c "import mcp.server.lowlevel.server"`` in each (the SDK each server is
built on: mcp 2.x in ours, mcp 1.x in the competitor's). A server cannot start faster than its SDK imports
without changing the SDK (or answering before importing it), so "our SDK's import / their whole start" is
the ratio's floor. The diagnostics print one empty line when done, and the clock stops at it, as it stops at
a server's answer: an exit would add the interpreter's teardown (80-120 ms for the SDK's ~580 modules), which
no server pays before it answers. ``--dry-run`` is timed to its exit: that is what its user waits for.
Every start is also timed to its exit (for a server: after its stdin was closed), a diagnostic column.

Interleaved: one untimed round warms the page cache and the bytecode caches, then every round starts each
program once, in an order that alternates from round to round (a burst of load from elsewhere then slows
every row alike, and no row always follows the same one); the report takes medians.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TextIO

import trio
from _servers import COMPETITOR, shell_server

TARGET_COLD_START_RATIO = 1.3  # trio-exec's start / mcp-shell-server's, medians
TARGET_DRY_RUN_MS = 120.0
START_TIMEOUT_S = 30.0  # a start (or a run to exit) that takes longer is a failure
STOP_TIMEOUT_S = 10.0
PROTOCOL = "2025-06-18"
SDK_IMPORT = "import mcp.server.lowlevel.server"
ECHO = 'echo|"echo {message}"'
READY = "print(flush=True)"  # the diagnostics' first line: the clock stops there, as at a server's answer

Until = Literal["tools/list", "line", "exit"]

# What a client writes first; the server may read them all in one chunk, as it would from a fast client.
HANDSHAKE = b"".join(
    json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n"
    for message in (
        {
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "trio-exec-bench", "version": "0"},
            },
        },
        {"method": "notifications/initialized"},
        {"id": 2, "method": "tools/list"},
    )
)


@dataclass
class Arm:
    """One program started once per round, timed until it is ready: ``until`` says what that is.

    ``tools/list``: its answer arrived (then stdin is closed); ``line``: the program printed its first line
    (after its imports, before the interpreter's teardown); ``exit``: it exited. Every start is also timed to
    the program's exit, which must be a success.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    until: Until
    tool: str = ""  # for ``tools/list``: a tool the answer must list
    samples: list[float] = field(default_factory=list)  # seconds to ready
    exits: list[float] = field(default_factory=list)  # seconds to exit
    failure: str | None = None  # why the arm stopped being measured

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.samples) * 1000

    @property
    def max_ms(self) -> float:
        return max(self.samples) * 1000

    @property
    def exit_ms(self) -> float:
        return statistics.median(self.exits) * 1000


@dataclass
class StartupResult:
    ours: Arm | None = None  # trio-exec to its first tools/list
    theirs: Arm | None = None  # mcp-shell-server to its first tools/list
    our_sdk: Arm | None = None
    their_sdk: Arm | None = None
    dry_run: Arm | None = None
    arms: list[Arm] = field(default_factory=list)  # every arm, in the report's order
    rounds: int = 0
    notes: list[str] = field(default_factory=list)


async def _mcp_version(python: Path) -> str:
    """The version of mcp installed in another virtualenv."""
    probe = "import importlib.metadata as m; print(m.version('mcp'))"
    with trio.move_on_after(60):
        found = await trio.run_process([str(python), "-c", probe], capture_stdout=True, check=False)
        return found.stdout.decode().strip() or "?"
    return "?"


async def arms(result: StartupResult, competitor: Path | None, competitor_name: str) -> None:
    """The programs to start: the two servers, the diagnostics and ``--dry-run`` (the competitor's if installed)."""
    env = dict(os.environ)  # as from this shell (the venv is found by the interpreter's path)

    def run(name: str, *argv: str | Path, until: Until = "line") -> Arm:
        return Arm(name, tuple(map(str, argv)), env, until)

    trio_exec = (sys.executable, "-m", "trio_exec", "--cmd", ECHO)  # as shipped: sandbox on, default guards
    result.ours = Arm("trio-exec: first tools/list", trio_exec, env, "tools/list", "echo")
    result.dry_run = run("trio-exec --dry-run (to its exit)", *trio_exec, "--dry-run", until="exit")
    ours_pass = run("  python -c pass, our venv (the interpreter)", sys.executable, "-c", READY)
    our_sdk = f"  our venv: {SDK_IMPORT} (mcp {metadata.version('mcp')})"
    result.our_sdk = run(our_sdk, sys.executable, "-c", f"{SDK_IMPORT}; {READY}")
    result.arms = [result.ours]
    if competitor is None:
        result.notes.append(f"{COMPETITOR}: not installed, so no ratio")
        result.arms += [ours_pass, result.our_sdk, result.dry_run]
        return
    server = shell_server(competitor, "echo")  # as the other sections start it
    result.theirs = Arm(f"{competitor_name}: first tools/list", server.argv, server.env, "tools/list", "shell_execute")
    python = competitor.parent / "python"  # the entry point's venv
    version = await _mcp_version(python)
    result.their_sdk = run(f"  their venv: {SDK_IMPORT} (mcp {version})", python, "-c", f"{SDK_IMPORT}; {READY}")
    theirs_pass = run("  python -c pass, their venv", python, "-c", READY)
    result.arms += [result.theirs, ours_pass, theirs_pass, result.our_sdk, result.their_sdk, result.dry_run]


async def _reap(proc: trio.Process) -> None:
    """Wait for the program (bounded), then kill its process group: nothing it started may outlive the start."""
    with trio.CancelScope(shield=True):
        with trio.move_on_after(STOP_TIMEOUT_S):
            await proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything it started, if it would not exit
        await proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                await stream.aclose()


async def _start(arm: Arm, errlog: TextIO) -> tuple[float, float]:
    """Seconds from spawning the program until it is ready, and until it exited (stdout: a pipe or /dev/null)."""
    piped = subprocess.PIPE if arm.until != "exit" else subprocess.DEVNULL
    started = time.perf_counter()
    proc = await trio.lowlevel.open_process(
        list(arm.argv),
        stdin=subprocess.PIPE if arm.until == "tools/list" else subprocess.DEVNULL,
        stdout=piped,
        stderr=errlog,
        env=dict(arm.env),
        start_new_session=True,
    )
    try:
        with trio.fail_after(START_TIMEOUT_S):
            if proc.stdin is not None and proc.stdout is not None:  # tools/list
                await proc.stdin.send_all(HANDSHAKE)
                answer = await _answer(proc.stdout, 2)
                ready = time.perf_counter() - started
                await proc.stdin.aclose()  # the server's cue to exit
                tools = [tool.get("name") for tool in (answer.get("result") or {}).get("tools", [])]
                if arm.tool not in tools:
                    raise RuntimeError(f"tools/list did not list {arm.tool!r}: {json.dumps(answer)[:200]}")
            elif proc.stdout is not None:  # line
                if await proc.stdout.receive_some(1) != b"\n":
                    raise RuntimeError("the program printed something else than its ready line, or nothing")
                ready = time.perf_counter() - started
        with trio.fail_after(STOP_TIMEOUT_S):
            await proc.wait()
        exited = time.perf_counter() - started
    finally:
        await _reap(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"exited with {proc.returncode}")
    if arm.until == "exit":
        ready = exited
    return ready, exited


async def _answer(stdout: trio.abc.ReceiveStream, id_: int) -> dict[str, Any]:
    """The first JSON-RPC message on ``stdout`` with this id (the ``initialize`` answer comes first)."""
    buf = bytearray()
    while True:
        chunk = await stdout.receive_some(65536)
        if not chunk:
            raise EOFError("the server closed stdout before answering tools/list")
        buf += chunk
        while (end := buf.find(b"\n")) >= 0:
            message = json.loads(bytes(buf[:end]))
            del buf[: end + 1]
            if isinstance(message, dict) and message.get("id") == id_:
                return message


async def measure(result: StartupResult, rounds: int, log_dir: Path) -> None:
    """One untimed round, then ``rounds`` timed ones, each starting every arm once in alternating order."""
    result.rounds = rounds
    with (log_dir / "startup.log").open("a") as errlog:  # the children keep their own copies
        for i in range(rounds + 1):
            order = result.arms if i % 2 == 0 else result.arms[::-1]
            for arm in order:
                if arm.failure is not None:
                    continue
                try:
                    ready, exited = await _start(arm, errlog)
                except Exception as e:  # one broken program must not stop the others
                    arm.failure = f"{type(e).__name__}: {e}"[:300]
                    continue
                if i > 0:
                    arm.samples.append(ready)
                    arm.exits.append(exited)


def _table(result: StartupResult) -> list[str]:
    rows = [["", "median ms", "min ms", "max ms", "to exit ms"]]
    for arm in result.arms:
        if arm.samples:
            cells = (arm.median_ms, arm.min_ms, arm.max_ms, arm.exit_ms)
            rows.append([arm.name, *(f"{x:.0f}" for x in cells)])
        else:
            rows.append([arm.name, "-", "-", "-", "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        out.append("  ".join([r[0].ljust(widths[0]), *(c.rjust(n) for c, n in zip(r[1:], widths[1:], strict=True))]))
    out.insert(1, "-" * max(len(line) for line in out))
    return out


def _ms(arm: Arm | None) -> float | None:
    """An arm's median in ms, or ``None`` when it was not measured."""
    return arm.median_ms if arm is not None and arm.samples else None


def lines(result: StartupResult) -> list[str]:
    """The report's start-up table and its notes."""
    if not any(arm.samples for arm in result.arms):
        return ["cold start: not measured", *(f"- startup: {note}" for note in result.notes)]
    out = [
        "cold start over stdio, spawn to the first tools/list answer (a raw stdio client writes initialize, "
        "initialized and tools/list at once),",
        f"the diagnostics to the line they print once imported, --dry-run to its exit; {result.rounds} interleaved "
        "rounds, each starting every program once",
        "",
        *_table(result),
    ]
    ours, theirs, sdk, their_sdk = (_ms(arm) for arm in (result.ours, result.theirs, result.our_sdk, result.their_sdk))
    if ours and theirs and sdk and their_sdk:
        out += [
            "",
            f"- startup: importing the SDK is {sdk / ours:.0%} of trio-exec's start ({sdk:.0f} of {ours:.0f} ms; "
            f"the rest, {ours - sdk:+.0f} ms, is trio-exec), {their_sdk / theirs:.0%} of {COMPETITOR}'s "
            f"({their_sdk:.0f} of {theirs:.0f} ms, {theirs - their_sdk:+.0f} ms); our SDK's import alone is "
            f"{sdk / theirs:.2f}x {COMPETITOR}'s whole start (the ratio's floor without changing the SDK)",
        ]
    out += [f"- startup: {arm.name.strip()}: unavailable: {arm.failure}" for arm in result.arms if arm.failure]
    out += [f"- startup: {note}" for note in result.notes]
    return out


def verdicts(result: StartupResult) -> list[str]:
    """The two target lines: cold start against the competitor's, and ``--dry-run``'s wall time."""
    out = []
    ours, theirs, dry, sdk = _ms(result.ours), _ms(result.theirs), _ms(result.dry_run), _ms(result.our_sdk)
    if ours and theirs:
        ratio = ours / theirs
        ok = "met" if ratio <= TARGET_COLD_START_RATIO else "MISSED"
        out.append(
            f"cold start to tools/list, trio-exec / {COMPETITOR}: {ratio:.2f}x  target <= {TARGET_COLD_START_RATIO}x  "
            f"{ok}  ({ours:.0f} vs {theirs:.0f} ms, medians"
        )
        out[-1] += f"; importing our SDK alone takes {sdk / theirs:.2f}x their start)" if sdk else ")"
    else:
        out.append(f"cold start to tools/list, trio-exec / {COMPETITOR}: not measured")
    if dry:
        ok = "met" if dry <= TARGET_DRY_RUN_MS else "MISSED"
        out.append(f"--dry-run wall time: {dry:5.0f} ms  target <= {TARGET_DRY_RUN_MS:.0f} ms  {ok}")
    else:
        out.append("--dry-run wall time: not measured")
    return out
