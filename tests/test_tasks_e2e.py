"""MCP tasks end to end, revision 2025-11-25: raw JSON-RPC over stdio and Streamable HTTP, real commands.

(The Python client does not speak these tasks; tests/test_node_clients.py drives the TypeScript SDK's.) Every
wait is the server's own (``tasks/result`` blocks until the end), never a sleep of the test.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import mcp_types as types
import pytest
import trio
from trio.testing import MockClock

from tests.conftest import processes_with, until_gone
from tests.harness import serving
from tests.rawrpc import LEGACY, TASKS, envelope, http_headers, lines, modern_headers, post
from tests.test_jobs_e2e import config, counting, forever
from trio_exec.results import output_schema

HTTP = ["--transport", "streamable-http"]
RELATED = "io.modelcontextprotocol/related-task"


def call_as_task(tool: str, arguments: dict[str, Any], **task: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments, "task": task}


def task_of(created: dict[str, Any]) -> dict[str, Any]:
    """The ``task`` of a ``CreateTaskResult``, checked by the SDK's own model."""
    types.CreateTaskResult.model_validate(created)
    task: dict[str, Any] = created["task"]
    return task


async def started(marker: str) -> None:
    with trio.fail_after(30):
        while not processes_with(marker):  # noqa: ASYNC110 - a process of its own: no event to wait on
            await trio.sleep(0.01)


async def test_background_tools_declare_task_support_and_the_server_the_tasks_capability(tmp_path: Path) -> None:
    args = config(tmp_path, {"count": counting(1)})
    async with lines(*args, "--cmd", 'echo|"echo {message}"') as (client, _):
        init = await client.result(
            "initialize",
            {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "again", "version": "1"}},
        )
        tools = {t["name"]: t for t in (await client.result("tools/list"))["tools"]}
    assert init["capabilities"]["tasks"] == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    assert tools["count"]["execution"] == {"taskSupport": "optional"}
    assert [name for name, t in tools.items() if "execution" in t] == ["count"]  # echo and the job tools: forbidden


async def test_a_server_without_background_tools_has_no_tasks() -> None:
    async with lines("--cmd", 'echo|"echo {message}"') as (client, _):
        init = await client.result(
            "initialize",
            {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "again", "version": "1"}},
        )
        get = await client.request("tasks/get", {"taskId": "x"})
        called = await client.request("tools/call", call_as_task("echo", {"message": "plain"}))
    assert "tasks" not in init["capabilities"]
    assert get["error"]["code"] == -32601
    assert called["result"]["structuredContent"]["stdout"] == "plain\n"  # no task capability: the task field is ignored


