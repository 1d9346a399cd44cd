"""WebSocket transport end to end: the real server on port 0, trio-websocket as a raw client."""

from __future__ import annotations

import gc
import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio_websocket

from tests.harness import serving
from tests.malformed import CASES, INITIALIZED, echo_call
from tests.netserver import run_server
from tests.test_execution_e2e import peak_rss_kib

# trio-websocket's *client* leaves its socket to the garbage collector when a handshake is
# rejected; the warning lands in whichever test collects it. The server is another process.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture(autouse=True)
def collect_leaked_client_sockets() -> Iterator[None]:
    yield
    gc.collect()  # here, under the filter above, rather than at the end of the session


WS = ["--transport", "websocket", "--cmd", 'echo|"echo {message}"']
TOKEN = "websocket-token-" + "z" * 16
INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}  # fmt: skip


async def rpc(ws: trio_websocket.WebSocketConnection, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send_message(json.dumps(message))
    if "id" not in message:
        return {}
    with trio.fail_after(30):
        while True:
            reply = json.loads(await ws.get_message())
            if reply.get("id") == message["id"]:
                return reply  # type: ignore[no-any-return]


async def test_a_session_lists_and_calls_tools_one_message_per_frame() -> None:
    async with serving(*WS) as server:
        assert server.url.startswith("ws://")
        assert server.url.endswith("/mcp")
        async with trio_websocket.open_websocket_url(server.url, subprotocols=["mcp"]) as ws:
            assert ws.subprotocol == "mcp"
            init = await rpc(ws, INIT)
            await rpc(ws, {"jsonrpc": "2.0", "method": "notifications/initialized"})
            tools = await rpc(ws, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
            call = await rpc(ws, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                                  "params": {"name": "echo", "arguments": {"message": "over ws"}}})  # fmt: skip
            bad = await rpc(ws, {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                                 "params": {"name": "nope", "arguments": {}}})  # fmt: skip
    assert init["result"]["serverInfo"]["name"] == "trio-exec"
    assert [t["name"] for t in tools["result"]["tools"]] == ["echo"]
    assert call["result"]["structuredContent"]["stdout"] == "over ws\n"
    assert bad["error"]["code"] == -32602


async def test_the_bearer_token_is_required_in_the_handshake(tmp_path: Any) -> None:
    audit = tmp_path / "audit.jsonl"
    args = [*WS, "--audit-log", str(audit)]
    async with serving(*args, env={"MCP_EXEC_AUTH_TOKEN": TOKEN}) as server:
        with pytest.raises(trio_websocket.ConnectionRejected) as caught:
            async with trio_websocket.open_websocket_url(server.url, subprotocols=["mcp"]):
                pass
        headers = [(b"authorization", f"Bearer {TOKEN}".encode())]
        async with trio_websocket.open_websocket_url(server.url, subprotocols=["mcp"], extra_headers=headers) as ws:
            init = await rpc(ws, INIT)
    assert caught.value.status_code == 401
    assert init["result"]["serverInfo"]["name"] == "trio-exec"
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["event"] for r in records] == ["auth_failure"]
    assert TOKEN not in audit.read_text()


async def test_clients_that_cannot_send_headers_give_the_token_in_the_url_or_a_subprotocol(tmp_path: Any) -> None:
    """Neither official SDK's WebSocket client nor a browser can send ``Authorization``: ``?access_token=``
    (RFC 6750) and a ``bearer.<token>`` subprotocol work instead, are checked alike, and are never logged."""
    audit = tmp_path / "audit.jsonl"
    args = [*WS, "--audit-log", str(audit), "--log-level", "debug"]
    async with serving(*args, env={"MCP_EXEC_AUTH_TOKEN": TOKEN}) as server:
        accepted = []
        for url, protocols in [
            (f"{server.url}?access_token={TOKEN}", ["mcp"]),
            (server.url, ["mcp", f"bearer.{TOKEN}"]),
        ]:
            async with trio_websocket.open_websocket_url(url, subprotocols=protocols) as ws:
                accepted.append((ws.subprotocol, (await rpc(ws, INIT))["result"]["serverInfo"]["name"]))
        refused = []
        for url, protocols in [
            (f"{server.url}?access_token=wrong-{TOKEN}", ["mcp"]),
            (server.url, ["mcp", "bearer.x"]),
        ]:
            with pytest.raises(trio_websocket.ConnectionRejected) as caught:
                async with trio_websocket.open_websocket_url(url, subprotocols=protocols):
                    pass
            refused.append(caught.value.status_code)
    assert accepted == [("mcp", "trio-exec")] * 2  # the bearer entry is never echoed back
    assert refused == [401, 401]
    assert [json.loads(line)["reason"] for line in audit.read_text().splitlines()] == ["invalid", "invalid"]
    assert TOKEN not in audit.read_text()
    assert TOKEN not in server.log.decode()


