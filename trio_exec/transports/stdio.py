"""The stdio transport: newline-delimited JSON-RPC on stdin/stdout, trio-native.

Why not the SDK's ``stdio_server``: it reads stdin in a worker thread that trio cannot cancel
(a signal would hang shutdown), and it serialises every message to a ``str`` and copies it
twice more before writing (a 1 MiB result of binary output cost 40 MB). Here the wire is read
and written through ``trio.lowlevel.FdStream``: messages are parsed from bytes and serialised
straight to UTF-8 bytes with the SDK's own message adapter, so the server's memory stays
bounded and no thread is involved. As the SDK does, fd 0 points at /dev/null and fd 1 at
stderr while serving, so nothing but JSON-RPC can ever reach the wire.

Every line gets an answer, as ``framing`` decides: a line over MAX_LINE_BYTES, bytes that are not
JSON, or JSON that is not one message are answered with a JSON-RPC error, and the next line is read
as usual. When the client closes stdout, serving ends quietly, as on stdin EOF.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import trio
from loguru import logger
from mcp.server.lowlevel.server import Server
from mcp.shared.message import SessionMessage

from trio_exec.transports import framing
from trio_exec.transports.replies import Replies

MAX_LINE_BYTES = 64 * 1024 * 1024  # one JSON-RPC message; a larger one is refused, never buffered
_CHUNK = 64 * 1024


async def read_lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[bytes | None]:
    """Lines of ``stream`` without their newline; ``None`` stands for a line over MAX_LINE_BYTES.

    At most MAX_LINE_BYTES + one chunk is held: a longer line is dropped as it arrives, up to its
    own newline, and the lines after it are read as usual.
    """
    buf = bytearray()
    start = 0  # where the current line begins in ``buf``
    scanned = 0  # ``buf[start:scanned]`` holds no newline (so a long line is searched once)
    skipping = False  # inside a line already over the cap
    while True:
        end = buf.find(b"\n", scanned)
        if end >= 0:
            oversize = skipping or end - start > MAX_LINE_BYTES
            line = b"" if oversize else bytes(buf[start:end])
            start = scanned = end + 1
            if start > _CHUNK:  # compact now and then, not on every line
                del buf[:start]
                start = scanned = 0
            skipping = False
            if oversize:
                yield None
            elif line.strip():
                yield line
            continue
        if skipping or len(buf) - start > MAX_LINE_BYTES:  # all of buf[start:] is the oversize line
            buf.clear()
            start = 0
            skipping = True
        scanned = len(buf)
        chunk = await stream.receive_some(_CHUNK)
        if not chunk:
            if skipping or len(buf) - start > MAX_LINE_BYTES:
                yield None
            elif buf[start:].strip():
                yield bytes(buf[start:])
            return
        buf += chunk


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


Wire = tuple[trio.abc.ReceiveStream, trio.abc.SendStream]


async def serve_stdio(
    server: Server[Any],
    replies: Replies | None = None,
    *,
    wire: Wire | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve one client on stdin/stdout until stdin reaches EOF, stdout breaks, or we are cancelled.

    ``replies`` learns each request read and each answer written (for a shutdown that answers them all).
    ``wire`` replaces stdin/stdout (an embedding, or a test serving in-process over a socket pair): the
    same framing, and the process's own fds are left alone.
    """
    replies = replies or Replies()
    incoming_tx, incoming_rx = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing_tx, outgoing_rx = anyio.create_memory_object_stream[SessionMessage](0)

    async def pump_in(rx: trio.abc.ReceiveStream) -> None:
        async with incoming_tx, outgoing_tx.clone() as answer:
            async for line in read_lines(rx):
                message = framing.oversize(MAX_LINE_BYTES) if line is None else framing.decode(line)
                if isinstance(message, framing.Malformed):
                    logger.debug("malformed message on stdin: {}", message.reason)
                    if message.reply is not None:  # the SDK would drop it without a word
                        await answer.send(SessionMessage(message.reply))
                    continue
                replies.read(message)
                await incoming_tx.send(SessionMessage(message))

    async def pump_out(tx: trio.abc.SendStream, done: trio.CancelScope) -> None:
        async with outgoing_rx:
            async for message in outgoing_rx:
                try:
                    last = b""
                    for data in framing.encode_parts(message):  # one part, unless the reply is large
                        if last:
                            await tx.send_all(last)
                        last = data
                    if len(last) < _CHUNK:
                        await tx.send_all(last + b"\n")
                    else:  # large: two writes rather than one more copy
                        await tx.send_all(last)
                        await tx.send_all(b"\n")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    # The client closed its end: nobody is left to answer, so stop serving
                    # (the app then cancels the running calls, and the runner kills their groups).
                    logger.info("stdout closed by the client")
                    done.cancel()
                    return
                replies.written(message.message)

    async def serve(rx: trio.abc.ReceiveStream, tx: trio.abc.SendStream) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump_in, rx)
            nursery.start_soon(pump_out, tx, nursery.cancel_scope)
            task_status.started("stdio")
            await server.run(incoming_rx, outgoing_tx, server.create_initialization_options())

    if wire is not None:
        await serve(*wire)
        return
    with _claim_wire() as (wire_in, wire_out):
        async with trio.lowlevel.FdStream(wire_in) as rx, trio.lowlevel.FdStream(wire_out) as tx:
            await serve(rx, tx)