async def test_a_task_runs_to_its_end_and_tasks_result_answers_what_the_call_would_have(tmp_path: Path) -> None:
    async with lines(*config(tmp_path, {"count": counting(20)})) as (client, _):
        task = task_of(await client.result("tools/call", call_as_task("count", {}, ttl=60_000)))
        polled = await client.result("tasks/get", {"taskId": task["taskId"]})
        final = await client.result("tasks/result", {"taskId": task["taskId"]})  # blocks until the end
        ended = await client.result("tasks/get", {"taskId": task["taskId"]})
        again = await client.result("tasks/result", {"taskId": task["taskId"]})
        listed = await client.result("tasks/list", {})
        notified = await client.notification("notifications/tasks/status")
    assert task["status"] == "working"
    assert task["ttl"] == 900_000
    assert task["pollInterval"] == 1000
    assert polled["taskId"] == task["taskId"]
    types.GetTaskResult.model_validate(polled)
    assert polled["createdAt"] == task["createdAt"]
    content = final["structuredContent"]
    jsonschema.validate(content, output_schema(pipeline=False, background=True))
    assert final["isError"] is False
    assert content["exit_code"] == 3
    assert content["stdout"] == "".join(f"line {i}\n" for i in range(20))
    assert final["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task["taskId"]}
    assert again == final  # the same answer each time
    assert ended["status"] == "completed"
    assert ended["statusMessage"] == "the command exited with code 3"
    assert ended["lastUpdatedAt"] >= ended["createdAt"]
    assert [t["taskId"] for t in listed["tasks"]] == [task["taskId"]]
    types.ListTasksResult.model_validate(listed)
    assert notified["params"]["taskId"] == task["taskId"]
    assert notified["params"]["status"] == "completed"
    assert "_meta" not in notified["params"]


async def test_tasks_cancel_stops_the_process_group_and_a_second_cancel_is_refused(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    async with lines(*config(tmp_path, {"up": forever(marker)})) as (client, _):
        task = task_of(await client.result("tools/call", call_as_task("up", {})))
        await started(marker)
        cancelled = await client.result("tasks/cancel", {"taskId": task["taskId"]})
        await until_gone(marker)
        twice = await client.request("tasks/cancel", {"taskId": task["taskId"]})
        final = await client.result("tasks/result", {"taskId": task["taskId"]})
    types.CancelTaskResult.model_validate(cancelled)
    assert cancelled["status"] == "cancelled"
    assert twice["error"]["code"] == -32602
    assert "already ended (cancelled)" in twice["error"]["message"]
    assert final["isError"] is False
    assert final["structuredContent"]["job"]["state"] == "cancelled"


async def test_a_job_past_its_time_limit_is_a_failed_task(tmp_path: Path, mock_clock: MockClock) -> None:
    mock_clock.rate = 1
    marker = f"m-{uuid.uuid4().hex}"
    async with lines(*config(tmp_path, {"up": forever(marker)}, "--job-max-runtime", "30")) as (client, _):
        task = task_of(await client.result("tools/call", call_as_task("up", {})))
        await started(marker)
        async with trio.open_nursery() as nursery:
            answers: list[dict[str, Any]] = []

            async def result() -> None:
                answers.append(await client.result("tasks/result", {"taskId": task["taskId"]}))

            nursery.start_soon(result)
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(31)  # under the raw client's own 60 s bound on an answer
        failed = await client.result("tasks/get", {"taskId": task["taskId"]})
    await until_gone(marker)
    assert failed["status"] == "failed"  # at 2025-11-25 a tool error (isError) is a failed task
    assert failed["statusMessage"].startswith("timeout: the job ran for its time limit of 30s")
    (final,) = answers
    assert final["isError"] is True
    assert final["structuredContent"]["error"]["code"] == "timeout"


async def test_a_task_calls_progress_token_holds_for_the_tasks_life(tmp_path: Path, mock_clock: MockClock) -> None:
    mock_clock.rate = 1
    marker = f"m-{uuid.uuid4().hex}"
    async with lines(*config(tmp_path, {"up": forever(marker)})) as (client, _):
        call = {**call_as_task("up", {}), "_meta": {"progressToken": "p-1"}}
        task = task_of(await client.result("tools/call", call))
        printed = {"name": "job_output", "arguments": {"id": task["taskId"], "wait_s": 30}}
        assert (await client.result("tools/call", printed))["structuredContent"]["output"] == "up\n"
        with trio.fail_after(30):
            while not [n for n in client.notifications if n["method"] == "notifications/progress"]:
                await trio.testing.wait_all_tasks_blocked()
                mock_clock.jump(2)  # PROGRESS_INTERVAL_S
                await trio.sleep(0.01)
        await client.result("tasks/cancel", {"taskId": task["taskId"]})
        ended = await client.notification("notifications/tasks/status")
    await until_gone(marker)
    progress = next(n for n in client.notifications if n["method"] == "notifications/progress")
    assert progress["params"]["progressToken"] == "p-1"
    assert progress["params"]["message"] == "up"  # the job's latest line
    assert ended["params"]["status"] == "cancelled"


@pytest.mark.parametrize(
    ("method", "params", "code", "says"),
    [
        ("tasks/get", {"taskId": "nope"}, -32602, "no job 'nope' of this client"),
        ("tasks/result", {"taskId": "nope"}, -32602, "no job 'nope' of this client"),
        ("tasks/cancel", {"taskId": "nope"}, -32602, "no job 'nope' of this client"),
        ("tasks/get", {}, -32602, ""),
        ("tasks/list", {"cursor": "garbage"}, -32602, "invalid cursor 'garbage'"),
        ("tasks/list", {"cursor": "9" * 5000}, -32602, "invalid cursor '9999"),
        ("tasks/list", {"cursor": "\u00b2"}, -32602, "invalid cursor"),
        ("tools/call", call_as_task("job_list", {}), -32601, "does not run as a task"),
        ("tools/call", call_as_task("echo", {"message": "x"}), -32601, "execution.taskSupport is forbidden"),
        ("tools/call", call_as_task("nosuch", {}), -32602, "unknown tool 'nosuch'"),
        ("tools/call", call_as_task("count", {"extra": 1}), -32602, "invalid_arguments:"),
        ("trio-exec/tools/call-as-task", {"name": "count", "arguments": {}}, -32601, "Method not found"),
    ],
)
async def test_task_requests_that_cannot_be_served_are_json_rpc_errors_that_say_why(
    tmp_path: Path, method: str, params: dict[str, Any], code: int, says: str
) -> None:
    args = config(tmp_path, {"count": counting(1)}, "--cmd", 'echo|"echo {message}"')
    async with lines(*args) as (client, _):
        answer = await client.request(method, params)
        listed = await client.result("tasks/list", {})
    assert answer["error"]["code"] == code, answer
    assert says in answer["error"]["message"]
    assert listed["tasks"] == []  # nothing was started


async def test_a_refused_task_call_carries_the_structured_error(tmp_path: Path) -> None:
    async with lines(*config(tmp_path, {"count": counting(1)})) as (client, _):
        answer = await client.request("tools/call", call_as_task("count", {"extra": 1}))
    assert answer["error"]["data"]["error"]["code"] == "invalid_arguments"


async def test_tasks_list_pages_with_a_cursor(tmp_path: Path) -> None:
    args = config(tmp_path, {"count": counting(1)}, "--max-jobs", "200", "--max-jobs-per-client", "150")
    async with lines(*args) as (client, _):
        created = [task_of(await client.result("tools/call", call_as_task("count", {})))["taskId"] for _ in range(130)]
        first = await client.result("tasks/list", {})
        second = await client.result("tasks/list", {"cursor": first["nextCursor"]})
    assert len(first["tasks"]) == 100
    assert "nextCursor" not in second
    assert [t["taskId"] for t in first["tasks"] + second["tasks"]] == created


async def test_a_job_started_with_background_is_a_task_too(tmp_path: Path) -> None:
    async with lines(*config(tmp_path, {"count": counting(3)})) as (client, _):
        called = await client.result("tools/call", {"name": "count", "arguments": {"background": True}})
        job = called["structuredContent"]["job"]
        final = await client.result("tasks/result", {"taskId": job["id"]})
    assert final["structuredContent"]["stdout"] == "line 0\nline 1\nline 2\n"


@pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])
async def test_over_http_a_task_outlives_its_session_and_other_clients_cannot_reach_it(
    tmp_path: Path, stateful: bool
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("token-of-a-" + "a" * 16 + "\ntoken-of-b-" + "b" * 16 + "\n")
    args = [*HTTP, *config(tmp_path, {"count": counting(10)}), "--auth-token-file", str(tokens)]
    a, b = (http_headers(authorization=f"Bearer token-of-{x}-{x * 16}") for x in "ab")
    ids = iter(range(1, 100))

    def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": next(ids), "method": method, "params": params}

    async def session(h: httpx2.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, str]:
        if not stateful:
            return headers
        init = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        opened = await h.post(url, json=rpc("initialize", init), headers=headers)
        headers = {**headers, "mcp-session-id": opened.headers["mcp-session-id"]}
        await h.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        return headers

    async with serving(*args, *(["--stateful"] if stateful else [])) as server, httpx2.AsyncClient(timeout=60) as h:
        first = await session(h, server.url, a)
        created = await post(h, server.url, rpc("tools/call", call_as_task("count", {})), first)
        task_id = task_of(created["result"])["taskId"]
        if stateful:
            await h.delete(server.url, headers=first)  # the session ends; the task does not
        later = await session(h, server.url, a)
        final = await post(h, server.url, rpc("tasks/result", {"taskId": task_id}), later)
        other = await session(h, server.url, b)
        theirs = [await post(h, server.url, rpc(m, {"taskId": task_id}), other) for m in ("tasks/get", "tasks/cancel")]
        listed = await post(h, server.url, rpc("tasks/list", {}), other)
    assert final["result"]["structuredContent"]["stdout"].count("line") == 10
    assert [t["error"]["code"] for t in theirs] == [-32602, -32602]
    assert listed["result"]["tasks"] == []


async def test_stopping_the_server_cancels_its_tasks(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    async with lines(*config(tmp_path, {"up": forever(marker)})) as (client, served):
        task_of(await client.result("tools/call", call_as_task("up", {})))
        await started(marker)
        await served.stop()
    await until_gone(marker)


async def test_task_calls_are_audited_like_any_call(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    async with lines(*config(tmp_path, {"count": counting(2)}), "--audit-log", str(audit)) as (client, _):
        task = task_of(await client.result("tools/call", call_as_task("count", {})))
        await client.result("tasks/result", {"taskId": task["taskId"]})
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    events = [(r["event"], r.get("job")) for r in records if r["event"] != "startup"]
    assert ("call", task["taskId"]) in events
    assert ("job_end", task["taskId"]) in events
    assert ("job_read", task["taskId"]) in events


# --- revision 2026-07-28: the io.modelcontextprotocol/tasks extension (SEP-2663) ---------------------------------


class Modern:
    """A stateless 2026-07-28 client over Streamable HTTP, raw: each request carries its own envelope."""

    def __init__(self, h: httpx2.AsyncClient, url: str, **headers: str) -> None:
        self.h, self.url, self.headers = h, url, headers
        self.ids = iter(range(1, 10_000))

    async def request(
        self, method: str, params: dict[str, Any], *, tasks: bool = True, **headers: str
    ) -> dict[str, Any]:
        params = envelope(params, tasks=tasks)
        message = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}
        return await post(self.h, self.url, message, modern_headers(method, params, **{**self.headers, **headers}))

    async def result(self, method: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        answer = await self.request(method, params, **kw)
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def until_end(self, task_id: str) -> dict[str, Any]:
        """Its ``tasks/get`` once it ended (the wait is job_output's, the same job by the tools face)."""
        waited = await self.result(
            "tools/call", {"name": "job_output", "arguments": {"id": task_id, "wait_s": 30, "until": "end"}}
        )
        assert waited["structuredContent"]["job"]["state"] != "working", waited
        return await self.result("tasks/get", {"taskId": task_id})


@asynccontextmanager
async def modern(tmp_path: Path, tools: dict[str, str], *extra: str, **headers: str) -> AsyncIterator[Modern]:
    async with serving(*HTTP, *config(tmp_path, tools), *extra) as server, httpx2.AsyncClient(timeout=60) as h:
        yield Modern(h, server.url, **headers)


async def test_the_extension_is_advertised_in_discover_and_not_the_2025_capability(tmp_path: Path) -> None:
    async with modern(tmp_path, {"count": counting(1)}) as client:
        discovered = await client.result("server/discover", {})
    assert discovered["capabilities"]["extensions"] == {TASKS: {}}
    assert "tasks" not in discovered["capabilities"]


async def test_a_declaring_client_gets_a_task_and_tasks_get_inlines_the_result(tmp_path: Path) -> None:
    async with modern(tmp_path, {"count": counting(20)}) as client:
        created = await client.result("tools/call", {"name": "count", "arguments": {}})
        polled = await client.result("tasks/get", {"taskId": created["taskId"]})
        ended = await client.until_end(created["taskId"])
    assert created["resultType"] == "task"
    assert created["status"] == "working"
    assert created["ttlMs"] == 900_000
    assert created["pollIntervalMs"] == 1000
    assert not {"ttl", "pollInterval", "task", "result", "error", "inputRequests", "requestState"} & set(created)
    assert polled["resultType"] == "complete"
    assert polled["taskId"] == created["taskId"]
    assert ended["status"] == "completed"
    result = ended["result"]
    types.CallToolResult.model_validate(result)
    assert result["resultType"] == "complete"
    assert result["isError"] is False
    assert result["structuredContent"]["stdout"].count("line") == 20
    assert RELATED not in result.get("_meta", {})


async def test_a_call_that_ends_at_once_answers_without_a_task(tmp_path: Path) -> None:
    quick = tmp_path / "quick.toml"
    quick.write_text('[tools.quick]\ntemplate = "echo quick"\nbackground = true\n')  # milliseconds, well within 0.5 s
    async with serving(*HTTP, "--config", str(quick)) as server, httpx2.AsyncClient(timeout=60) as h:
        answer = await Modern(h, server.url).result("tools/call", {"name": "quick", "arguments": {}})
    assert answer["resultType"] == "complete"
    assert "taskId" not in answer
    assert answer["structuredContent"]["stdout"] == "quick\n"
    assert answer["structuredContent"]["job"]["state"] == "completed"


async def test_a_client_without_the_extension_gets_the_whole_answer_and_the_task_field_is_ignored(
    tmp_path: Path,
) -> None:
    async with modern(tmp_path, {"count": counting(10)}) as client:
        plain = await client.result("tools/call", {"name": "count", "arguments": {}}, tasks=False)
        hinted = await client.result(
            "tools/call", {"name": "count", "arguments": {}, "task": {"ttl": 60000}}, tasks=False
        )
    for answer in (plain, hinted):
        assert answer["resultType"] == "complete"
        assert "taskId" not in answer
        assert answer["structuredContent"]["stdout"].count("line") == 10


@pytest.mark.parametrize(
    ("method", "params", "tasks", "headers", "code"),
    [
        ("tasks/get", {"taskId": "gate"}, False, {}, -32021),
        ("tasks/update", {"taskId": "gate", "inputResponses": {}}, False, {}, -32021),
        ("tasks/cancel", {"taskId": "gate"}, False, {}, -32021),
        ("tasks/get", {"taskId": "nope"}, True, {}, -32602),
        ("tasks/cancel", {"taskId": "nope"}, True, {}, -32602),
        ("tasks/result", {"taskId": "nope"}, True, {}, -32601),
        ("tasks/list", {}, True, {}, -32601),
        ("tasks/get", {"taskId": "nope"}, False, {"mcp-name": "another"}, -32020),
    ],
)
async def test_modern_task_requests_that_cannot_be_served_are_the_extensions_errors(
    tmp_path: Path, method: str, params: dict[str, Any], tasks: bool, headers: dict[str, str], code: int
) -> None:
    async with modern(tmp_path, {"count": counting(1)}) as client:
        answer = await client.request(method, params, tasks=tasks, **headers)
    assert answer["error"]["code"] == code, answer
    if code == -32021:
        assert answer["error"]["data"] == {"requiredCapabilities": {"extensions": {TASKS: {}}}}


async def test_modern_cancel_acknowledges_stops_the_process_group_and_acknowledges_again(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    async with modern(tmp_path, {"up": forever(marker)}) as client:
        created = await client.result("tools/call", {"name": "up", "arguments": {}})
        await started(marker)
        first = await client.result("tasks/cancel", {"taskId": created["taskId"]})
        await until_gone(marker)
        second = await client.result("tasks/cancel", {"taskId": created["taskId"]})
        updated = await client.result("tasks/update", {"taskId": created["taskId"], "inputResponses": {"k": {}}})
        ended = await client.result("tasks/get", {"taskId": created["taskId"]})
    for ack in (first, second, updated):
        assert set(ack) - {"_meta"} == {"resultType"}
        assert ack["resultType"] == "complete"
    assert ended["status"] == "cancelled"
    assert not {"result", "error"} & set(ended)


async def test_a_modern_job_past_its_time_limit_is_completed_with_is_error(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    mock_clock.rate = 1
    marker = f"m-{uuid.uuid4().hex}"
    async with modern(tmp_path, {"up": forever(marker)}, "--job-max-runtime", "30") as client:
        created = await client.result("tools/call", {"name": "up", "arguments": {}})
        await started(marker)
        mock_clock.jump(31)
        await until_gone(marker)
        ended = await client.until_end(created["taskId"])
    assert ended["status"] == "completed"  # at 2026-07-28 a tool error is a completed task
    assert ended["result"]["isError"] is True
    assert ended["result"]["structuredContent"]["error"]["code"] == "timeout"


async def test_another_client_cannot_see_or_stop_a_modern_task(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("token-of-a-" + "a" * 16 + "\ntoken-of-b-" + "b" * 16 + "\n")
    marker = f"m-{uuid.uuid4().hex}"
    args = [*HTTP, *config(tmp_path, {"up": forever(marker)}), "--auth-token-file", str(tokens)]
    async with serving(*args) as server, httpx2.AsyncClient(timeout=60) as h:
        a, b = (Modern(h, server.url, authorization=f"Bearer token-of-{x}-{x * 16}") for x in "ab")
        created = await a.result("tools/call", {"name": "up", "arguments": {}})
        theirs = [await b.request(m, {"taskId": created["taskId"]}) for m in ("tasks/get", "tasks/cancel")]
        still = await a.result("tasks/get", {"taskId": created["taskId"]})
        await a.result("tasks/cancel", {"taskId": created["taskId"]})
    await until_gone(marker)
    assert [t["error"]["code"] for t in theirs] == [-32602, -32602]
    assert still["status"] == "working"


async def test_modern_tasks_over_stdio(tmp_path: Path) -> None:
    async with lines(*config(tmp_path, {"count": counting(20)}), initialize=False) as (client, _):
        created = await client.result("tools/call", envelope({"name": "count", "arguments": {}}))
        waited = await client.result(
            "tools/call",
            envelope({"name": "job_output", "arguments": {"id": created["taskId"], "wait_s": 30, "until": "end"}}),
        )
        ended = await client.result("tasks/get", envelope({"taskId": created["taskId"]}))
        ungated = await client.request("tasks/get", envelope({"taskId": created["taskId"]}, tasks=False))
    assert created["resultType"] == "task"
    assert waited["structuredContent"]["job"]["state"] == "completed"
    assert ended["result"]["structuredContent"]["exit_code"] == 3
    assert ungated["error"]["code"] == -32021


async def test_a_declaring_clients_own_wait_s_waits_longer_than_the_servers_window(tmp_path: Path) -> None:
    async with modern(tmp_path, {"count": counting(10, pause_s=0.1)}) as client:  # about 1 s
        answer = await client.result("tools/call", {"name": "count", "arguments": {"wait_s": 30}})
    assert answer["resultType"] == "complete"
    assert answer["structuredContent"]["stdout"].count("line") == 10


async def test_a_base64_mcp_name_names_the_task_as_the_sdk_decodes_it(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    async with modern(tmp_path, {"up": forever(marker)}) as client:
        created = await client.result("tools/call", {"name": "up", "arguments": {}})
        encoded = "=?base64?" + base64.b64encode(created["taskId"].encode()).decode() + "?="
        got = await client.result("tasks/get", {"taskId": created["taskId"]}, **{"mcp-name": encoded})
        await client.result("tasks/cancel", {"taskId": created["taskId"]})
    await until_gone(marker)
    assert got["taskId"] == created["taskId"]


async def test_the_raw_client_lets_an_error_of_its_body_through() -> None:
    """``rawrpc.lines`` must not hide a failing assertion (an await after cancelling its nursery once did)."""
    with pytest.RaisesGroup(ValueError, allow_unwrapped=True, flatten_subgroups=True):
        async with lines("--cmd", 'echo|"echo {message}"'):
            raise ValueError("seen")
