"""Streamable HTTP end to end: the real server on a real socket (port 0), the real ``mcp.Client``."""

from __future__ import annotations

import json
import signal
import ssl
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import h11
import httpx2
import pytest
import trio
import trio.testing
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from trio.testing import MockClock

from tests.conftest import until_gone, until_running
from tests.harness import serving
from tests.netserver import run_server

HTTP = ["--transport", "streamable-http"]
ECHO = ["--cmd", 'echo|"echo {message}"']
TOKEN = "test-token-" + "x" * 16


@asynccontextmanager
async def client(url: str, token: str | None = None, mode: str = "auto", **http: Any) -> AsyncIterator[Client]:
    """The real MCP client over Streamable HTTP; ``http`` goes to the httpx2 client (headers, verify)."""
    if token:
        http["headers"] = {**http.get("headers", {}), "Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(**http) as h, Client(streamable_http_client(url, http_client=h), mode=mode) as c:
        yield c


@pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])
async def test_a_client_calls_tools_over_http(mode: str, stateful: bool) -> None:
    args = [*HTTP, *ECHO, *(["--stateful"] if stateful else [])]
    async with serving(*args) as server, client(server.url, mode=mode) as c:
        tools = (await c.list_tools()).tools
        result = await c.call_tool("echo", {"message": "hello world"})
    assert [t.name for t in tools] == ["echo"]
    assert result.structured_content is not None
    assert result.structured_content["stdout"] == "hello world\n"


@pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])
async def test_json_response_answers_one_json_body_and_clients_still_call(mode: str, stateful: bool) -> None:
    args = [*HTTP, *ECHO, "--json-response", *(["--stateful"] if stateful else [])]
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "j"}},
    }
    async with serving(*args) as server, client(server.url, mode=mode) as c:
        result = await c.call_tool("echo", {"message": "hello json"})
        async with httpx2.AsyncClient() as h:
            raw = None if stateful else await h.post(server.url, json=call, headers=headers)
    assert result.structured_content is not None
    assert result.structured_content["stdout"] == "hello json\n"
    if raw is not None:  # without --json-response the SDK answers this with an event stream
        assert raw.headers["content-type"].startswith("application/json")
        assert raw.json()["result"]["structuredContent"]["stdout"] == "j\n"


async def test_health_answers_without_auth_and_without_secrets() -> None:
    async with serving(*HTTP, *ECHO, env={"MCP_EXEC_AUTH_TOKEN": TOKEN}) as server, httpx2.AsyncClient() as h:
        get = await h.get(server.base + "/health")
        head = await h.head(server.base + "/health")
    assert get.status_code == 200
    assert get.json()["status"] == "ok"
    assert TOKEN not in get.text
    assert head.status_code == 200


async def test_bearer_auth_refuses_missing_and_wrong_tokens_and_audits_them(tmp_path: Path, mode: str) -> None:
    audit = tmp_path / "audit.jsonl"
    tokens = tmp_path / "tokens"
    other = "second-token-" + "y" * 16
    tokens.write_text(f"# one token per line\n{other}\n\n")
    args = [*HTTP, *ECHO, "--auth-token-file", str(tokens), "--audit-log", str(audit)]
    async with serving(*args, env={"MCP_EXEC_AUTH_TOKEN": TOKEN}) as server:
        async with httpx2.AsyncClient() as h:
            missing = await h.post(server.url, json={})
            wrong = await h.post(server.url, json={}, headers={"Authorization": "Bearer not-the-token-at-all"})
        for token in (TOKEN, other):
            async with client(server.url, token, mode) as c:
                result = await c.call_tool("echo", {"message": "in"})
                assert result.structured_content is not None
                assert result.structured_content["stdout"] == "in\n"
        log = server.log.decode()
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "static Bearer token, not OAuth" in response.json()["error_description"]
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]  # RFC 6750: a token was sent, and is wrong
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    failures = [r for r in records if r["event"] == "auth_failure"]
    assert [f["reason"] for f in failures] == ["missing", "invalid"]
    clients = {r["client"] for r in records if r["event"] == "call"}
    assert len(clients) == 2  # one fingerprint per token
    assert all(c.startswith("token:") for c in clients)
    for text in (audit.read_text(), log):
        assert TOKEN not in text
        assert other not in text


