"""The official Node clients against the real server: MCP Inspector v1 and v2 (their CLIs) and the TypeScript
SDK v1 (``@modelcontextprotocol/sdk``) and v2 (``@modelcontextprotocol/client``), over stdio and Streamable HTTP.

They come from the npm registry with Node 22, pinned beside the conformance suite in
``conformance/package-lock.json``; ``nox -s conformance`` installs them and runs this file with
``TRIO_EXEC_NODE_PREFIX`` naming the install. Without it (the default ``tests`` session) the file skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import assert_gone
from tests.netserver import run_server
from tests.test_jobs_e2e import config as job_config
from tests.test_jobs_e2e import counting, forever

PREFIX = Path(os.environ.get("TRIO_EXEC_NODE_PREFIX", "/nonexistent")).resolve()
NODE = PREFIX / "node_modules" / "node" / "bin" / "node"
INSPECTORS = {
    "v1": PREFIX / "node_modules" / "inspector-v1" / "cli" / "build" / "cli.js",
    "v2": PREFIX
    / "node_modules"
    / "@modelcontextprotocol"
    / "inspector"
    / "clients"
    / "launcher"
    / "build"
    / "index.js",
}
ECHO = ["--cmd", 'echo|"echo {message}"']
SERVER = [sys.executable, "-m", "trio_exec", *ECHO]

pytestmark = pytest.mark.skipif(  # given a prefix, a missing install fails: nox -s conformance made it
    "TRIO_EXEC_NODE_PREFIX" not in os.environ,
    reason="the Node clients are not installed: `nox -s conformance` installs them and runs this file",
)


async def node(*args: str | Path, fails: bool = False) -> str:
    """Run Node 22 from the prefix; its stdout (or, with ``fails``, its stderr: it must exit non-zero)."""
    with trio.fail_after(120):
        done = await trio.run_process([str(NODE), *map(str, args)], capture_stdout=True, capture_stderr=True,
                                      check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    if fails:
        assert done.returncode != 0, done.stdout.decode(errors="replace")[-3000:]
        return done.stderr.decode(errors="replace")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done.stdout.decode()


def script(name: str) -> Path:
    """tests/node/NAME, copied inside the prefix so that Node finds the SDKs (and ext-tasks)."""
    scripts = PREFIX / "trio-exec-tests"
    scripts.mkdir(exist_ok=True)
    copy = scripts / name
    shutil.copyfile(Path(__file__).parent / "node" / name, copy)
    return copy


async def sdk_session(sdk: str, transport: str, target: str, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    return json.loads(await node(script("call.mjs"), sdk, transport, target, json.dumps(calls)))


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_the_inspector_cli_may_send_a_number_for_a_text_placeholder(version: str) -> None:
    """``--tool-arg message=42`` goes out as the JSON number 42 (issue 12, item 2)."""
    out = await node(INSPECTORS[version], "--cli", *SERVER, "--method", "tools/call", "--tool-name", "echo",
                     "--tool-arg", "message=42")  # fmt: skip
    result = json.loads(out)
    assert result["isError"] is False, result
    assert result["structuredContent"]["stdout"] == "42\n"


@pytest.mark.parametrize("sdk", ["v1", "v2"])
@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_the_typescript_sdks_list_call_and_read_argument_errors(sdk: str, transport: str) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [("echo", {"message": 42}), ("echo", {}), ("echo", {"message": "a b"})]
    if transport == "stdio":
        session = await sdk_session(sdk, "stdio", json.dumps(SERVER), calls)
    else:
        async with run_server("--transport", "streamable-http", *ECHO) as server:
            session = await sdk_session(sdk, "http", server.url, calls)
    (tool,) = session["tools"]
    number, missing, text = session["results"]
    assert [b["type"] for b in tool["inputSchema"]["properties"]["message"]["anyOf"]] == ["string", "number", "boolean"]
    assert number["structuredContent"]["stdout"] == "42\n"
    assert missing["isError"] is True  # a result the model reads, not an exception (SEP-1303)
    assert missing["structuredContent"]["error"]["code"] == "invalid_arguments"
    assert text["structuredContent"]["stdout"] == "a b\n"


async def test_the_typescript_sdks_websocket_client_gives_its_token_in_the_url() -> None:
    """``WebSocketClientTransport(url)`` cannot send a header: ``?access_token=`` is how it authenticates."""
    token = "node-ws-token-" + "n" * 16
    async with run_server("--transport", "websocket", *ECHO, env={"MCP_EXEC_AUTH_TOKEN": token}) as server:
        session = await sdk_session("v1", "ws", f"{server.url}?access_token={token}", [("echo", {"message": "ws"})])
        refused = await node(script("call.mjs"), "v1", "ws", server.url, "[]", fails=True)
    assert session["results"][0]["structuredContent"]["stdout"] == "ws\n"
    assert "non-101 status code" in refused  # without the token the handshake is refused (401)


async def test_inspector_v2_without_a_token_is_told_the_server_takes_a_static_token() -> None:
    """A 401 sends Inspector v2 into OAuth (discovery, then client registration); what it finds and prints
    says that this server takes a static Bearer token instead (issue 12, item 7)."""
    token = "inspector-token-" + "i" * 16
    interactive = {**os.environ, "MCP_AUTO_OPEN_ENABLED": "true", "BROWSER": "/bin/false",
                   "MCP_INSPECTOR_SECRET_STORE": "memory"}  # fmt: skip
    async with run_server("--transport", "streamable-http", *ECHO, env={"MCP_EXEC_AUTH_TOKEN": token}) as server:
        argv = [str(NODE), str(INSPECTORS["v2"]), "--cli", server.url, "--method", "tools/list"]
        with trio.fail_after(120):
            done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False, env=interactive,
                                          stdin=subprocess.DEVNULL)  # fmt: skip
        listed = await node(*argv[1:], "--header", f"Authorization: Bearer {token}")
    said = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode != 0
    assert "static Bearer token, not OAuth" in said, said[-2000:]
    assert json.loads(listed)["tools"][0]["name"] == "echo"  # and with the token it works


async def test_inspector_v2_finds_the_input_schemas_portable() -> None:
    """Its schema-portability check (``--strict``) flags a ``type`` list (Gemini's OpenAPI subset rejects one):
    the input schemas, which reach the model's provider, use single-type ``anyOf`` branches instead."""
    argv = [str(NODE), str(INSPECTORS["v2"]), "--cli", "--strict", *SERVER, "--allow-commands", "echo",
            "--method", "tools/list"]  # fmt: skip
    with trio.fail_after(120):
        done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False,
                                      stdin=subprocess.DEVNULL)  # fmt: skip
    report = done.stderr.decode(errors="replace")
    assert done.returncode == 0, report[-2000:]
    assert "0 errors" in report
    assert "Path: inputSchema" not in report, report  # (the output schemas' nullable unions stay: a validator's speed)


