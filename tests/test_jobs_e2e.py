"""Background jobs end to end: the real ``mcp.Client`` (both protocol eras), the real server, real commands.

Time-driven endings (the job's time limit, its TTL) are MockClock jumps; everything else waits on the server's
own events (``job_output`` with ``wait_s``), never on a sleep of the test.
"""

from __future__ import annotations

import json
import sys
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
import trio.testing
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from trio.testing import MockClock

from tests.conftest import PY_VIEW, connect, connect_process, processes_with, until_gone
from tests.harness import connect_served, serving
from tests.test_cli import run_cli
from tests.test_execution_e2e import peak_rss_kib, server_pid
from trio_exec import compose, job_tools
from trio_exec.results import output_schema

PY = sys.executable


def config(tmp_path: Path, tools: dict[str, str], *extra: str) -> list[str]:
    """Server arguments for background tools running Python ``code`` (name -> code)."""
    path = tmp_path / "jobs.toml"
    tables = []
    for name, code in tools.items():
        template = f'{PY} -c "{code}"'
        tables.append(f"[tools.{name}]\ntemplate = {json.dumps(template)}\nbackground = true\n")
    path.write_text("\n".join(tables))
    return ["--allow-dangerous", "--config", str(path), *PY_VIEW, *extra]


def counting(n: int, marker: str = "", pause_s: float = 0.05) -> str:
    """Code that prints ``line 0`` .. ``line n-1``, a pause between them, then exits 3."""
    lines = f"[print('line', i, flush=True) or time.sleep({pause_s}) for i in range({n})]"
    return f"import time, sys; {lines}; sys.exit(3)  # {marker}"


def forever(marker: str) -> str:
    return f"import time; print('up', flush=True); time.sleep(300)  # {marker}"


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert result.structured_content is not None, result
    return dict(result.structured_content)


async def until_end(client: Client, job_id: str) -> dict[str, Any]:
    """``job_output`` waiting for the end (bounded: the waits are the server's, on real time)."""
    with trio.fail_after(60):
        while True:
            page = await call(client, "job_output", {"id": job_id, "wait_s": 30, "until": "end", "offset": 0})
            if page["job"]["state"] != "working":
                return page