@pytest.mark.parametrize("root", [[], ["--root-path", "/exec"]], ids=["root", "root-path"])
async def test_oauth_metadata_is_not_found_so_clients_do_not_start_an_oauth_flow(root: list[str]) -> None:
    """RFC 9728 / RFC 8414 discovery after a 401 (Inspector v2 does it) finds nothing, before any auth."""
    async with serving(*HTTP, *ECHO, *root, env={"MCP_EXEC_AUTH_TOKEN": TOKEN}) as server, httpx2.AsyncClient() as h:
        prefix = server.base + "".join(root[1:])
        paths = ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
                 "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]  # fmt: skip
        answers = [await h.get(base + path) for path in paths for base in {server.base, prefix}]
    assert {a.status_code for a in answers} == {404}
    assert all("static Bearer token, not OAuth" in a.json()["error_description"] for a in answers)


@pytest.mark.parametrize("cors", [[], ["--cors-origins", "https://app.example,http://localhost:*"]], ids=["off", "on"])
async def test_browser_clients_get_cors_only_for_the_origins_given(cors: list[str]) -> None:
    args = [*HTTP, *ECHO, "--stateful", *cors]
    preflight = {"origin": "http://localhost:6274", "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization, content-type, mcp-protocol-version"}  # fmt: skip
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
            "capabilities": {}, "clientInfo": {"name": "browser", "version": "1"}}}  # fmt: skip
    base = {"accept": "application/json, text/event-stream", "authorization": f"Bearer {TOKEN}"}
    async with serving(*args, env={"MCP_EXEC_AUTH_TOKEN": TOKEN}) as server, httpx2.AsyncClient() as h:
        options = await h.options(server.url, headers=preflight)
        posted = await h.post(server.url, json=init, headers={**base, "origin": "https://app.example"})
        refused = await h.post(server.url, json=init, headers={"origin": "https://app.example"})
        other = await h.options(server.url, headers={**preflight, "origin": "https://evil.example"})
    if not cors:
        assert "access-control-allow-origin" not in options.headers
        assert posted.status_code == 403  # the Origin check refuses a page the operator did not name
        return
    assert options.status_code == 200
    assert options.headers["access-control-allow-origin"] == "http://localhost:6274"
    assert "authorization" in options.headers["access-control-allow-headers"].lower()
    assert "mcp-protocol-version" in options.headers["access-control-allow-headers"].lower()
    assert posted.status_code == 200
    assert posted.headers["access-control-allow-origin"] == "https://app.example"
    assert "mcp-session-id" in posted.headers["access-control-expose-headers"].lower()
    assert posted.headers["mcp-session-id"]
    assert refused.status_code == 401  # CORS is no authentication; the page may read why
    assert refused.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


async def _response(stream: trio.SocketStream, conn: h11.Connection) -> h11.Response:
    """The next complete response on a raw HTTP/1.1 connection (its body read and discarded)."""
    response = None
    with trio.fail_after(10):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return response
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError("the server closed the connection")


async def test_a_refused_request_leaves_the_connection_usable_for_the_next() -> None:
    async with serving(*HTTP, *ECHO, env={"MCP_EXEC_AUTH_TOKEN": TOKEN}) as server:
        host, port = server.base.split("//")[1].rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        conn = h11.Connection(h11.CLIENT)
        headers = [("Host", f"{host}:{port}"), ("Content-Type", "application/json"), ("Content-Length", "2")]
        # The body arrives in its own segment, after the headers: the case where a server that answers
        # before reading it closes the connection under the client's next request.
        await stream.send_all(conn.send(h11.Request(method="POST", target="/mcp", headers=headers)))
        with trio.move_on_after(0.3):
            early = await stream.receive_some()
            raise AssertionError(f"answered before the body was read: {early[:60]!r}")
        await stream.send_all(conn.send(h11.Data(data=b"{}")) + conn.send(h11.EndOfMessage()))
        refused = await _response(stream, conn)
        conn.start_next_cycle()
        health = h11.Request(method="GET", target="/health", headers=[("Host", f"{host}:{port}")])
        await stream.send_all(conn.send(health) + conn.send(h11.EndOfMessage()))
        again = await _response(stream, conn)
        await stream.aclose()
    assert refused.status_code == 401
    assert again.status_code == 200


