"""End to end over stdio: the real server process, the real ``mcp.Client``, both protocol eras."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio
from mcp.shared.exceptions import MCPError

from tests.conftest import PY_VIEW, connect, processes_with, sleeper, until_gone
from tests.malformed import CASES, INIT, INITIALIZED, echo_call
from trio_exec.results import OUTPUT_SCHEMA
from trio_exec.transports.stdio import MAX_LINE_BYTES

ECHO = ["--cmd", 'echo|"echo {message}"']


async def test_lists_one_tool_per_template_with_schemas(mode: str) -> None:
    async with connect(*ECHO, "--cmd", 'date|"date -u"', mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"echo", "date"}
    echo = tools["echo"]
    assert echo.input_schema["properties"]["message"]["anyOf"][0]["type"] == "string"
    assert echo.input_schema["required"] == ["message"]
    assert echo.input_schema["additionalProperties"] is False
    assert "timeout" in echo.input_schema["properties"]
    assert echo.output_schema == OUTPUT_SCHEMA
    assert "echo {message}" in (echo.description or "")
    assert tools["date"].input_schema["required"] == []


async def test_a_call_returns_stdout_and_exit_code(mode: str) -> None:
    async with connect(*ECHO, mode=mode) as client:
        result = await client.call_tool("echo", {"message": "hello world"})
    assert result.is_error is False
    content = result.structured_content
    assert content is not None
    jsonschema.validate(content, OUTPUT_SCHEMA)
    assert content["stdout"] == "hello world\n"
    assert content["exit_code"] == 0
    assert content["error"] is None
    assert "hello world" in result.content[0].text  # type: ignore[union-attr]


async def test_a_non_zero_exit_is_information_not_an_error(mode: str) -> None:
    async with connect("--cmd", 'false|"false"', "--cmd", 'ls|"ls {path}"', mode=mode) as client:
        result = await client.call_tool("false", {})
        missing = await client.call_tool("ls", {"path": "/nonexistent-trio-exec-test"})
    assert result.is_error is False
    assert result.structured_content is not None
    assert result.structured_content["exit_code"] == 1
    assert missing.is_error is False
    assert missing.structured_content is not None
    assert missing.structured_content["exit_code"] == 2
    assert "nonexistent-trio-exec-test" in missing.structured_content["stderr"]


@pytest.mark.parametrize(
    ("arguments", "argument", "rule"),
    [
        ({"message": ["a"]}, "message", "must be of type string"),
        ({}, "message", "'message' is a required property"),
        ({"message": "hi", "extra": "x"}, "extra", "('extra' was unexpected)"),
        ({"message": "hi", "timeout": -1}, "timeout", "must be at least"),
        ({"message": "hi", "timeout": 10**6}, "timeout", "must be at most"),
        ({"message": "hi", "timeout": "2"}, "timeout", "must be of type number"),
    ],
    ids=[
        "wrong-type",
        "missing",
        "unknown-property",
        "timeout-below-the-floor",
        "timeout-above-the-cap",
        "timeout-text",
    ],
)
async def test_arguments_that_break_the_schema_are_tool_errors_the_model_reads(
    mode: str, arguments: dict[str, object], argument: str, rule: str
) -> None:
    async with connect(*ECHO, mode=mode) as client:
        result = await client.call_tool("echo", arguments)  # SEP-1303: a result, not a JSON-RPC error
        after = await client.call_tool("echo", {"message": "fixed"})
    assert result.is_error is True
    assert result.structured_content is not None
    error = result.structured_content["error"]
    assert (error["code"], error["argument"]) == ("invalid_arguments", argument)
    assert rule in error["message"]
    assert rule in result.content[0].text  # type: ignore[union-attr]
    assert after.structured_content is not None
    assert after.structured_content["stdout"] == "fixed\n"


async def test_numbers_and_booleans_for_text_placeholders_become_their_canonical_text(mode: str) -> None:
    """Both Inspectors send ``message=42`` as the JSON number 42, and models do the same; the schema says so."""
    async with connect(*ECHO, mode=mode) as client:
        (tool,) = (await client.list_tools()).tools
        outputs = []
        for value in (42, 2.0, 0.5, -0.0, True, 10**20):
            result = await client.call_tool("echo", {"message": value})
            assert result.structured_content is not None
            outputs.append(result.structured_content["stdout"])
        listed = await client.call_tool("echo", {"message": [1]})
    assert [b["type"] for b in tool.input_schema["properties"]["message"]["anyOf"]] == ["string", "number", "boolean"]
    assert outputs == ["42\n", "2\n", "0.5\n", "0\n", "true\n", "100000000000000000000\n"]
    assert listed.structured_content is not None
    assert listed.structured_content["error"]["code"] == "invalid_arguments"  # a list is still no text


async def test_the_python_sdks_read_timeout_is_not_extended_by_progress() -> None:
    """What the README tells Python users: ``read_timeout_seconds`` ends a call that still reports progress
    (every 2 s here); only a timeout above the tool's own lets a long call finish."""
    seen: list[float] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with connect("--cmd", 'slow|"sleep 5"') as client:
        with pytest.raises(MCPError, match="timed out"):
            await client.call_tool("slow", {}, read_timeout_seconds=3, progress_callback=progress)
        reported = len(seen)
        finished = await client.call_tool("slow", {}, read_timeout_seconds=30, progress_callback=progress)
    assert reported >= 1  # progress arrived before the timeout, and did not extend it
    assert finished.structured_content is not None
    assert finished.structured_content["exit_code"] == 0