async def test_a_background_call_answers_at_once_and_the_job_reads_to_its_end(tmp_path: Path, mode: str) -> None:
    async with connect(*config(tmp_path, {"count": counting(5)}), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        started = await client.call_tool("count", {"background": True})
        assert started.structured_content is not None
        job = started.structured_content["job"]
        page = await until_end(client, job["id"])
    assert {"count", *job_tools.NAMES} <= set(tools)
    assert set(tools["count"].input_schema["properties"]) >= {"background", "wait_s", "timeout"}
    assert tools["count"].output_schema == output_schema(pipeline=False, background=True)
    jsonschema.validate(started.structured_content, output_schema(pipeline=False, background=True))
    assert started.is_error is False
    assert job["state"] in ("working", "completed")
    assert isinstance(started.content[0], types.TextContent)
    assert f'job_output {{"id": "{job["id"]}"}}' in started.content[0].text or job["state"] != "working"
    assert page["output"] == "".join(f"line {i}\n" for i in range(5))
    assert page["job"]["state"] == "completed"
    assert page["job"]["exit_code"] == 3  # a command that ran to its end completed, whatever its status
    assert page["more"] is False
    assert page["waited"] == "end"


async def test_wait_s_answers_a_quick_command_in_full_and_keeps_it_readable(tmp_path: Path) -> None:
    async with connect(*config(tmp_path, {"count": counting(3, pause_s=0)})) as client:
        done = await call(client, "count", {"wait_s": 60})
        listed = await call(client, "job_list", {})
        again = await call(client, "job_output", {"id": done["job"]["id"], "offset": 0})
    assert done["job"]["state"] == "completed"
    assert done["exit_code"] == 3
    assert done["stdout"] == "line 0\nline 1\nline 2\n"
    assert done["error"] is None
    assert [j["id"] for j in listed["jobs"]] == [done["job"]["id"]]
    assert again["output"] == done["stdout"]


async def test_pages_continue_where_the_last_read_ended_and_tail_lines_shows_the_end(tmp_path: Path) -> None:
    async with connect(*config(tmp_path, {"count": counting(10, pause_s=0)})) as client:
        job = (await call(client, "count", {"wait_s": 60}))["job"]
        first = await call(client, "job_output", {"id": job["id"], "offset": 0, "max_bytes": 14})
        second = await call(client, "job_output", {"id": job["id"], "max_bytes": 14})
        tail = await call(client, "job_output", {"id": job["id"], "tail_lines": 2})
        errors = await call(client, "job_output", {"id": job["id"], "stream": "stderr"})
    assert (first["output"], first["offset"], first["next_offset"], first["more"]) == ("line 0\nline 1\n", 0, 14, True)
    assert (second["output"], second["offset"], second["next_offset"]) == ("line 2\nline 3\n", 14, 28)
    assert tail["output"] == "line 8\nline 9\n"
    assert tail["next_offset"] == job["stdout_bytes"] == 70
    assert (errors["output"], errors["stream"], errors["more"]) == ("", "stderr", False)


async def test_job_cancel_stops_the_whole_process_group(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    async with connect(*config(tmp_path, {"up": forever(marker)})) as client:
        job = (await call(client, "up", {"background": True}))["job"]
        first = await call(client, "job_output", {"id": job["id"], "wait_s": 30})
        assert processes_with(marker)
        stopped = await call(client, "job_cancel", {"id": job["id"]})
        await until_gone(marker)
        again = await client.call_tool("job_cancel", {"id": job["id"]})
    assert first["output"] == "up\n"
    assert first["waited"] == "output"
    assert stopped["was"] == "working"
    assert stopped["job"]["state"] == "cancelled"
    assert again.structured_content is not None
    assert again.structured_content["was"] == "cancelled"
    assert isinstance(again.content[0], types.TextContent)
    assert "had already ended" in again.content[0].text


async def test_an_unknown_job_is_a_clear_error_result(tmp_path: Path) -> None:
    async with connect(*config(tmp_path, {"count": counting(1)})) as client:
        result = await client.call_tool("job_output", {"id": "0123456789abcdef"})
        bad = await client.call_tool("job_output", {"id": "x", "max_bytes": 0})
    assert result.is_error is True
    assert result.structured_content is not None
    assert result.structured_content["error"]["code"] == "not_found"
    assert "job_list" in result.structured_content["error"]["message"]
    assert bad.structured_content is not None
    assert bad.structured_content["error"]["code"] == "invalid_arguments"
    assert bad.structured_content["error"]["argument"] == "max_bytes"


async def test_a_job_is_stopped_at_its_time_limit(tmp_path: Path, mock_clock: MockClock) -> None:
    mock_clock.rate = 1
    marker = f"m-{uuid.uuid4().hex}"
    async with connect(*config(tmp_path, {"up": forever(marker)}, "--job-max-runtime", "100")) as client:
        job = (await call(client, "up", {"background": True}))["job"]
        await call(client, "job_output", {"id": job["id"], "wait_s": 30})  # it runs
        mock_clock.jump(100)
        page = await until_end(client, job["id"])
    await until_gone(marker)
    assert page["job"]["state"] == "failed"
    assert page["job"]["error"]["code"] == "timeout"
    assert "100s" in page["job"]["error"]["message"]


async def test_an_ended_job_is_forgotten_after_its_ttl(tmp_path: Path, mock_clock: MockClock) -> None:
    mock_clock.rate = 1
    async with connect(*config(tmp_path, {"count": counting(1, pause_s=0)}, "--job-ttl", "60")) as client:
        job = (await call(client, "count", {"wait_s": 30}))["job"]
        mock_clock.jump(59)
        kept = await call(client, "job_list", {})
        mock_clock.jump(2)
        await trio.testing.wait_all_tasks_blocked()
        gone = await client.call_tool("job_output", {"id": job["id"]})
    assert [j["id"] for j in kept["jobs"]] == [job["id"]]
    assert gone.structured_content is not None
    assert gone.structured_content["error"]["code"] == "not_found"


async def test_the_job_limit_refuses_when_every_job_runs_and_forgets_the_oldest_ended_one(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    tools = {"up": forever(marker), "count": counting(1, pause_s=0)}
    async with connect(*config(tmp_path, tools, "--max-jobs-per-client", "2")) as client:
        ended = (await call(client, "count", {"wait_s": 30}))["job"]
        running = (await call(client, "up", {"background": True}))["job"]
        third = (await call(client, "up", {"background": True}))["job"]  # the ended one makes room
        refused = await client.call_tool("up", {"background": True})
        listed = await call(client, "job_list", {})
        for job in (running, third):
            await call(client, "job_cancel", {"id": job["id"]})
    await until_gone(marker)
    assert refused.is_error is True
    assert refused.structured_content is not None
    assert refused.structured_content["error"]["code"] == "busy"
    assert "--max-jobs-per-client" in refused.structured_content["error"]["message"]
    assert {j["id"] for j in listed["jobs"]} == {running["id"], third["id"]}
    assert ended["id"] not in {j["id"] for j in listed["jobs"]}


async def test_stopping_the_server_cancels_every_job_and_leaves_no_process(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    audit = tmp_path / "audit.jsonl"
    async with connect_served(*config(tmp_path, {"up": forever(marker)}, "--audit-log", str(audit))) as (
        client,
        served,
    ):
        for _ in range(3):
            await call(client, "up", {"background": True})
        with trio.fail_after(30):
            while len(processes_with(marker)) < 3:  # noqa: ASYNC110 - other processes: no event to wait on
                await trio.sleep(0.02)
        served.stopping.set()
        await served.done.wait()
    await until_gone(marker)
    ends = [r for r in map(json.loads, audit.read_text().splitlines()) if r["event"] == "job_end"]
    assert [e["state"] for e in ends] == ["cancelled"] * 3


async def test_a_program_that_cannot_start_fails_the_call_itself(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text('[tools.gone]\ntemplate = "definitely-not-installed-xyz"\nbackground = true\n')
    async with connect("--allow-missing-binaries", "--config", str(path)) as client:
        result = await client.call_tool("gone", {"background": True})
        listed = await call(client, "job_list", {})
    assert result.is_error is True
    assert result.structured_content is not None
    assert result.structured_content["error"]["code"] == "spawn_failed"
    assert listed["jobs"] == []


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [({"background": "yes"}, "background"), ({"wait_s": -1}, "wait_s"), ({"wait_s": 1e9}, "wait_s"),
     ({"background": False, "wait_s": 1}, "wait_s")],
)  # fmt: skip
async def test_the_reserved_arguments_are_checked(tmp_path: Path, arguments: dict[str, Any], argument: str) -> None:
    async with connect(*config(tmp_path, {"count": counting(1)})) as client:
        result = await client.call_tool("count", arguments)
        listed = await call(client, "job_list", {})
    assert result.structured_content is not None
    assert result.structured_content["error"]["code"] == "invalid_arguments"
    assert result.structured_content["error"]["argument"] == argument
    assert listed["jobs"] == []


async def test_without_background_tools_no_job_tool_is_published() -> None:
    async with connect("--cmd", 'echo|"echo {message}"') as client:
        names = [t.name for t in (await client.list_tools()).tools]
        with pytest.raises(Exception, match="unknown tool 'job_list'"):
            await client.call_tool("job_list", {})
    assert names == ["echo"]


async def test_shell_execute_runs_a_pipeline_as_a_job_with_background(tmp_path: Path) -> None:
    args = ["--allow-commands", "seq,tail", "--background", "--base-path", str(tmp_path)]
    async with connect(*args) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        done = await call(
            client, "shell_execute", {"command": ["seq", "1", "100", "|", "tail", "-n", "2"], "wait_s": 60}
        )
    assert "background" in tools["shell_execute"].input_schema["properties"]
    jsonschema.validate(done, output_schema(pipeline=True, background=True))
    assert done["stdout"] == "99\n100\n"
    assert [s["program"] for s in done["stages"]] == ["seq", "tail"]
    assert done["job"]["state"] == "completed"


async def test_progress_of_a_waited_job_carries_its_latest_line(tmp_path: Path, mock_clock: MockClock) -> None:
    mock_clock.rate = 1
    marker = f"m-{uuid.uuid4().hex}"
    messages: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message)

    async with connect(*config(tmp_path, {"up": forever(marker)})) as client:
        job = (await call(client, "up", {"background": True}))["job"]
        await call(client, "job_output", {"id": job["id"], "wait_s": 30})  # 'up' was printed
        async with trio.open_nursery() as nursery:

            async def wait() -> None:
                await client.call_tool(
                    "job_output", {"id": job["id"], "wait_s": 200, "until": "end"}, progress_callback=on_progress
                )

            nursery.start_soon(wait)
            with trio.fail_after(60):
                while not messages:
                    await trio.testing.wait_all_tasks_blocked()
                    mock_clock.jump(2)
                    await trio.sleep(0.01)
            await call(client, "job_cancel", {"id": job["id"]})
    await until_gone(marker)
    assert messages[0] == "up"


async def test_the_audit_trail_has_the_start_reads_cancel_and_end_of_a_job(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    marker = f"m-{uuid.uuid4().hex}"
    async with connect(*config(tmp_path, {"up": forever(marker)}, "--audit-log", str(audit))) as client:
        job = (await call(client, "up", {"background": True}))["job"]
        await call(client, "job_output", {"id": job["id"], "wait_s": 30})
        await call(client, "job_cancel", {"id": job["id"]})
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    events = [r["event"] for r in records if r.get("job") == job["id"]]
    assert events[0] == "job_start"
    assert {"call", "job_read", "job_cancel", "job_end"} <= set(events)
    end = next(r for r in records if r["event"] == "job_end")
    assert (end["state"], end["bytes_out"], end["client"]) == ("cancelled", 3, "stdio")


HTTP = ["--transport", "streamable-http"]
TOKENS = ("token-of-a-" + "a" * 16, "token-of-b-" + "b" * 16)


@asynccontextmanager
async def http_client(url: str, token: str, mode: str = "auto") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers) as h,
        Client(streamable_http_client(url, http_client=h), mode=mode) as c,
    ):
        yield c


@pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])
async def test_over_http_a_job_outlives_its_client_and_no_other_client_reaches_it(
    tmp_path: Path, mode: str, stateful: bool
) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    tokens = tmp_path / "tokens"
    tokens.write_text("\n".join(TOKENS) + "\n")
    args = config(tmp_path, {"up": forever(marker)}, *HTTP, "--auth-token-file", str(tokens))
    args += ["--stateful"] if stateful else []
    a, b = TOKENS
    async with serving(*args) as server:
        async with http_client(server.url, a, mode) as client:
            job = (await call(client, "up", {"background": True}))["job"]
        async with http_client(server.url, b, mode) as other:
            seen = await call(other, "job_list", {})
            read = await other.call_tool("job_output", {"id": job["id"]})
            stop = await other.call_tool("job_cancel", {"id": job["id"]})
        assert processes_with(marker)  # B stopped nothing
        async with http_client(server.url, a, mode) as again:  # A, on a new connection (and session)
            page = await call(again, "job_output", {"id": job["id"], "wait_s": 30, "offset": 0})
            stopped = await call(again, "job_cancel", {"id": job["id"]})
    await until_gone(marker)
    assert seen["jobs"] == []
    for refused in (read, stop):
        assert refused.is_error is True
        assert refused.structured_content is not None
        assert refused.structured_content["error"]["code"] == "not_found"
    assert page["output"] == "up\n"
    assert stopped["job"]["state"] == "cancelled"