async def test_repeated_auth_failures_are_rate_limited() -> None:
    args = [*HTTP, *ECHO, "--rate-limit-burst", "2", "--rate-limit-rps", "0.1"]
    async with serving(*args, env={"MCP_EXEC_AUTH_TOKEN": TOKEN}) as server, httpx2.AsyncClient() as h:
        codes = [(await h.post(server.url, json={})).status_code for _ in range(4)]
    assert codes == [401, 401, 429, 429]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Origin": "http://evil.example"}, 403), ({"Host": "evil.example"}, 421)],
    ids=["origin", "host"],
)
async def test_foreign_origins_and_hosts_are_refused(headers: dict[str, str], status: int) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with serving(*HTTP, *ECHO) as server, httpx2.AsyncClient() as h:
        response = await h.post(server.url, json=body, headers={"Accept": "application/json, text/event-stream",
                                                                 **headers})  # fmt: skip
    assert response.status_code == status


async def test_allowed_hosts_and_origins_can_be_widened() -> None:
    args = [*HTTP, *ECHO, "--allowed-hosts", "mcp.example:*", "--allowed-origins", "https://app.example"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "Origin": "https://app.example"}
    async with serving(*args) as server, httpx2.AsyncClient() as h:
        ok = await h.post(server.url, json=body, headers={**headers, "Host": "mcp.example:443"})
        local = await h.post(server.url, json=body, headers=headers)
    assert ok.status_code == 200
    assert local.status_code == 421  # the explicit list replaces the default


async def test_a_foreign_host_is_refused_by_the_gate_before_the_sdk_reads_the_request() -> None:
    # Behind the gate the SDK would answer "Session not found" (404) for a session it does not know, and 400 for
    # a body that is not JSON, before it looks at Host: the gate's 421 comes first, with the SDK's body.
    accept = {"Accept": "application/json, text/event-stream", "Host": "evil.example"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with serving(*HTTP, *ECHO, "--stateful") as server, httpx2.AsyncClient() as h:
        unknown = await h.post(server.url, json=body, headers={**accept, "mcp-session-id": "no-such-session"})
        plain = await h.post(server.url, content=b"{}", headers={**accept, "Content-Type": "text/plain"})
        stream = await h.get(server.url, headers={**accept, "mcp-session-id": "no-such-session"})
        elsewhere = await h.get(server.base + "/other", headers=accept)
    assert [r.status_code for r in (unknown, plain, stream)] == [421, 421, 421]
    assert unknown.text == "Invalid Host header"
    assert elsewhere.status_code == 404  # only /mcp is gated for Host and Origin, as before


async def test_request_bodies_over_the_cap_are_refused() -> None:
    async with serving(*HTTP, *ECHO, "--max-request-bytes", "64K") as server, httpx2.AsyncClient() as h:
        big = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"message": "x" * 100_000}}}  # fmt: skip
        response = await h.post(server.url, json=big, headers={"Accept": "application/json, text/event-stream"})
    assert response.status_code == 413


async def test_forwarded_addresses_are_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    seen = {}
    for trusted in (True, False):
        audit = tmp_path / f"audit-{trusted}.jsonl"
        args = [*HTTP, *ECHO, "--audit-log", str(audit), *(["--forwarded-allow-ips", "127.0.0.0/8"] if trusted else [])]
        async with serving(*args) as server:
            forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
            async with client(server.url, headers=forwarded) as c:
                await c.call_tool("echo", {"message": "x"})
        seen[trusted] = json.loads(audit.read_text().splitlines()[-1])["client"]
    assert seen == {True: "ip:203.0.113.7", False: "ip:127.0.0.1"}


