"""Cancellation over Streamable HTTP: a call the client abandons stops its process group within a second,
whether the client says so (``notifications/cancelled``) or just goes away (the connection closes)."""

from __future__ import annotations

import functools
import json
import uuid
from pathlib import Path

import httpx2
import pytest
import trio

from tests.conftest import PY_VIEW, processes_with, sleeper, until_gone
from tests.harness import serving
from tests.test_http_e2e import HTTP, client

STATES = pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])


def sleepy(marker: str, tmp_path: Path) -> list[str]:
    config = tmp_path / "sleepy.toml"
    config.write_text(f"[tools.sleepy]\ntemplate = {json.dumps(sleeper(marker))}\n")
    return ["--allow-dangerous", "--config", str(config), *PY_VIEW]


async def started(marker: str) -> None:
    with trio.fail_after(30):
        while not processes_with(marker):  # noqa: ASYNC110 - polling other processes: no event to wait on
            await trio.sleep(0.02)


@STATES
async def test_a_call_the_client_cancels_stops_within_a_second(tmp_path: Path, mode: str, stateful: bool) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    args = [*HTTP, *sleepy(marker, tmp_path), *(["--stateful"] if stateful else [])]
    async with serving(*args) as server, client(server.url, mode=mode) as c:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(c.call_tool, "sleepy", {})
            await started(marker)
            nursery.cancel_scope.cancel()  # notifications/cancelled (handshake era) or the stream closes (2026)
        await until_gone(marker, within_s=1.5)
        assert (await c.list_tools()).tools  # the client and the server go on


@STATES
async def test_a_call_whose_connection_closes_stops_within_a_second(tmp_path: Path, stateful: bool) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    args = [*HTTP, *sleepy(marker, tmp_path), *(["--stateful"] if stateful else [])]
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
    async with serving(*args) as server, httpx2.AsyncClient(headers=headers) as h:
        if stateful:
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
                    "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
            answer = await h.post(server.url, json=init)
            headers["mcp-session-id"] = answer.headers["mcp-session-id"]
            await h.post(server.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sleepy", "arguments": {}}}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(h.post, server.url, json=call, headers=headers))
            await started(marker)
            nursery.cancel_scope.cancel()  # the connection closes under the pending response
        await until_gone(marker, within_s=1.5)


async def test_a_client_cannot_cancel_another_clients_call(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    config = tmp_path / "short.toml"
    config.write_text(f"[tools.short]\ntemplate = {json.dumps(sleeper(marker, secs=2))}\n")
    tokens = tmp_path / "tokens"
    tokens.write_text("token-of-a-" + "a" * 16 + "\ntoken-of-b-" + "b" * 16 + "\n")
    args = [*HTTP, "--allow-dangerous", "--config", str(config), *PY_VIEW, "--auth-token-file", str(tokens)]
    base = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
    a, b = ({**base, "authorization": f"Bearer token-of-{x}-{x * 16}"} for x in "ab")
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "short", "arguments": {}}}
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
    answers: list[httpx2.Response] = []

    async def call_as_a(h: httpx2.AsyncClient, url: str) -> None:
        answers.append(await h.post(url, json=call, headers=a))

    async with serving(*args) as server, httpx2.AsyncClient(timeout=30) as h, trio.open_nursery() as nursery:
        nursery.start_soon(call_as_a, h, server.url)
        await started(marker)
        assert (await h.post(server.url, json=cancel, headers=b)).status_code == 202
    (answer,) = answers
    sse = answer.headers["content-type"].startswith("text/event-stream")
    body = answer.text.split("data: ")[1] if sse else answer.text
    result = json.loads(body)["result"]
    assert result["structuredContent"]["exit_code"] == 0, result  # ran to its end: B's cancel did not reach it