@pytest.mark.parametrize("sdk", ["v1", "v2"])
async def test_a_long_call_outlives_the_sdks_request_timeout_only_with_reset_on_progress(sdk: str) -> None:
    """The TypeScript SDKs time a request out after ``timeout`` (60 s by default) whatever progress arrives,
    unless the call passes ``onprogress`` *and* ``resetTimeoutOnProgress: true`` (the README says so); the
    server reports progress every 2 s. Here a 7 s command against a 3 s request timeout."""
    slow = [sys.executable, "-m", "trio_exec", "--cmd", 'slow|"sleep 7"']
    calls: list[Any] = [
        ("slow", {}, {"timeout": 3000}),
        ("slow", {}, {"timeout": 3000, "progress": True}),
        ("slow", {}, {"timeout": 3000, "progress": True, "resetTimeoutOnProgress": True}),
    ]
    plain, progress_only, reset = (await sdk_session(sdk, "stdio", json.dumps(slow), calls))["results"]
    assert "timed out" in plain["thrown"].lower()
    assert "timed out" in progress_only["thrown"].lower()
    assert progress_only["progressSeen"] >= 1  # progress arrived, and did not keep the request alive
    assert reset["structuredContent"]["exit_code"] == 0
    assert reset["progressSeen"] >= 3


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_the_typescript_sdks_tasks_api_runs_lists_and_cancels_tasks(tmp_path: Path, transport: str) -> None:
    """The SDK v1 (1.32) speaks the 2025-11-25 tasks: callToolStream creates a task, polls tasks/get at the
    pollInterval and fetches tasks/result; listTasks, cancelTask, getTask; a second cancel is -32602."""
    marker = f"m-{uuid.uuid4().hex}"
    args = job_config(tmp_path, {"count": counting(10), "up": forever(marker)})
    if transport == "stdio":
        out = await node(script("tasks.mjs"), "stdio", json.dumps([sys.executable, "-m", "trio_exec", *args]))
    else:
        async with run_server("--transport", "streamable-http", *args) as server:
            out = await node(script("tasks.mjs"), "http", server.url)
    assert_gone(marker)
    session = json.loads(out)
    kinds = [m["type"] for m in session["streamed"]]
    assert kinds[0] == "taskCreated"
    assert kinds[-1] == "result", session["streamed"]
    assert set(kinds[1:-1]) == {"taskStatus"}
    result = session["streamed"][-1]["result"]
    assert result["structuredContent"]["exit_code"] == 3
    assert result["structuredContent"]["stdout"].count("line") == 10
    task_id = session["created"]["task"]["taskId"]
    assert [task_id, "working"] in session["listed"]
    assert session["cancelled"]["status"] == "cancelled"
    assert session["after"]["status"] == "cancelled"
    assert session["twice"]["code"] == -32602