async def test_a_root_path_prefix_serves_mcp_and_health_under_it() -> None:
    async with serving(*HTTP, *ECHO, "--root-path", "/exec") as server:
        assert server.url.endswith("/exec/mcp")
        async with httpx2.AsyncClient() as h:
            assert (await h.get(server.base + "/exec/health")).status_code == 200
        async with client(server.url) as c:
            result = await c.call_tool("echo", {"message": "prefixed"})
    assert result.structured_content is not None
    assert result.structured_content["stdout"] == "prefixed\n"


async def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files in ``tmp_path``), made by openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    await trio.run_process(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_stdout=True, capture_stderr=True,
    )  # fmt: skip
    return cert, key


async def test_tls_with_certfile_and_keyfile(tmp_path: Path) -> None:
    cert, key = await self_signed(tmp_path)
    async with serving(*HTTP, *ECHO, "--certfile", str(cert), "--keyfile", str(key)) as server:
        assert server.url.startswith("https://")
        async with client(server.url, verify=ssl.create_default_context(cafile=str(cert))) as c:
            result = await c.call_tool("echo", {"message": "secure"})
    assert result.structured_content is not None
    assert result.structured_content["stdout"] == "secure\n"


def slow_tool(tmp_path: Path, marker: str, seconds: int) -> list[str]:
    config = tmp_path / "slow.toml"
    code = f"import time; time.sleep({seconds}); print('done')"
    template = f"{sys.executable} -c {json.dumps(code)} {marker}"
    config.write_text(f"[tools.slow]\ntemplate = {json.dumps(template)}\n")
    return ["--allow-dangerous", "--config", str(config)]


async def test_sigterm_lets_a_running_call_finish_within_the_grace(tmp_path: Path, mode: str) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    async with run_server(*HTTP, *slow_tool(tmp_path, marker, 2), "--shutdown-grace", "20") as server:
        async with client(server.url, mode=mode) as c, trio.open_nursery() as nursery:
            # Listed first, as agents do: otherwise the client fetches the output schema after the
            # result arrives, by which time the server is closing its connections.
            await c.list_tools()
            results = []

            async def call() -> None:
                results.append(await c.call_tool("slow", {}))

            nursery.start_soon(call)
            await until_running(marker)
            server.proc.send_signal(signal.SIGTERM)
            async with httpx2.AsyncClient() as h:
                with trio.fail_after(10):
                    while (health := await h.get(server.base + "/health")).status_code != 503:  # noqa: ASYNC110
                        await trio.sleep(0.05)  # the signal is handled by another process: poll it
            refused = await c.call_tool("slow", {})
        with trio.fail_after(20):
            code = await server.proc.wait()
    assert code == 0
    assert health.json()["status"] == "draining"
    assert results[0].structured_content["stdout"] == "done\n"
    assert refused.structured_content is not None
    assert refused.structured_content["error"]["code"] == "busy"


async def test_stopping_cancels_calls_that_outlast_the_grace_and_kills_them(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    mock_clock.rate = 1  # the server runs in real time, but the grace is jumped over
    marker = f"m-{uuid.uuid4().hex}"
    args = [*HTTP, *slow_tool(tmp_path, marker, 300), "--shutdown-grace", "600"]
    async with serving(*args) as server:

        async def doomed_call() -> None:
            try:
                async with client(server.url) as c:
                    await c.call_tool("slow", {})
            except Exception:  # noqa: S110 - expected: the server cancels the call and goes away
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(doomed_call)
            await until_running(marker)
            server.stopping.set()  # what SIGTERM does (test_server_e2e sends the real signal)
            await trio.testing.wait_all_tasks_blocked()
            assert not server.done.is_set()  # the call still has its grace
            mock_clock.jump(600)
            with trio.fail_after(10):
                await server.done.wait()
    await until_gone(marker)