async def test_a_job_that_prints_200_megabytes_runs_to_its_end_in_bounded_memory(tmp_path: Path) -> None:
    name = f"big{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.toml"  # the server's command line carries the name
    path.write_text(f'[tools.{name}]\ntemplate = "head -c 209715200 /dev/zero"\nbackground = true\n')
    async with connect_process("--config", str(path)) as client:
        job = (await call(client, name, {"background": True}))["job"]
        page = await until_end(client, job["id"])
        tail = await call(client, "job_output", {"id": job["id"], "offset": 5 * 1024 * 1024, "max_bytes": 16})
        peak_kib = peak_rss_kib(server_pid(name))
    done = page["job"]
    assert (done["state"], done["exit_code"]) == ("completed", 0)
    assert done["stdout_bytes"] == 200 * 1024 * 1024
    assert done["stdout_dropped"] == 200 * 1024 * 1024 - 8 * 1024 * 1024
    assert tail["offset"] == 196 * 1024 * 1024  # the middle was dropped: the read continues at the kept tail
    assert tail["skipped_bytes"] == 196 * 1024 * 1024 - 5 * 1024 * 1024
    assert peak_kib < 120 * 1024, f"server peak RSS {peak_kib} KiB"


def test_dry_run_says_which_tools_run_jobs_and_their_limits(tmp_path: Path) -> None:
    on = run_cli(*config(tmp_path, {"count": counting(1)}, "--max-jobs", "3", "--dry-run"))
    off = run_cli("--cmd", 'echo|"echo {message}"', "--dry-run")
    assert on.returncode == 0, on.stderr
    assert "background jobs: count (tools job_output, job_cancel, job_list)" in on.stdout
    assert "also as MCP tasks (2025-11-25 capabilities.tasks, 2026-07-28 extension" in on.stdout
    assert "3 jobs at most" in on.stdout
    assert "background jobs: off" in off.stdout


