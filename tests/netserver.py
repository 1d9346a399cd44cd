"""Start the real ``trio-exec`` on a network transport (port 0) and learn where it listens."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import attrs
import trio


@attrs.define
class Running:
    proc: trio.Process
    url: str
    log: bytearray
    grown: trio.Event = attrs.Factory(trio.Event)  # set (and replaced) each time ``log`` grows

    async def wait_for(self, pattern: bytes, start: int = 0) -> re.Match[bytes]:
        """The first match of ``pattern`` in the log from ``start`` on, once it is there (bounded by the caller)."""
        while not (m := re.compile(pattern).search(self.log, start)):
            await self.grown.wait()
        return m

    @property
    def base(self) -> str:
        """scheme://host:port"""
        return re.sub(r"^(\w+://[^/]+).*$", r"\1", self.url)


@asynccontextmanager
async def run_server(*args: str, env: Mapping[str, str] | None = None) -> AsyncIterator[Running]:
    """``trio-exec ARGS --bind 127.0.0.1:0`` (unless bound otherwise); stderr is collected in ``log``."""
    argv = [sys.executable, "-m", "trio_exec", *args]
    if "-b" not in args and "--bind" not in args:
        argv += ["--bind", "127.0.0.1:0"]
    proc = await trio.lowlevel.open_process(
        argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    assert proc.stderr is not None
    log = bytearray()
    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            while not (m := re.search(rb"serving \d+ tool\(s\) on (\S+)", log)):
                chunk = await proc.stderr.receive_some()
                if not chunk:
                    raise RuntimeError(f"server exited early: {log.decode(errors='replace')}")
                log.extend(chunk)

        running = Running(proc, m.group(1).decode(), log)

        async def drain() -> None:
            assert proc.stderr is not None
            while chunk := await proc.stderr.receive_some():
                log.extend(chunk)
                running.grown.set()
                running.grown = trio.Event()

        nursery.start_soon(drain)
        try:
            yield running
        finally:
            if proc.returncode is None:
                proc.terminate()
            with trio.fail_after(30):
                await proc.wait()
            nursery.cancel_scope.cancel()
