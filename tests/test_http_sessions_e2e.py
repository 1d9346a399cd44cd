"""Stateful Streamable HTTP sessions: reaped when idle, capped, rate-limited, bound to their token."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import trio
import trio.testing
from trio.testing import MockClock

from tests.harness import serving
from tests.test_http_e2e import ECHO, HTTP, client

STATEFUL = [*HTTP, *ECHO, "--stateful"]
HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
              "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


async def open_session(h: httpx2.AsyncClient, url: str, **headers: str) -> httpx2.Response:
    return await h.post(url, json=INITIALIZE, headers={**HEADERS, **headers})


async def health(h: httpx2.AsyncClient, base: str) -> dict[str, object]:
    answer: dict[str, object] = (await h.get(base + "/health")).json()
    return answer


async def test_an_idle_session_is_closed_after_the_idle_timeout(mock_clock: MockClock) -> None:
    mock_clock.rate = 1  # the server runs in real time; the idle time is jumped over
    async with serving(*STATEFUL, "--session-idle-timeout", "600") as server, httpx2.AsyncClient() as h:
        opened = await open_session(h, server.url)
        session = opened.headers["mcp-session-id"]
        await trio.testing.wait_all_tasks_blocked()  # the request is over: the idle time starts
        mock_clock.jump(590)
        await trio.testing.wait_all_tasks_blocked()
        assert (await health(h, server.base))["sessions"] == 1
        mock_clock.jump(20)
        with trio.fail_after(10):
            while (await health(h, server.base))["sessions"] != 0:  # noqa: ASYNC110 - the SDK's sweep: no event
                await trio.sleep(0.01)
        gone = await h.post(server.url, json=LIST, headers={**HEADERS, "mcp-session-id": session})
    assert gone.status_code == 404


async def test_sessions_beyond_the_limit_are_refused_with_503_and_the_open_ones_go_on(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    args = [*STATEFUL, "--max-sessions", "2", "--rate-limit-rps", "0", "--audit-log", str(audit)]
    async with (
        serving(*args) as server,
        client(server.url, mode="legacy") as one,
        client(server.url, mode="legacy") as two,
        httpx2.AsyncClient() as h,
    ):
        assert (await health(h, server.base))["sessions"] == 2
        refused = await open_session(h, server.url)
        for c in (one, two):
            assert (await c.call_tool("echo", {"message": "still here"})).structured_content is not None
        status = await health(h, server.base)
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    error = refused.json()["error"]
    assert error["data"]["code"] == "too_many_sessions"
    assert "--max-sessions 2" in error["message"]
    assert status["max_sessions"] == 2
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["reason"] for r in records if r["event"] == "session_refused"] == ["too_many_sessions"]


async def test_opening_sessions_spends_the_clients_rate_limit() -> None:
    args = [*STATEFUL, "--rate-limit-rps", "0.5", "--rate-limit-burst", "2"]
    async with serving(*args) as server, httpx2.AsyncClient() as h:
        answers = [await open_session(h, server.url) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"]["data"]["code"] == "rate_limited"
    assert int(answers[2].headers["retry-after"]) >= 1


async def test_a_session_answers_only_the_token_that_opened_it(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    a, b = "token-of-a-" + "a" * 16, "token-of-b-" + "b" * 16
    tokens.write_text(f"{a}\n{b}\n")
    async with serving(*STATEFUL, "--auth-token-file", str(tokens)) as server, httpx2.AsyncClient() as h:
        opened = await open_session(h, server.url, authorization=f"Bearer {a}")
        session = {**HEADERS, "mcp-session-id": opened.headers["mcp-session-id"]}
        stolen = await h.post(server.url, json=LIST, headers={**session, "authorization": f"Bearer {b}"})
        own = await h.post(server.url, json=LIST, headers={**session, "authorization": f"Bearer {a}"})
    assert stolen.status_code == 404
    assert own.status_code == 200
