"""JSON-RPC to a served trio-exec without the SDK's client, for messages the Python client will not send or read.

(The mcp 2.x client does not speak the 2025-11-25 tasks, whose answers it refuses, nor the tasks extension.)
``lines`` talks over the in-process server's stdio wire, one JSON message per line; ``post`` sends one message
over Streamable HTTP and reads its answer, plain JSON or a server-sent event stream.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import trio

from tests.harness import Served, serving
from trio_exec.transports.stdio import read_lines

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
TASKS = "io.modelcontextprotocol/tasks"
CLIENT_INFO = {"name": "raw", "version": "1"}
NAMED = {"tools/call": "name", "tasks/get": "taskId", "tasks/update": "taskId", "tasks/cancel": "taskId"}


def envelope(params: dict[str, Any], *, tasks: bool = True) -> dict[str, Any]:
    """``params`` with the 2026-07-28 per-request ``_meta`` (declaring the tasks extension unless told not to)."""
    capabilities: dict[str, Any] = {"extensions": {TASKS: {}}} if tasks else {}
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    }
    return {**params, "_meta": meta}


def modern_headers(method: str, params: dict[str, Any], **more: str) -> dict[str, str]:
    """The routing headers of a 2026-07-28 request over Streamable HTTP."""
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": MODERN, "mcp-method": method}
    if method in NAMED:
        headers["mcp-name"] = str(params[NAMED[method]])
    return {**headers, **more}


class Lines:
    """One client on the stdio wire: requests by id, and every notification the server sent."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ids = itertools.count(1)
        self.answers: dict[int, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.arrived = trio.Event()

    async def read(self) -> None:
        async for line in read_lines(self.stream):
            assert line is not None, "the server wrote a line over the size cap"
            message = json.loads(line)
            if "id" in message and "method" not in message:
                self.answers[message["id"]] = message
            else:
                self.notifications.append(message)
            self.arrived.set()
            self.arrived = trio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        await self.stream.send_all(json.dumps(message).encode() + b"\n")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole answer (``result`` or ``error``) to one request."""
        request_id = next(self.ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        with trio.fail_after(60):
            while request_id not in self.answers:
                await self.arrived.wait()
        return self.answers.pop(request_id)

    async def result(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = await self.request(method, params)
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def notification(self, method: str) -> dict[str, Any]:
        """The first notification ``method`` (waiting for it)."""
        with trio.fail_after(60):
            while not (found := [n for n in self.notifications if n["method"] == method]):
                await self.arrived.wait()
        return found[0]


@asynccontextmanager
async def lines(
    *args: str, capabilities: dict[str, Any] | None = None, initialize: bool = True
) -> AsyncIterator[tuple[Lines, Served]]:
    """``trio-exec ARGS`` on stdio, in-process, initialized at 2025-11-25 by a raw client (unless told not to)."""
    ours, theirs = trio.socket.socketpair()
    server_end, client_end = trio.SocketStream(theirs), trio.SocketStream(ours)
    async with serving(*args, wire=(server_end, server_end)) as served:
        try:
            async with trio.open_nursery() as nursery:
                client = Lines(client_end)
                nursery.start_soon(client.read)
                if initialize:
                    init = {"protocolVersion": LEGACY, "capabilities": capabilities or {}, "clientInfo": CLIENT_INFO}
                    await client.result("initialize", init)
                    await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                try:
                    yield client, served
                finally:
                    nursery.cancel_scope.cancel()  # no await after this inside the nursery: it would hide an error
        finally:
            await client_end.aclose()  # the server reads EOF


def http_headers(version: str = LEGACY, **more: str) -> dict[str, str]:
    return {"accept": "application/json, text/event-stream", "mcp-protocol-version": version, **more}


async def post(h: httpx2.AsyncClient, url: str, message: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """The answer to one JSON-RPC request over Streamable HTTP (the last message of an event stream)."""
    response = await h.post(url, json=message, headers=headers)
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")]
        answers: list[dict[str, Any]] = [json.loads(d) for d in data if d.strip()]
        replies = [a for a in answers if "id" in a and "method" not in a]
        assert replies, response.text
        return replies[-1]
    answer: dict[str, Any] = response.json()
    return answer
