"""End to end over stdio: the real server process, the real ``mcp.Client``, both protocol eras."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import jsonschema
import pytest
import trio
from mcp.shared.exceptions import MCPError

from tests.conftest import connect
from trio_exec.server import OUTPUT_SCHEMA

ECHO = ["--cmd", 'echo|"echo {message}"']


async def test_lists_one_tool_per_template_with_schemas(mode: str) -> None:
    async with connect(*ECHO, "--cmd", 'date|"date -u"', mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"echo", "date"}
    echo = tools["echo"]
    assert echo.input_schema["properties"]["message"]["type"] == "string"
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
    "arguments",
    [{"message": 42}, {}, {"message": "hi", "extra": "x"}, {"message": "hi", "timeout": -1}],
    ids=["wrong-type", "missing", "unknown-property", "bad-timeout"],
)
async def test_arguments_that_break_the_schema_are_invalid_params(mode: str, arguments: dict[str, object]) -> None:
    async with connect(*ECHO, mode=mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("echo", arguments)
    assert caught.value.error.code == -32602


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