async def test_an_unknown_tool_is_invalid_params(mode: str) -> None:
    async with connect(*ECHO, mode=mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("nope", {})
    assert caught.value.error.code == -32602
    assert "nope" in caught.value.error.message


async def test_a_placeholder_inside_a_token_stays_one_argv_element() -> None:
    code = "import sys, json; print(json.dumps(sys.argv[1:]))"
    async with connect("--allow-dangerous", "--cmd", f"argv|\"{sys.executable} -c '{code}' --out={{name}} x\"") as c:
        result = await c.call_tool("argv", {"name": "a b c"})
    assert result.structured_content is not None
    assert json.loads(result.structured_content["stdout"]) == ["--out=a b c", "x"]


async def test_the_server_exits_cleanly_on_stdin_eof() -> None:
    with trio.fail_after(30):
        proc = await trio.run_process(
            [sys.executable, "-m", "trio_exec", *ECHO], stdin=b"", capture_stdout=True, capture_stderr=True
        )
    assert proc.returncode == 0
    assert proc.stdout == b""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_the_server_exits_cleanly_on_a_signal(signum: signal.Signals) -> None:
    async with trio.open_nursery() as nursery:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "trio_exec", "--log-level", "debug", *ECHO],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        seen = b""
        with trio.fail_after(30):
            while b"serving" not in seen:  # the server logs once its transport is up
                seen += await proc.stderr.receive_some()
        proc.send_signal(signum)
        with trio.fail_after(10):
            code = await proc.wait()
        nursery.cancel_scope.cancel()
    assert code == 0


class RawStdio:
    """The server as a subprocess with raw pipes: bytes in on stdin, JSON lines out on stdout."""

    def __init__(self, proc: trio.Process) -> None:
        assert proc.stdin is not None
        assert proc.stdout is not None
        self.proc = proc
        self.stdin = proc.stdin
        self.stdout = proc.stdout
        self.buf = bytearray()
        self.log = bytearray()

    async def send(self, data: bytes) -> None:
        await self.stdin.send_all(data + b"\n")

    async def reply(self) -> dict[str, Any]:
        with trio.fail_after(30):
            while (end := self.buf.find(b"\n")) < 0:
                chunk = await self.stdout.receive_some()
                assert chunk, f"stdout closed; stderr: {self.log.decode(errors='replace')}"
                self.buf += chunk
        line = bytes(self.buf[:end])
        del self.buf[: end + 1]
        return json.loads(line)  # type: ignore[no-any-return]

    async def handshake(self) -> None:
        await self.send(json.dumps(INIT).encode())
        assert (await self.reply())["id"] == "init"
        await self.send(json.dumps(INITIALIZED).encode())


