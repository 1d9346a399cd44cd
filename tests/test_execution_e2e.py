"""The execution engine end to end through the real client over stdio (issue: no orphans, no leaks)."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio
import trio.testing
from trio.testing import MockClock

from tests.conftest import PY_VIEW, connect, connect_process, processes_with, sleeper, until_gone
from trio_exec.plan import GIT_ENV
from trio_exec.progress import PROGRESS_INTERVAL_S
from trio_exec.results import OUTPUT_SCHEMA

PY = sys.executable


def server_pid(marker: str) -> int:
    """The pid of our child ``trio-exec`` whose command line carries ``marker``."""
    (pid,) = [p for p in processes_with(marker) if _ppid(p) == os.getpid()]
    return pid


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(") ", 1)[1].split()[1])


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


async def wait_for(marker: str) -> None:
    """Until a process carrying ``marker`` runs (the command has really started)."""
    with trio.fail_after(30):
        while not processes_with(marker):  # noqa: ASYNC110 - polling other processes: no event to wait on
            await trio.sleep(0.02)


def sleepy(marker: str, tmp_path: Path) -> list[str]:
    """Server arguments for a tool ``sleepy`` whose command has a background child; both carry ``marker``.

    The template goes through a config file so that the server's own command line does not
    carry the marker (only the command's processes do).
    """
    config = tmp_path / "sleepy.toml"
    template = f'/bin/sh -c "{sleeper(marker)} & {sleeper(marker)}"'
    config.write_text(f"[tools.sleepy]\ntemplate = {json.dumps(template)}\n")
    # sh is blacklisted by default: these tests use it on purpose to get a background child.
    return ["--allow-dangerous", "--config", str(config), *PY_VIEW]


async def test_a_timeout_ends_the_call_and_kills_its_process_group(tmp_path: Path, mode: str) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    async with connect(*sleepy(marker, tmp_path), mode=mode) as client:
        with trio.fail_after(20):
            result = await client.call_tool("sleepy", {"timeout": 1})
    assert result.is_error is True
    content = result.structured_content
    assert content is not None
    jsonschema.validate(content, OUTPUT_SCHEMA)
    assert content["timed_out"] is True
    assert content["error"]["code"] == "timeout"
    await until_gone(marker)


async def test_client_cancellation_kills_the_process_group_within_two_seconds(tmp_path: Path, mode: str) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    async with connect(*sleepy(marker, tmp_path), mode=mode) as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.call_tool, "sleepy", {})
            await wait_for(marker)
            nursery.cancel_scope.cancel()  # the client abandons the call: notifications/cancelled
        await until_gone(marker, within_s=2)
        # the session is still usable after a cancelled call
        assert (await client.list_tools()).tools


async def test_client_disconnect_kills_running_commands(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    with trio.fail_after(30):
        async with connect(*sleepy(marker, tmp_path)) as client, trio.open_nursery() as nursery:
            nursery.start_soon(client.call_tool, "sleepy", {})
            await wait_for(marker)
            nursery.cancel_scope.cancel()
    await until_gone(marker)


async def test_server_shutdown_kills_running_commands(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    with trio.fail_after(30):
        async with connect_process(*sleepy(marker, tmp_path)) as client, trio.open_nursery() as nursery:
            nursery.start_soon(client.call_tool, "sleepy", {})
            await wait_for(marker)
            os.kill(server_pid(str(tmp_path / "sleepy.toml")), signal.SIGTERM)
            await until_gone(marker)
            nursery.cancel_scope.cancel()


async def test_progress_is_reported_every_interval_while_a_command_runs(mock_clock: MockClock) -> None:
    mock_clock.rate = 1  # the command runs in real time; the interval is jumped over, never waited out
    marker = f"m-{uuid.uuid4().hex}"
    tx, rx = trio.open_memory_channel[tuple[float, str | None]](math.inf)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        tx.send_nowait((progress, message))

    code = f"import time; print('tick', flush=True); time.sleep(300)  # {marker}"
    reports: list[tuple[float, str | None]] = []
    async with connect("--allow-dangerous", "--cmd", f'long|"{PY} -c \\"{code}\\""') as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(client.call_tool, "long", {}, progress_callback=on_progress))
            await wait_for(marker)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.WouldBlock):
                rx.receive_nowait()  # nothing before the first interval has passed
            with trio.fail_after(600):  # on the mock clock: each report is another interval jumped
                while len(reports) < 3 or reports[-1][1] != "tick":  # until the printed line was read
                    mock_clock.jump(PROGRESS_INTERVAL_S)
                    reports.append(await rx.receive())
                    await trio.sleep(0.01)  # (real time: the server reads the command's output meanwhile)
            nursery.cancel_scope.cancel()
        await until_gone(marker)
    progress = [p for p, _ in reports]
    assert progress == sorted(progress)
    assert progress[0] >= PROGRESS_INTERVAL_S
    messages = [m or "" for _, m in reports]
    first = messages.index("tick")  # the latest output line, once there is one; before it, the time so far
    assert all(m.startswith("running for ") for m in messages[:first])
    assert set(messages[first:]) == {"tick"}


async def test_the_server_environment_never_reaches_a_command(tmp_path: Path) -> None:
    secret = uuid.uuid4().hex
    config = tmp_path / "c.toml"
    config.write_text('[tools.envtool]\ntemplate = "printenv"\nenv = { TOOL_VAR = "set-by-tool" }\n')
    env = {"MCP_EXEC_AUTH_TOKEN": secret, "APP_SECRET": secret, "VISIBLE": "shared"}
    async with connect("--config", str(config), "--env-allow", "VISIBLE", env=env) as client:
        result = await client.call_tool("envtool", {})
    assert result.structured_content is not None
    out = result.structured_content["stdout"]
    assert secret not in result.model_dump_json()
    names = sorted(line.split("=", 1)[0] for line in out.splitlines())
    expected = sorted(["HOME", "LANG", "PATH", "TOOL_VAR", "VISIBLE", *GIT_ENV])
    assert [n for n in names if n != "PWD"] == expected  # bwrap sets PWD


async def test_eight_megabytes_of_stdin_pass_through_cat(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[server]\nmax_output_bytes = 16777216\n[tools.cat]\ntemplate = "cat"\nstdin = true\n')
    data = ("0123456789abcdef" * 64 + "\n") * 8 * 1024  # 8 MiB of text
    async with connect("--config", str(config)) as client:
        tool = (await client.list_tools()).tools[0]
        with trio.fail_after(60):
            result = await client.call_tool("cat", {"stdin": data})
    assert tool.input_schema["properties"]["stdin"]["type"] == "string"
    assert result.structured_content is not None
    assert result.structured_content["stdout_truncated"] is False
    assert len(result.structured_content["stdout"]) == len(data)
    assert result.structured_content["stdout"] == data


async def test_fifty_megabytes_of_output_keep_the_server_small() -> None:
    name = f"big{uuid.uuid4().hex[:8]}"
    async with connect_process("--cmd", f'{name}|"head -c 52428800 /dev/zero"') as client:
        result = await client.call_tool(name, {})
        peak_kib = peak_rss_kib(server_pid(name))
    content = result.structured_content
    assert content is not None
    jsonschema.validate(content, OUTPUT_SCHEMA)
    assert content["stdout_truncated"] is True
    assert content["error"]["code"] == "output_limit"
    assert len(content["stdout"]) == 1024 * 1024
    assert peak_kib < 100 * 1024, f"server peak RSS {peak_kib} KiB"


async def test_a_reply_of_twenty_megabytes_is_written_in_slices_so_the_server_stays_small() -> None:
    """The cap raised to 64 MiB, 20 MiB of NULs: a 126 MB JSON line (six bytes each). Encoded whole, the server
    would hold that line twice (pydantic's buffer and its copy) besides the output; in slices, about the output."""
    size = 20 * 1024 * 1024
    argv = [sys.executable, "-m", "trio_exec", "--max-output-bytes", "67108864",
            "--cmd", f'zeros|"head -c {size} /dev/zero"']  # fmt: skip
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    call = {"name": "zeros", "arguments": {}}
    messages = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}]  # fmt: skip
    proc = await trio.lowlevel.open_process(argv, stdin=-1, stdout=-1, stderr=-3)  # PIPE, PIPE, DEVNULL
    assert proc.stdin is not None
    assert proc.stdout is not None
    read = bytearray()
    lines = 0
    with trio.fail_after(60):
        await proc.stdin.send_all(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
        while lines < 2:
            chunk = await proc.stdout.receive_some(1 << 20)
            assert chunk, "the server closed its stdout"
            lines += chunk.count(b"\n")
            read += chunk
        peak_kib = peak_rss_kib(proc.pid)
        await proc.stdin.aclose()
        await proc.wait()
    reply = json.loads(read.split(b"\n")[1])
    assert reply["id"] == 2
    assert reply["result"]["structuredContent"]["stdout"] == "\x00" * size
    assert peak_kib < 200 * 1024, f"server peak RSS {peak_kib} KiB for a {len(read) >> 20} MiB reply"


async def test_binary_output_is_decoded_with_replacement() -> None:
    async with connect("--cmd", 'bin|"head -c 256 /dev/urandom"') as client:
        result = await client.call_tool("bin", {})
    assert result.is_error is False
    assert result.structured_content is not None
    assert isinstance(result.structured_content["stdout"], str)


async def test_every_outcome_conforms_to_the_output_schema(mode: str) -> None:
    args = [
        "--allow-dangerous",
        "--allow-missing-binaries",
        "--max-output-bytes", "1000",
        "--cmd", 'ok|"echo {message}"',
        "--cmd", 'fails|"false"',
        "--cmd", 'slow|"sleep 30"',
        "--cmd", 'loud|"yes"',
        "--cmd", 'gone|"definitely-not-installed-xyz"',
        "--cmd", f"segv|\"{PY} -c 'import os; os.kill(os.getpid(), 11)'\"",
    ]  # fmt: skip
    calls: list[tuple[str, dict[str, Any], bool, str | None]] = [
        ("ok", {"message": "hi"}, False, None),
        ("ok", {"message": "$(id)"}, True, "rejected"),
        ("fails", {}, False, None),
        ("slow", {"timeout": 0.5}, True, "timeout"),
        ("loud", {}, True, "output_limit"),
        ("gone", {}, True, "spawn_failed"),
        ("segv", {}, False, None),
    ]
    async with connect(*args, mode=mode) as client:
        for tool, arguments, is_error, code in calls:
            result = await client.call_tool(tool, arguments)
            assert result.is_error is is_error, tool
            assert result.structured_content is not None
            jsonschema.validate(result.structured_content, OUTPUT_SCHEMA)
            error = result.structured_content["error"]
            assert (error["code"] if error else None) == code, tool
            assert result.content[0].text  # type: ignore[union-attr]
            if tool == "segv":
                assert result.structured_content["signal"] == 11
                assert "signal 11" in result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("option", "code", "check"),
    [
        ("--limit-memory=200M", "b = bytearray(400 * 1024 * 1024)", "MemoryError"),
        ("--limit-cpu=1", "while True: pass", "signal"),
        # Python ignores SIGXFSZ, so the write fails with EFBIG instead of a signal.
        ("--limit-fsize=1M", "open('big.bin', 'wb').write(b'x' * 2000000)", "File too large"),
        ("--limit-nofile=20", "fs = [open('/dev/null') for _ in range(50)]", "Too many open files"),
    ],
    ids=["memory", "cpu", "fsize", "nofile"],
)
async def test_each_resource_limit_bites(tmp_path: Path, option: str, code: str, check: str) -> None:
    args = ["--base-path", str(tmp_path), "--allow-dangerous", option]
    async with connect(*args, "--cmd", f'run|"{PY} -c \\"{code}\\""') as client:
        with trio.fail_after(30):
            result = await client.call_tool("run", {"timeout": 20})
    content = result.structured_content
    assert content is not None
    assert content["timed_out"] is False
    if check == "signal":
        assert content["signal"] in (signal.SIGXCPU, signal.SIGXFSZ, signal.SIGKILL)
    else:
        assert content["exit_code"] == 1
        assert check in content["stderr"]


