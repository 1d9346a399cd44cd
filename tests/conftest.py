"""Shared test helpers: the real ``trio-exec``, in-process (``connect``) or as a process, driven by ``mcp.Client``."""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager

import pytest
import trio
from mcp import Client, StdioServerParameters

from tests.harness import connect

__all__ = ["connect"]

# The test interpreter's install prefixes, shown read-only in the sandbox: for templates that start
# Python through a shell (the sandbox shows a template's own program, not programs it runs by name).
PY_VIEW = tuple(
    arg for prefix in dict.fromkeys(os.path.realpath(p) for p in (sys.prefix, sys.base_prefix))
    for arg in ("--sandbox-ro", prefix)
)  # fmt: skip


def sleeper(marker: str, secs: int = 300) -> str:
    """Shell words for a process that sleeps and carries ``marker`` in its command line."""
    return f"{sys.executable} -c 'import time; time.sleep({secs})' {marker}"


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose command line contains ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    with open(f"/proc/{pid}/stat") as s:
                        if s.read().split(") ", 1)[1].startswith("Z"):
                            continue  # a zombie has already finished
                    found.append(int(pid))
        except OSError:
            continue
    return found


def assert_gone(marker: str, within_s: float = 5.0) -> None:
    """Every process carrying ``marker`` is dead (SIGKILL delivery is asynchronous: bounded wait)."""
    deadline = time.monotonic() + within_s
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert left == [], f"processes survived: {[(pid, _describe(pid)) for pid in left]}"


async def until_running(marker: str, count: int = 1, within_s: float = 20.0) -> list[int]:
    """The pids carrying ``marker`` once at least ``count`` run (a command really started; no event says so)."""
    with trio.fail_after(within_s):
        while len(found := processes_with(marker)) < count:  # noqa: ASYNC110 - polling other processes
            await trio.sleep(0.02)
    return found


async def until_gone(marker: str, within_s: float = 5.0) -> None:
    """``assert_gone`` without blocking the event loop (the client may still have messages to send)."""
    await trio.to_thread.run_sync(assert_gone, marker, within_s)


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except OSError:
        return "(gone)"
    return f"{cmdline.strip()} [state {fields[0]}, ppid {fields[1]}, pgid {fields[2]}]"


MODES = ["auto", "legacy"]  # the 2026-07-28 protocol (no handshake) and the legacy initialize handshake


def server_params(*args: str, env: Mapping[str, str] | None = None, cwd: str | None = None) -> StdioServerParameters:
    """How to start ``python -m trio_exec ARGS`` (the server's environment is ours plus ``env``)."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "trio_exec", *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


@asynccontextmanager
async def connect_process(
    *args: str, mode: str = "auto", env: Mapping[str, str] | None = None
) -> AsyncIterator[Client]:
    """A connected client of a fresh server process started with ``args`` (``connect`` serves in-process)."""
    async with Client(server_params(*args, env=env), mode=mode, read_timeout_seconds=60) as client:
        yield client


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_PR_SET_CHILD_SUBREAPER = 36


def pytest_configure(config: pytest.Config) -> None:
    # Orphaned descendants (a command's background children) are re-parented to us instead of
    # init, so the leak check below sees every process a test left behind.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _children() -> dict[int, str]:
    """Our direct children (pid -> state letter)."""
    me = str(os.getpid())
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            found[int(pid)] = fields[0]
    return found


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail a test that leaves any process behind (checked by pid after every test)."""
    before = set(_children())
    yield
    deadline = time.monotonic() + 10  # killed processes need a moment to be reaped
    while True:
        alive = []
        for pid, state in _children().items():
            if pid in before:
                continue
            if state == "Z":
                os.waitpid(pid, os.WNOHANG)  # an orphan re-parented to us: reap it
            else:
                alive.append(pid)
        if not alive:
            return
        if time.monotonic() > deadline:
            cmdlines = []
            for pid in alive:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                    cmdlines.append(f"{pid}: {cmdline}")
                except OSError:
                    pass
            pytest.fail(f"the test left processes behind: {cmdlines}")
        time.sleep(0.05)
