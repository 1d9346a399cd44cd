"""The in-process harness: the real server (``app.serve``) in the test's own trio run, no subprocess.

What ``cli.main`` builds from a command line is built here from the same ``load_settings`` and composition
root, and ``app.serve`` runs in a nursery of the test: stdio over a socket pair (the real line framing of
``transports.stdio``), HTTP and WebSocket on port 0 of loopback. Because the server runs on the test's
clock, time-driven behaviour (breaker cool-downs, progress ticks, the drain grace) is tested with
``trio.testing.MockClock`` jumps, not waited out. What only a real process shows (signals, stdout purity,
``/proc`` of the server, orphans re-parented to it, its exit code) stays with ``conftest.connect_process``
and ``netserver.run_server``.

Of the process-wide steps of ``cli.main`` only one is taken: while it serves, the server kills the orphans
of its calls (a sandbox cut off mid set-up, a ``setsid`` daemon), so the test must start no process of its own
meanwhile. The others are left out on purpose: the test process stays dumpable and keeps its environment and
argv.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import attrs
import mcp_types as types
import trio
from loguru import logger
from mcp import Client
from mcp.client._transport import TransportStreams
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from trio_exec import app, compose, runner
from trio_exec.audit import Audit, log_to
from trio_exec.cli import detect_sandbox, load_settings
from trio_exec.private_dirs import private_dir
from trio_exec.server import Service
from trio_exec.transports.framing import encode
from trio_exec.transports.stdio import Wire, read_lines


@attrs.define
class Served:
    """A server running in this process."""

    url: str  # "stdio", or where the network transport listens (``http://127.0.0.1:PORT/mcp``)
    service: Service
    log: bytearray  # every log line the server wrote, as it would have reached stderr
    stopping: trio.Event
    done: trio.Event

    @property
    def base(self) -> str:
        """scheme://host:port"""
        return re.sub(r"^(\w+://[^/]+).*$", r"\1", self.url)

    async def stop(self) -> None:
        """What a first SIGTERM does (network transports: no new connections, running calls may finish); waits."""
        self.stopping.set()
        await self.done.wait()


@asynccontextmanager
async def serving(*args: str, env: Mapping[str, str] | None = None, wire: Wire | None = None) -> AsyncIterator[Served]:
    """``trio-exec ARGS`` served in-process (network transports bind 127.0.0.1:0 unless told otherwise).

    ``env`` is added to this process's environment for the settings, as it would be for a real server.
    On exit a server still running is cancelled, as a second signal would stop it.
    """
    if wire is None and "-b" not in args and "--bind" not in args:
        args = (*args, "--bind", "127.0.0.1:0")
    settings = load_settings(args, {**os.environ, **(env or {})}).settings
    tools = compose.compile_tools(settings)
    box = detect_sandbox(settings)
    secrets = [settings.network.auth_token] if settings.network.auth_token else []
    log = bytearray()
    logger.remove()
    handler = log_to(lambda line: log.extend(str(line).encode()), settings.log.level, settings.log.format, secrets)
    audit = Audit(settings.log.audit_log, settings.log.audit_rotate, secrets, fail=settings.log.audit_fail)
    stopping, done = trio.Event(), trio.Event()
    runner.adopt_orphans()

    async def serve(service: Service, *, task_status: trio.TaskStatus[str]) -> None:
        try:
            await app.serve(service, wire=wire, stopping=stopping, task_status=task_status)
        finally:
            done.set()
            if wire is not None:
                await wire[1].aclose()  # the client reads EOF, as when a real server exits

    try:
        with private_dir("trio-exec-home-") as home:
            service = compose.build_service(settings, tools, audit, box, private_home=home)
            async with trio.open_nursery() as nursery:
                url = await nursery.start(serve, service)
                yield Served(url, service, log, stopping, done)
                nursery.cancel_scope.cancel()
    finally:
        runner.adopt_orphans(False)
        audit.close()
        logger.remove(handler)
        logger.configure(patcher=lambda record: None)
        logger.add(_stderr, level="DEBUG")


def _stderr(message: Any) -> None:
    os.write(2, str(message).encode())


@asynccontextmanager
async def line_transport(stream: trio.SocketStream) -> AsyncIterator[TransportStreams]:
    """The client's side of newline-delimited JSON-RPC over ``stream`` (what ``stdio_client`` does over pipes)."""
    read_tx, read_rx = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_tx, write_rx = anyio.create_memory_object_stream[SessionMessage](0)
    eof = trio.Event()

    async def reader() -> None:
        async with read_tx:
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError, anyio.BrokenResourceError):
                async for line in read_lines(stream):
                    assert line is not None, "the server wrote a line over the size cap"
                    try:
                        message = types.jsonrpc_message_adapter.validate_json(line)
                    except ValidationError as e:
                        await read_tx.send(e)
                        continue
                    await read_tx.send(SessionMessage(message))
        eof.set()

    async def writer() -> None:
        async with write_rx:
            async for message in write_rx:
                await stream.send_all(encode(message) + b"\n")
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_eof()  # the server reads EOF on its stdin and ends

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(writer)
        try:
            yield read_rx, write_tx
        finally:
            write_tx.close()
            with trio.move_on_after(10):
                await eof.wait()
            nursery.cancel_scope.cancel()
            await stream.aclose()


@asynccontextmanager
async def connect(*args: str, mode: str = "auto", env: Mapping[str, str] | None = None) -> AsyncIterator[Client]:
    """A client of ``trio-exec ARGS`` on stdio, served in-process."""
    async with connect_served(*args, mode=mode, env=env) as (client, _):
        yield client


@asynccontextmanager
async def connect_served(
    *args: str, mode: str = "auto", env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[Client, Served]]:
    """``connect``, and the server (its log, its service)."""
    ours, theirs = trio.socket.socketpair()
    server_end, client_end = trio.SocketStream(theirs), trio.SocketStream(ours)
    async with (
        serving(*args, env=env, wire=(server_end, server_end)) as served,
        Client(line_transport(client_end), mode=mode, read_timeout_seconds=60) as client,
    ):
        yield client, served
