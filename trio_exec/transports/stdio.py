"""The stdio transport: the SDK's stdio server over trio-native, cancellable fd streams.

The SDK's default stdin reader blocks in a worker thread that trio cannot cancel, so a signal
would hang shutdown; here the wire is read and written with ``trio.lowlevel.FdStream`` instead
(no thread, no per-message thread hop). As the SDK does, fd 0 is pointed at /dev/null and fd 1
at stderr while serving, so nothing but JSON-RPC can ever reach the wire.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import trio
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

MAX_LINE_BYTES = 64 * 1024 * 1024  # one JSON-RPC message; a larger one is dropped, not buffered
_CHUNK = 64 * 1024


class _Lines:
    """The async text-file face the SDK reads: ``async for line in stdin``."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buf = bytearray()
        self._start = 0
        self._skipping = False

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        while True:
            end = self._buf.find(b"\n", self._start)
            if end >= 0:
                line = bytes(self._buf[self._start : end + 1])
                self._start = end + 1
                if self._start > _CHUNK:  # compact now and then, not on every line
                    del self._buf[: self._start]
                    self._start = 0
                if self._skipping:
                    self._skipping = False
                    return "{}\n"  # the tail of an oversized message: invalid, answered as such
                return line.decode("utf-8", errors="replace")
            chunk = await self._stream.receive_some(_CHUNK)
            if not chunk:
                rest = bytes(self._buf[self._start :])
                self._buf.clear()
                self._start = 0
                if rest and not self._skipping:
                    return rest.decode("utf-8", errors="replace")
                raise StopAsyncIteration
            self._buf += chunk
            if len(self._buf) - self._start > MAX_LINE_BYTES:
                self._buf.clear()
                self._start = 0
                self._skipping = True


class _Writer:
    """The async text-file face the SDK writes: ``write`` then ``flush``."""

    def __init__(self, stream: trio.abc.SendStream) -> None:
        self._stream = stream

    async def write(self, text: str) -> None:
        await self._stream.send_all(text.encode("utf-8"))

    async def flush(self) -> None:
        return None


@contextmanager
def _claim_wire() -> Iterator[tuple[int, int]]:
    """Private duplicates of fd 0/1 for the wire; fd 0 -> /dev/null and fd 1 -> stderr meanwhile."""
    wire_in, wire_out = os.dup(0), os.dup(1)
    saved_in, saved_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
        yield wire_in, wire_out
    finally:
        os.close(null)
        os.dup2(saved_in, 0)
        os.dup2(saved_out, 1)
        os.close(saved_in)
        os.close(saved_out)


async def serve_stdio(server: Server[Any], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve one client on stdin/stdout until stdin reaches EOF (or we are cancelled)."""
    with _claim_wire() as (wire_in, wire_out):
        async with trio.lowlevel.FdStream(wire_in) as rx, trio.lowlevel.FdStream(wire_out) as tx:
            stdin, stdout = cast(Any, _Lines(rx)), cast(Any, _Writer(tx))
            async with stdio_server(stdin=stdin, stdout=stdout) as (read_stream, write_stream):
                task_status.started()
                await server.run(read_stream, write_stream, server.create_initialization_options())