def test_a_template_named_like_a_job_tool_is_refused_when_jobs_are_on(tmp_path: Path) -> None:
    args = [*config(tmp_path, {"count": counting(1)}), "--cmd", 'job_list|"echo hi"', "--dry-run"]
    refused = run_cli(*args)
    assert refused.returncode == 2
    assert "'job_list' clashes with the job tool" in refused.stderr


async def test_a_job_whose_program_cannot_start_fails_the_call_and_is_not_kept(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path = tmp_path / "jobs.toml"
    path.write_text(f'[tools.here]\ntemplate = "true"\ncwd = "{work}"\nbackground = true\n')
    async with connect("--config", str(path), "--sandbox", "off") as client:
        work.rmdir()  # the working directory is gone when the job starts
        result = await client.call_tool("here", {"background": True})
        listed = await call(client, "job_list", {})
    assert result.structured_content is not None
    assert result.structured_content["error"]["code"] == "spawn_failed"
    assert listed["jobs"] == []


async def test_stderr_is_kept_and_read_on_its_own(tmp_path: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    async with connect(*config(tmp_path, {"both": code})) as client:
        done = await call(client, "both", {"wait_s": 60})
        errors = await call(client, "job_output", {"id": done["job"]["id"], "stream": "stderr", "offset": 0})
    assert (done["stdout"], done["stderr"]) == ("out\n", "err\n")
    assert (errors["output"], done["job"]["stderr_bytes"]) == ("err\n", 4)


async def test_the_server_wide_job_limit_and_the_page_limits_are_errors_that_say_so(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    async with connect(*config(tmp_path, {"up": forever(marker)}, "--max-jobs", "1")) as client:
        job = (await call(client, "up", {"background": True}))["job"]
        refused = await client.call_tool("up", {"background": True})
        too_big = await client.call_tool("job_output", {"id": job["id"], "max_bytes": 10**9})
        too_long = await client.call_tool("job_output", {"id": job["id"], "wait_s": 10**9})
        await call(client, "job_cancel", {"id": job["id"]})
    await until_gone(marker)
    for result, code, words in (
        (refused, "busy", "--max-jobs"),
        (too_big, "invalid_arguments", "'max_bytes' must be at most 1048576"),
        (too_long, "invalid_arguments", "'wait_s' must be at most 300"),
    ):
        assert result.is_error is True
        assert result.structured_content is not None
        assert result.structured_content["error"]["code"] == code
        assert words in result.structured_content["error"]["message"]


async def test_job_tools_are_rate_limited_like_calls(tmp_path: Path) -> None:
    args = config(tmp_path, {"count": counting(1)}, "--rate-limit-rps", "0.001", "--rate-limit-burst", "1")
    async with connect(*args) as client:
        first = await client.call_tool("job_list", {})
        second = await client.call_tool("job_list", {})
    assert first.is_error is False
    assert second.structured_content is not None
    assert second.structured_content["error"]["code"] == "rate_limited"
    assert second.structured_content["error"]["retry_after_s"] > 0


def test_the_composition_root_knows_the_job_tools_by_their_names() -> None:
    assert compose.JOB_TOOLS == job_tools.NAMES  # compose does not import job_tools (no trio for --dry-run)


async def test_a_tools_own_timeout_holds_for_its_jobs(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    args = config(tmp_path, {"up": forever(marker)})
    path = tmp_path / "jobs.toml"
    path.write_text(path.read_text() + "timeout_s = 1\n")  # the operator's limit for this tool
    async with connect(*args) as client:
        job = (await call(client, "up", {"background": True}))["job"]
        ended = await until_end(client, job["id"])
    await until_gone(marker)
    assert ended["job"]["state"] == "failed"
    assert ended["job"]["error"]["code"] == "timeout"
    assert "time limit of 1s" in ended["job"]["error"]["message"]
