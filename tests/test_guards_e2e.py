"""Guards and the audit trail end to end: the real server over stdio, the real client."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from tests.conftest import connect, processes_with


def error_of(result: Any) -> dict[str, Any] | None:
    assert result.structured_content is not None
    error: dict[str, Any] | None = result.structured_content["error"]
    return error


async def test_a_burst_over_the_rate_limit_is_refused_with_retry_after() -> None:
    async with connect("--rate-limit-rps", "0.5", "--rate-limit-burst", "3", "--cmd", 'echo|"echo {message}"') as c:
        results = [await c.call_tool("echo", {"message": "x"}) for _ in range(5)]
    codes = [(e or {}).get("code") for e in map(error_of, results)]
    assert codes == [None, None, None, "rate_limited", "rate_limited"]
    refused = error_of(results[3])
    assert refused is not None
    assert 0 < refused["retry_after_s"] <= 2
    assert results[3].is_error is True


async def test_a_local_agent_on_stdio_is_not_rate_limited_by_default() -> None:
    async with connect("--cmd", 'echo|"echo {message}"') as c:
        results = [await c.call_tool("echo", {"message": str(n)}) for n in range(40)]  # burst 20 refused the 22nd
    assert [error_of(r) for r in results] == [None] * 40


async def test_a_call_beyond_max_concurrent_is_busy(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    config = tmp_path / "c.toml"
    config.write_text(f"[tools.slow]\ntemplate = \"{sys.executable} -c 'import time; time.sleep(30)' {marker}\"\n")
    args = ["--max-concurrent", "1", "--allow-dangerous", "--config", str(config)]
    async with connect(*args) as client, trio.open_nursery() as nursery:
        nursery.start_soon(client.call_tool, "slow", {})
        with trio.fail_after(30):
            while not processes_with(marker):  # noqa: ASYNC110 - polling another process
                await trio.sleep(0.02)
        second = await client.call_tool("slow", {})
        nursery.cancel_scope.cancel()
    error = error_of(second)
    assert error is not None
    assert error["code"] == "busy"


async def test_a_tool_that_keeps_timing_out_opens_its_circuit_and_later_recovers(
    tmp_path: Path, mock_clock: MockClock
) -> None:
    mock_clock.rate = 1  # commands and their timeouts run in real time; the cool-down is jumped over
    audit = tmp_path / "audit.jsonl"
    args = ["--circuit-threshold", "2", "--circuit-timeout", "60", "--cmd-timeout", "0.3", "--audit-log", str(audit)]
    async with connect(*args, "--cmd", 'nap|"sleep {seconds}"', "--cmd", 'echo|"echo ok"') as client:
        for _ in range(2):  # timeouts at the operator's limit count
            timed_out = await client.call_tool("nap", {"seconds": "30"})
            assert (error_of(timed_out) or {}).get("code") == "timeout"
        refused = await client.call_tool("nap", {"seconds": "0"})
        other = await client.call_tool("echo", {})  # other tools are not affected
        mock_clock.jump(60)  # the server runs in-process, on our clock
        probe = await client.call_tool("nap", {"seconds": "0"})
        after = await client.call_tool("nap", {"seconds": "0"})
    error = error_of(refused)
    assert error is not None
    assert error["code"] == "circuit_open"
    assert 59 < error["retry_after_s"] <= 60
    assert error_of(other) is None
    assert error_of(probe) is None
    assert error_of(after) is None
    states = [r["state"] for r in map(json.loads, audit.read_text().splitlines()) if r["event"] == "breaker"]
    assert states == ["open", "half_open", "closed"]


async def test_timeouts_the_client_chose_and_output_floods_open_nothing(tmp_path: Path) -> None:
    args = ["--circuit-threshold", "2", "--max-output-bytes", "1000", "--cmd", 'nap|"sleep {seconds}"',
            "--cmd", 'flood|"yes"']  # fmt: skip
    async with connect(*args) as client:
        for _ in range(4):
            short = await client.call_tool("nap", {"seconds": "30", "timeout": 0.1})
            assert (error_of(short) or {}).get("code") == "timeout"
            flood = await client.call_tool("flood", {})
            assert (error_of(flood) or {}).get("code") == "output_limit"
        ok = await client.call_tool("nap", {"seconds": "0"})
        still = await client.call_tool("flood", {"timeout": 0.1})
    assert error_of(ok) is None
    assert (error_of(still) or {}).get("code") in ("output_limit", "timeout")  # not circuit_open


async def test_fifty_rejected_calls_in_a_row_open_nothing() -> None:
    args = ["--circuit-threshold", "2", "--rate-limit-burst", "100", "--cmd", 'echo|"echo {message}"']
    async with connect(*args) as client:
        for _ in range(50):
            assert (error_of(await client.call_tool("echo", {"message": "$(id)"})) or {}).get("code") == "rejected"
        ok = await client.call_tool("echo", {"message": "still fine"})
    assert error_of(ok) is None


async def test_audit_records_are_json_with_the_fields_and_secrets_redacted(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    token = f"tok-{uuid.uuid4().hex}"
    args = [
        "--audit-log",
        str(audit),
        "--cmd",
        'login|"echo {user} --password={password}"',
        "--cmd",
        'echo|"echo {message}"',
    ]
    async with connect(*args, env={"MCP_EXEC_AUTH_TOKEN": token}) as client:
        await client.call_tool("login", {"user": "alice", "password": "hunter2-secret"})
        await client.call_tool("echo", {"message": "$(id)"})
        await client.call_tool("echo", {"message": f"the token is {token}"})
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["ok", "rejected", "ok"]
    login = records[0]
    for field in ("time", "event", "request_id", "transport", "client", "tool", "arguments", "argv", "outcome",
                  "exit_code", "signal", "duration_ms", "bytes_out", "truncated"):  # fmt: skip
        assert field in login, field
    assert login["event"] == "call"
    assert (login["transport"], login["client"], login["tool"]) == ("stdio", "stdio", "login")
    assert login["arguments"] == {"user": "alice", "password": "[REDACTED]"}
    assert login["argv"][1:] == ["alice", "--password=[REDACTED]"]
    assert login["exit_code"] == 0
    assert records[1]["argument"] == "message"
    assert "hunter2" not in audit.read_text()
    assert token not in audit.read_text()


def test_nothing_but_json_rpc_reaches_stdout_and_the_token_is_nowhere(tmp_path: Path) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    audit = tmp_path / "audit.jsonl"
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "echo", "arguments": {"message": token}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "-x"}}},
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "nope", "arguments": {}}},
    ]  # fmt: skip
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr_file:  # a file: trace logging must never block the server on a full pipe
        proc = subprocess.Popen(
            [sys.executable, "-m", "trio_exec", "--log-level", "trace", "--auth-token", token,
             "--audit-log", str(audit), "--cmd", 'echo|"echo {message}"'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr_file,
        )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    for request in requests:
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
    replies: dict[Any, Any] = {}
    while len(replies) < 5:  # keep stdin open until every reply has arrived
        message = json.loads(proc.stdout.readline())
        assert message["jsonrpc"] == "2.0"
        replies[message["id"]] = message
    proc.stdin.close()
    rest = proc.stdout.read()
    proc.stdout.close()
    assert proc.wait(timeout=30) == 0
    stderr = log.read_bytes()
    for line in rest.splitlines():
        assert json.loads(line)["jsonrpc"] == "2.0"
    assert replies[3]["result"]["structuredContent"]["stdout"] == f"{token}\n"  # the client asked for it
    assert replies[5]["error"]["code"] == -32602
    assert b"TRACE" in stderr or b"DEBUG" in stderr
    assert token.encode() not in stderr
    assert token not in audit.read_text()
    assert "--auth-token on the command line is visible in ps" in stderr.decode()


async def test_an_audit_log_on_stderr_and_json_logs(tmp_path: Path) -> None:
    proc = await trio.run_process(
        [sys.executable, "-m", "trio_exec", "--audit-log", "-", "--log-format", "json",
         "--cmd", 'echo|"echo {message}"'],
        stdin=b"", capture_stdout=True, capture_stderr=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in proc.stderr.decode().splitlines()]
    assert lines, "expected JSON log lines on stderr"
    assert all("record" in line or "event" in line for line in lines)
    assert any(line.get("record", {}).get("level", {}).get("name") == "INFO" for line in lines)


@pytest.mark.parametrize("size", ["1K"])
async def test_the_audit_log_rotates_by_size(tmp_path: Path, size: str) -> None:
    audit = tmp_path / "audit.jsonl"
    async with connect("--audit-log", str(audit), "--audit-rotate", size, "--cmd", 'echo|"echo {message}"') as client:
        for i in range(20):
            await client.call_tool("echo", {"message": f"call {i}"})
    files = sorted(tmp_path.glob("audit*.jsonl"))
    assert len(files) > 1
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 20
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}  # the current file and every rotated one


async def test_an_audit_file_readable_by_others_is_narrowed_to_its_owner(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text("")
    audit.chmod(0o644)  # as an earlier version (or a careless touch) left it
    async with connect("--audit-log", str(audit), "--cmd", 'echo|"echo {message}"') as client:
        await client.call_tool("echo", {"message": "hi"})
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    assert json.loads(audit.read_text().splitlines()[0])["tool"] == "echo"


def test_the_audit_trail_notices_a_failed_write_once_and_its_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loguru import logger

    from trio_exec import audit as audit_module

    lines: list[str] = []
    sink = logger.add(lines.append, format="{level} {message}")
    path = tmp_path / "audit.jsonl"
    trail = audit_module.Audit(str(path), rotate=None)
    real_write = os.write
    try:
        assert trail.record("call", n=1)

        room = [8]

        def half_then_full(fd: int, data: Any) -> int:
            if room[0]:  # 8 bytes fit, then the disk is full
                n, room[0] = min(room[0], len(data)), 0
                return real_write(fd, bytes(data[:n]))
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "write", half_then_full)
        assert not trail.record("call", n=2)
        assert not trail.record("call", n=3)
        assert not trail.accepting()  # closed: refused, and the probe failed too
        monkeypatch.setattr(os, "write", real_write)
        assert trail.accepting()  # the probe record got through: available again
        assert trail.record("call", n=4)
    finally:
        logger.remove(sink)
    errors = [line for line in lines if line.startswith("ERROR")]
    assert len(errors) == 1
    assert "No space left on device" in errors[0]
    assert any("writable again; 3 record(s) were lost" in line for line in lines)
    written = path.read_text().splitlines()
    assert len(written[1]) == 8  # the partial write stays alone on its line: every other line is whole JSON
    records = [json.loads(line) for i, line in enumerate(written) if i != 1]
    assert [r.get("n") for r in records if r.get("event") == "call"] == [1, 4]
    assert [r["lost"] for r in records if r["event"] == "audit_restored"] == [3]


def test_an_open_audit_trail_accepts_calls_while_it_cannot_write(tmp_path: Path) -> None:
    from trio_exec.audit import Audit

    trail = Audit("/dev/full", rotate=None, fail="open")
    assert not trail.record("call")
    assert trail.accepting()
    assert Audit(None, rotate=None).record("call")


def test_an_audit_file_that_cannot_be_opened_is_an_outage_from_the_start(tmp_path: Path) -> None:
    from trio_exec.audit import Audit

    trail = Audit(str(tmp_path / "missing-dir" / "audit.jsonl"), rotate=None)
    assert not trail.available
    assert not trail.accepting()