@asynccontextmanager
async def raw_stdio(*args: str) -> AsyncIterator[RawStdio]:
    """``trio-exec ARGS`` on stdio, initialized; closes stdin at the end and expects exit status 0."""
    argv = [sys.executable, "-m", "trio_exec", *args]
    proc = await trio.lowlevel.open_process(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    raw = RawStdio(proc)

    async def drain() -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.receive_some():
            raw.log += chunk

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        try:
            await raw.handshake()
            yield raw
        finally:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await raw.stdin.aclose()
            with trio.fail_after(30):
                code = await proc.wait()
            if proc.stdout is not None:
                await proc.stdout.aclose()
        assert code == 0, raw.log.decode(errors="replace")


def assert_error(reply: dict[str, Any], code: int, request_id: object) -> None:
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == request_id
    assert reply["error"]["code"] == code
    assert isinstance(reply["error"]["message"], str)


@pytest.mark.parametrize(("data", "code", "request_id"), CASES)
async def test_malformed_input_is_answered_and_the_next_request_still_is(
    data: bytes, code: int | None, request_id: object
) -> None:
    async with raw_stdio(*ECHO) as raw:
        await raw.send(data)
        await raw.send(echo_call("after"))
        if code is not None:
            assert_error(await raw.reply(), code, request_id)
        after = await raw.reply()  # a notification's reply would arrive here first
    assert after["id"] == "after"
    assert after["result"]["structuredContent"]["stdout"] == "still here\n"


async def test_a_line_over_the_limit_is_answered_and_the_line_after_it_is_not_lost() -> None:
    oversize = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "' + b"y" * MAX_LINE_BYTES + b'"}}'
    async with raw_stdio(*ECHO) as raw:
        # One write: the oversize line's end and the next request arrive in the same read.
        await raw.send(oversize + b"\n" + echo_call("after"))
        assert_error(await raw.reply(), -32600, None)
        after = await raw.reply()
    assert after["id"] == "after"
    assert after["result"]["structuredContent"]["stdout"] == "still here\n"


async def test_a_nan_timeout_in_raw_json_is_refused_before_anything_runs(tmp_path: Path) -> None:
    flag = tmp_path / "ran"
    call = b'{"jsonrpc": "2.0", "id": "nan", "method": "tools/call", "params": {"name": "mark", '
    call += b'"arguments": {"timeout": NaN}}}'
    async with raw_stdio("--cmd", f'mark|"touch {flag}"') as raw:
        await raw.send(call)
        reply = await raw.reply()
        await raw.send(b'{"jsonrpc": "2.0", "id": "list", "method": "tools/list"}')
        assert (await raw.reply())["id"] == "list"  # the server has finished with the NaN call
    assert reply["id"] == "nan"
    assert reply["result"]["isError"] is True
    error = reply["result"]["structuredContent"]["error"]
    assert (error["code"], error["argument"]) == ("invalid_arguments", "timeout")
    assert "NaN" in error["message"]
    assert not flag.exists()


async def test_the_server_exits_quietly_and_kills_its_commands_when_the_client_closes_stdout(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    config = tmp_path / "sleep.toml"  # so that the server's own command line does not carry the marker
    config.write_text(f"[tools.sleep]\ntemplate = {json.dumps(sleeper(marker))}\n")
    call = {"jsonrpc": "2.0", "id": "sleep", "method": "tools/call", "params": {"name": "sleep", "arguments": {}}}
    async with raw_stdio("--allow-dangerous", "--config", str(config), *PY_VIEW) as raw:
        await raw.send(json.dumps(call).encode())
        with trio.fail_after(30):
            while not processes_with(marker):  # noqa: ASYNC110 - polling another process
                await trio.sleep(0.02)
        await raw.stdout.aclose()  # the client goes away: its next answer cannot be written
        await raw.send(b'{"jsonrpc": "2.0", "id": "list", "method": "tools/list"}')
        with trio.fail_after(30):
            code = await raw.proc.wait()
        await until_gone(marker)
    assert code == 0
    assert b"Traceback" not in raw.log
    assert b"BrokenPipe" not in raw.log