@pytest.mark.parametrize(
    ("path", "headers", "protocols", "status"),
    [
        ("/other", [], ["mcp"], 404),
        ("/mcp", [(b"origin", b"http://evil.example")], ["mcp"], 403),
        ("/mcp", [], ["graphql-ws"], 400),
    ],
    ids=["path", "origin", "subprotocol"],
)
async def test_handshakes_that_break_a_rule_are_rejected(
    path: str, headers: list[tuple[bytes, bytes]], protocols: list[str], status: int
) -> None:
    async with serving(*WS) as server:
        url = server.base + path
        with pytest.raises(trio_websocket.ConnectionRejected) as caught:
            async with trio_websocket.open_websocket_url(url, subprotocols=protocols, extra_headers=headers):
                pass
    assert caught.value.status_code == status


@pytest.mark.parametrize(("host", "status"), [(b"evil.example", b"421"), (b"127.0.0.1:1", b"101"), (b"", b"421")])
async def test_the_handshakes_host_is_checked(host: bytes, status: bytes) -> None:
    # A raw handshake: trio-websocket's client always sends its own Host (and h11 refuses a second one).
    upgrade = (
        b"GET /mcp HTTP/1.1\r\nHost: " + host + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: mcp\r\n\r\n"
    )
    async with serving(*WS) as server:
        address, _, port = server.base.split("://", 1)[1].rpartition(":")
        with trio.fail_after(10):
            async with await trio.open_tcp_stream(address, int(port)) as stream:
                await stream.send_all(upgrade)
                answer = await stream.receive_some(4096)
    assert answer.split(b" ", 2)[1] == status


async def _reply(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(30):
        return json.loads(await ws.get_message())  # type: ignore[no-any-return]


@pytest.mark.parametrize(("data", "code", "request_id"), CASES)
async def test_malformed_input_is_answered_and_the_session_goes_on(
    data: bytes, code: int | None, request_id: object
) -> None:
    async with (
        serving(*WS) as server,
        trio_websocket.open_websocket_url(server.url, subprotocols=["mcp"]) as ws,
    ):
        assert "result" in await rpc(ws, INIT)
        await rpc(ws, INITIALIZED)
        await ws.send_message(data)  # a binary frame: the not-UTF-8 case could not be a text frame
        await ws.send_message(echo_call("after").decode())
        if code is not None:
            reply = await _reply(ws)
            assert reply["id"] == request_id
            assert reply["error"]["code"] == code
        after = await _reply(ws)  # a notification's reply would arrive here first
    assert after["id"] == "after"
    assert after["result"]["structuredContent"]["stdout"] == "still here\n"


async def test_a_large_reply_comes_in_fragments_of_one_message_and_the_server_stays_small() -> None:
    size = 20 * 1024 * 1024  # NULs: a 126 MB JSON message (six bytes each); sent whole, the server peaked at 650 MB
    args = ["--transport", "websocket", "--max-output-bytes", "67108864", "--cmd", f'zeros|"head -c {size} /dev/zero"']
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "zeros", "arguments": {}}}
    async with (
        run_server(*args) as server,
        trio_websocket.open_websocket_url(server.url, subprotocols=["mcp"], max_message_size=1 << 28) as ws,
    ):
        await rpc(ws, INIT)
        await rpc(ws, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        answer = await rpc(ws, call)
        peak_kib = peak_rss_kib(server.proc.pid)
    assert answer["result"]["structuredContent"]["stdout"] == "\x00" * size
    assert peak_kib < 200 * 1024, f"server peak RSS {peak_kib} KiB"


async def test_a_message_over_the_size_limit_closes_the_connection() -> None:
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "y" * 10_000}})
    async with (
        serving(*WS, "--max-request-bytes", "4K") as server,
        trio_websocket.open_websocket_url(server.url, subprotocols=["mcp"]) as ws,
    ):
        await ws.send_message(big)
        with pytest.raises(trio_websocket.ConnectionClosed) as caught, trio.fail_after(10):
            await ws.get_message()
    assert caught.value.reason is not None
    assert caught.value.reason.code == 1009


async def test_shutdown_closes_sessions_with_going_away() -> None:
    async with run_server(*WS) as server:
        async with trio_websocket.open_websocket_url(server.url, subprotocols=["mcp"]) as ws:
            await rpc(ws, INIT)
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(trio_websocket.ConnectionClosed) as caught, trio.fail_after(20):
                await ws.get_message()
        with trio.fail_after(20):
            code = await server.proc.wait()
    assert caught.value.reason is not None
    assert caught.value.reason.code == 1001
    assert code == 0
