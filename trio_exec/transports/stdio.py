"""The stdio transport: newline-delimited JSON-RPC on stdin/stdout, trio-native.

Why not the SDK's ``stdio_server``: it reads stdin in a worker thread that trio cannot cancel
(a signal would hang shutdown), and it serialises every message to a ``str`` and copies it
twice more before writing (a 1 MiB result of binary output cost 40 MB). Here the wire is read
and written through ``trio.lowlevel.FdStream``: messages are parsed from bytes and serialised
straight to UTF-8 bytes with the SDK's own message adapter, so the server's memory stays
bounded and no thread is involved. As the SDK does, fd 0 points at /dev/null and fd 1 at
stderr while serving, so nothing but JSON-RPC can ever reach the wire.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import mcp_types as types
import trio
from mcp.server.lowlevel.server import Server
from mcp.shared.message import SessionMessage

from trio_exec.transports.replies import Replies

MAX_LINE_BYTES = 64 * 1024 * 1024  # one JSON-RPC message; a larger one is refused, never buffered
_CHUNK = 64 * 1024


async def read_lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[bytes | None]:
    """Lines of ``stream`` without their newline; ``None`` stands for a line over MAX_LINE_BYTES."""
    buf = bytearray()
    start = 0
    skipping = False
    while True:
        end = buf.find(b"\n", start)
        if end >= 0:
            line = bytes(buf[start:end])
            start = end + 1
            if start > _CHUNK:  # compact now and then, not on every line
                del buf[:start]
                start = 0
            if skipping:
                skipping = False
                yield None
            elif line.strip():
                yield line
            continue
        chunk = await stream.receive_some(_CHUNK)
        if not chunk:
            if start < len(buf) and not skipping and buf[start:].strip():
                yield bytes(buf[start:])
            return
        buf += chunk
        if len(buf) - start > MAX_LINE_BYTES:
            buf.clear()
            start = 0
            skipping = True


def encode(message: SessionMessage) -> bytes:
    """One message as UTF-8 JSON bytes (no intermediate ``str``)."""
    return types.jsonrpc_message_adapter.dump_json(message.message, by_alias=True, exclude_unset=True)


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


async def serve_stdio(
    server: Server[Any], replies: Replies | None = None, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve one client on stdin/stdout until stdin reaches EOF (or we are cancelled).

    ``replies`` learns each request read and each answer written (for a shutdown that answers them all).
    """
    replies = replies or Replies()
    incoming_tx, incoming_rx = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing_tx, outgoing_rx = anyio.create_memory_object_stream[SessionMessage](0)

    async def pump_in(rx: trio.abc.ReceiveStream) -> None:
        async with incoming_tx:
            async for line in read_lines(rx):
                try:
                    if line is None:
                        raise ValueError(f"message larger than {MAX_LINE_BYTES} bytes")
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception as exc:  # the SDK answers a parse error to the client
                    await incoming_tx.send(exc)
                    continue
                replies.read(message)
                await incoming_tx.send(SessionMessage(message))

    async def pump_out(tx: trio.abc.SendStream) -> None:
        async with outgoing_rx:
            async for message in outgoing_rx:
                data = encode(message)
                if len(data) < _CHUNK:
                    await tx.send_all(data + b"\n")
                else:  # large: two writes rather than one more copy
                    await tx.send_all(data)
                    await tx.send_all(b"\n")
                replies.written(message.message)

    with _claim_wire() as (wire_in, wire_out):
        async with (
            trio.lowlevel.FdStream(wire_in) as rx,
            trio.lowlevel.FdStream(wire_out) as tx,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(pump_in, rx)
            nursery.start_soon(pump_out, tx)
            task_status.started("stdio")
            await server.run(incoming_rx, outgoing_tx, server.create_initialization_options())
