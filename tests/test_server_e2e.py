"""The server's own hardening end to end (issue 11, items 8, 18, 19, 20): real processes, real transports.

- per-client circuit breakers over HTTP with two bearer tokens;
- every shutdown path answers the calls in flight (stdio, HTTP, WebSocket; SIGTERM to the server);
- an audit log that cannot be written (``/dev/full``): closed refuses calls and turns ``/health`` 503,
  open runs them, each with one log line per outage;
- ``/proc/<server pid>/environ`` keeps no value but the documented non-secret ones.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
import trio_websocket
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import processes_with, server_params, until_gone
from tests.harness import serving
from tests.netserver import run_server

HTTP = ["--transport", "streamable-http"]
TOKEN_A = "client-a-token-" + "a" * 16
TOKEN_B = "client-b-token-" + "b" * 16


@asynccontextmanager
async def http_client(url: str, token: str | None = None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers) as h,
        Client(streamable_http_client(url, http_client=h)) as c,
    ):
        yield c


def error_of(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None
    return result.structured_content["error"] or {}


def slow_tool(tmp_path: Path, marker: str) -> list[str]:
    config = tmp_path / "slow.toml"  # the marker is the command's alone: the server's argv must not hold it
    template = f"{sys.executable} -c 'import time; time.sleep(300)' {marker}"
    config.write_text(f"[tools.slow]\ntemplate = {json.dumps(template)}\n")
    return ["--allow-dangerous", "--config", str(config), "--cmd", 'echo|"echo {message}"']


async def until_running(marker: str) -> None:
    with trio.fail_after(30):
        while not processes_with(marker):  # noqa: ASYNC110 - polling another process
            await trio.sleep(0.02)


# --- item 8: one client cannot open a tool's circuit for another ---


async def test_one_client_cannot_open_a_tools_circuit_for_another_over_http(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN_A}\n{TOKEN_B}\n")
    audit = tmp_path / "audit.jsonl"
    args = [*HTTP, "--auth-token-file", str(tokens), "--audit-log", str(audit), "--circuit-threshold", "2",
            "--cmd-timeout", "0.3", "--max-output-bytes", "1000", "--cmd", 'nap|"sleep {seconds}"',
            "--cmd", 'flood|"yes"']  # fmt: skip
    async with serving(*args) as server:
        async with http_client(server.url, TOKEN_A) as mallory:
            chosen = []
            for _ in range(3):  # what the client chose counts for nothing: tiny timeouts, floods
                chosen.append(await mallory.call_tool("nap", {"seconds": "30", "timeout": 0.2}))
                chosen.append(await mallory.call_tool("flood", {}))
            assert [error_of(r).get("code") for r in chosen] == ["timeout", "output_limit"] * 3
            for _ in range(2):  # timeouts at the operator's limit count, for this client
                assert error_of(await mallory.call_tool("nap", {"seconds": "30"})).get("code") == "timeout"
            locked = await mallory.call_tool("nap", {"seconds": "0"})
        async with http_client(server.url, TOKEN_B) as alice:
            other = await alice.call_tool("nap", {"seconds": "0"})
    refused = error_of(locked)
    assert refused["code"] == "circuit_open"
    assert refused["retry_after_s"] > 0
    assert other.is_error is False
    breaker = [json.loads(line) for line in audit.read_text().splitlines() if '"breaker"' in line]
    assert [(r["state"], r["client"].startswith("token:")) for r in breaker] == [("open", True)]
    assert TOKEN_A not in audit.read_text()


# --- item 18: every shutdown path answers the calls in flight ---


def _server_pid(config_marker: str) -> int:
    pids = [p for p in processes_with(config_marker) if b"trio_exec" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(pids) == 1, pids
    return pids[0]


async def test_sigterm_on_stdio_answers_the_running_call_cancelled(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    params = server_params(*slow_tool(tmp_path, marker))
    async with Client(params, read_timeout_seconds=60) as client, trio.open_nursery() as nursery:
        await client.list_tools()
        results = []

        async def call() -> None:
            results.append(await client.call_tool("slow", {}))

        nursery.start_soon(call)
        await until_running(marker)
        os.kill(_server_pid(str(tmp_path / "slow.toml")), signal.SIGTERM)
    await until_gone(marker)
    error = error_of(results[0])
    assert results[0].is_error is True
    assert error["code"] == "cancelled"
    assert "server shutting down" in error["message"]


async def test_sigterm_on_http_answers_calls_that_outlast_the_grace(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    async with run_server(*HTTP, *slow_tool(tmp_path, marker), "--shutdown-grace", "1") as server:
        async with http_client(server.url) as c, trio.open_nursery() as nursery:
            await c.list_tools()
            results = []

            async def call() -> None:
                results.append(await c.call_tool("slow", {}))

            nursery.start_soon(call)
            await until_running(marker)
            server.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            code = await server.proc.wait()
    assert code == 0
    await until_gone(marker)
    error = error_of(results[0])
    assert error["code"] == "cancelled"
    assert "server shutting down" in error["message"]


INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}  # fmt: skip


def _call(request_id: int, name: str, arguments: dict[str, Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}})  # fmt: skip


@pytest.mark.filterwarnings("ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning")
async def test_sigterm_on_websocket_refuses_new_calls_and_answers_the_running_one(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    args = ["--transport", "websocket", *slow_tool(tmp_path, marker), "--shutdown-grace", "3"]
    async with (
        run_server(*args) as server,
        trio_websocket.open_websocket_url(server.url, subprotocols=["mcp"]) as ws,
    ):
        replies: dict[int, dict[str, Any]] = {}

        async def reply(request_id: int) -> dict[str, Any]:
            with trio.fail_after(30):
                while request_id not in replies:
                    message = json.loads(await ws.get_message())
                    if "id" in message:
                        replies[message["id"]] = message
            return replies.pop(request_id)

        await ws.send_message(json.dumps(INIT))
        await reply(1)
        await ws.send_message(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        await ws.send_message(_call(2, "slow", {}))
        await until_running(marker)
        server.proc.send_signal(signal.SIGTERM)
        request_id = 10
        while True:  # the signal is handled by another process: call until the drain refuses
            request_id += 1
            await ws.send_message(_call(request_id, "echo", {"message": "x"}))
            refused = (await reply(request_id))["result"]["structuredContent"]["error"]
            if refused is not None:
                break
        running = (await reply(2))["result"]
        with trio.fail_after(20):
            code = await server.proc.wait()
    assert refused["code"] == "busy"
    assert refused["retry_after_s"] > 0
    assert running["isError"] is True
    assert running["structuredContent"]["error"]["code"] == "cancelled"
    assert "server shutting down" in running["structuredContent"]["error"]["message"]
    assert code == 0
    await until_gone(marker)
    gc.collect()  # trio-websocket drops its socket unclosed when the server goes: warn here, under the filter


# --- item 19: an audit log that cannot be written ---


async def test_an_unwritable_audit_log_fails_closed_with_one_log_line() -> None:
    args = [*HTTP, "--audit-log", "/dev/full", "--cmd", 'echo|"echo {message}"']
    async with serving(*args) as server, httpx2.AsyncClient() as h:
        async with http_client(server.url) as c:
            first = await c.call_tool("echo", {"message": "1"})  # ran; its record is the first one lost
            refused = [await c.call_tool("echo", {"message": str(i)}) for i in range(3)]
        health = await h.get(server.base + "/health")
        log = server.log.decode(errors="replace")
    assert first.is_error is False
    assert {(r.is_error, error_of(r).get("code")) for r in refused} == {(True, "internal")}
    assert "audit log" in error_of(refused[0])["message"]
    assert health.status_code == 503
    assert health.json()["status"] == "audit_unavailable"
    assert log.count("cannot be written") == 1
    assert "Traceback" not in log


async def test_an_unwritable_audit_log_with_fail_open_runs_calls_and_warns_once() -> None:
    args = [*HTTP, "--audit-log", "/dev/full", "--audit-fail", "open", "--cmd", 'echo|"echo {message}"']
    async with serving(*args) as server, httpx2.AsyncClient() as h:
        async with http_client(server.url) as c:
            results = [await c.call_tool("echo", {"message": str(i)}) for i in range(3)]
        health = await h.get(server.base + "/health")
        log = server.log.decode(errors="replace")
    assert [r.is_error for r in results] == [False] * 3
    assert health.status_code == 200
    assert log.count("cannot be written") == 1
    assert "WITHOUT an audit trail" in log
    assert "Traceback" not in log


# --- item 20: what the server's /proc/<pid>/environ still shows ---


async def test_the_servers_environ_keeps_no_value_but_the_documented_ones(tmp_path: Path) -> None:
    secrets = {
        "MCP_EXEC_AUTH_TOKEN": f"tok-{uuid.uuid4().hex}",
        "MCP_EXEC_COMMANDS": f'echo|"echo {{message}}"; mark|"echo m-{uuid.uuid4().hex}"',
        "ALLOW_COMMANDS": f"ls,cat,x{uuid.uuid4().hex}",
        "DATABASE_URL": f"postgres://app:{uuid.uuid4().hex}@db/app",  # a secret with no telling name
        "MCP_EXEC_BASE_PATH": str(tmp_path),
    }
    async with run_server(*HTTP, "--allow-missing-binaries", env=secrets) as server:
        try:
            environ = Path(f"/proc/{server.proc.pid}/environ").read_bytes()
        except PermissionError:  # pragma: no cover - the server is non-dumpable: only root may look
            pytest.skip("reading a non-dumpable process's environ needs root")
    entries = dict(e.partition(b"=")[::2] for e in environ.split(b"\0") if e)
    for name, value in secrets.items():
        assert value.encode() not in environ, name
        assert set(entries[name.encode()]) == {ord("*")}, name  # the name stays, the value is blanked
    assert entries[b"PATH"] == os.environ["PATH"].encode()  # a kept one