@pytest.mark.parametrize("version", ["2026-07-28", "2025-11-25"])
async def test_the_ext_tasks_client_settles_and_cancels_tasks(tmp_path: Path, version: str) -> None:
    """``@modelcontextprotocol/ext-tasks`` (0.2) on the SDK v2 client over Streamable HTTP, in both eras: at
    2026-07-28 (server/discover; the tasks extension) its calls and ``tasks/*`` go through the raw dispatch the
    script supplies, at 2025-11-25 (initialize; the core tasks) through the SDK. "count" outlasts the 0.5 s a 2026
    call waits, so it is a task either way: settle() polls it to its result; cancel() stops "up"."""
    modern = version == "2026-07-28"
    marker = f"m-{uuid.uuid4().hex}"
    args = job_config(tmp_path, {"count": counting(10, pause_s=0.1), "up": forever(marker)})
    async with run_server("--transport", "streamable-http", *args) as server:
        session = json.loads(await node(script("ext_tasks.mjs"), server.url, version))
        assert_gone(marker)  # the cancel stopped it, not the server's stop
    assert session["negotiated"] == {"era": "modern" if modern else "legacy", "version": version}
    count, up = session["count"], session["up"]
    assert count["kind"] == "task", count
    assert count["status"] == "completed", count
    assert count["result"]["structuredContent"]["exit_code"] == 3
    assert count["result"]["structuredContent"]["stdout"].count("line") == 10
    assert count["lastTask"]["status"] == "completed"
    assert {e.get("taskId") for e in count["events"]} - {None} == {count["taskId"]}
    assert up["kind"] == "task"
    assert up["status"] == "cancelled", up
    assert up["after"] == {**up["after"], "taskId": up["taskId"], "status": "cancelled"}
    if not modern:
        assert session["wire"] == []  # all of it went through the SDK's own requests
        return
    wire = session["wire"]
    created = wire[0]["response"]["result"]
    assert wire[0]["request"]["params"]["name"] == "count"
    assert (created["resultType"], created["taskId"]) == ("task", count["taskId"])
    (cancel,) = [x for x in wire if x["request"]["method"] == "tasks/cancel"]
    assert set(cancel["response"]["result"]) - {"_meta"} == {"resultType"}
    for exchange in wire:  # the transport mirrors the task id into Mcp-Name, as the server requires
        params = exchange["request"]["params"]
        assert exchange["headers"]["mcp-name"] == params.get("taskId", params.get("name"))
        assert (
            exchange["request"]["method"] == "tools/call" or exchange["response"]["result"]["resultType"] == "complete"
        )