async def test_the_process_limit_is_applied(tmp_path: Path) -> None:
    # RLIMIT_NPROC does not bind root, so show that the limit is in force on the command.
    async with connect("--limit-nproc", "7", "--cmd", 'limits|"cat /proc/self/limits"') as client:
        result = await client.call_tool("limits", {})
    assert result.structured_content is not None
    (line,) = [x for x in result.structured_content["stdout"].splitlines() if x.startswith("Max processes")]
    assert line.split()[2:4] == ["7", "7"]


async def test_a_command_cannot_read_the_servers_secrets_from_proc() -> None:
    token, app_secret = f"tok-{uuid.uuid4().hex}", f"app-{uuid.uuid4().hex}"
    env = {"APP_SECRET_TOKEN": app_secret, "MCP_EXEC_AUTH_TOKEN": token, "PLAIN_SETTING": "visible-value"}
    spy = "/bin/sh -c 'cat /proc/$PPID/environ; echo; cat /proc/$PPID/cmdline'"
    # Without the sandbox (which hides the server altogether): the scrub is what protects then.
    args = ["--allow-dangerous", "--auth-token", token, "--cmd", f'spy|"{spy}"', "--sandbox", "off"]
    async with connect_process(*args, env=env) as client:
        result = await client.call_tool("spy", {})
    assert result.structured_content is not None
    out = result.structured_content["stdout"]
    assert token not in out
    assert app_secret not in out
    assert "APP_SECRET_TOKEN=" in out  # the names stay visible, only values are blanked
    assert "--auth-token" in out
    assert "PLAIN_SETTING=" in out
    assert "visible-value" not in out  # every value but a short list libc and OpenSSL need (procfs.kept_in_environ)
    assert "PATH=/" in out
