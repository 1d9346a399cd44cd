"""``--workers``: N real server processes on one port, their supervisor, and what it promises.

Every test runs the real ``trio-exec`` (a supervisor and its workers) on port 0 and talks to it with the real
MCP client over real sockets; the processes signalled are the ones these tests started.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
import trio_websocket

from tests.conftest import PY_VIEW, until_gone, until_running
from tests.netserver import Running, run_server
from tests.test_http_e2e import ECHO, HTTP, client, self_signed, slow_tool
from trio_exec.audit import Audit
from trio_exec.cli import load_settings, main

WORKERS = ["--workers", "2"]
ENV = {"PATH": os.environ.get("PATH", os.defpath)}


async def health(server: Running) -> dict[str, Any]:
    """``/health`` over a new connection (the kernel picks the worker by the connection's addresses)."""
    async with httpx2.AsyncClient() as h:
        answer = await h.get(server.base + "/health")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def every_worker(server: Running, count: int = 2) -> dict[int, dict[str, Any]]:
    """One ``/health`` answer from each worker (new connections until each has answered; 2^-99 to miss one)."""
    seen: dict[int, dict[str, Any]] = {}
    for _ in range(100):
        body = await health(server)
        seen[body["worker"]["index"]] = body
        if len(seen) == count:
            return seen
    raise AssertionError(f"only workers {sorted(seen)} answered")


def pids(body: dict[str, Any]) -> list[int]:
    return [row["pid"] for row in body["workers"]]


async def test_workers_share_one_port_and_each_reports_all_in_health(mode: str) -> None:
    async with run_server(*HTTP, *ECHO, *WORKERS) as server:
        assert re.search(rb"serving 1 tool\(s\) on \S+ with 2 workers", server.log)
        answers = await every_worker(server)
        for index, body in answers.items():
            assert body["status"] == "ok"
            assert body["worker"]["pid"] == body["workers"][index]["pid"]
            assert [row["state"] for row in body["workers"]] == ["serving", "serving"]
        assert len(set(pids(answers[0]))) == 2
        assert pids(answers[0]) == pids(answers[1])  # the same table in both
        for i in range(6):  # a new connection each: both workers serve calls
            async with client(server.url, mode=mode) as c:
                result = await c.call_tool("echo", {"message": f"call {i}"})
            assert result.structured_content is not None
            assert result.structured_content["stdout"] == f"call {i}\n"


async def test_a_killed_worker_is_replaced_and_the_port_keeps_serving(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    async with run_server(*HTTP, *ECHO, *WORKERS, "--audit-log", str(audit)) as server:
        before = pids(await health(server))
        mark = len(server.log)
        os.kill(before[1], signal.SIGKILL)  # a worker of the server this test started
        with trio.fail_after(30):
            gone = await server.wait_for(
                rb"worker 1 \(pid %d\) was killed by SIGKILL: starting another" % before[1], mark
            )
            await server.wait_for(rb"\[worker 1\] serving on ", gone.end())
            while (table := (await health(server))["workers"])[1]["restarts"] == 0:  # noqa: ASYNC110
                await trio.sleep(0.02)  # the table reaches the workers a moment after the new one serves
        assert table[0]["pid"] == before[0]
        assert table[1]["pid"] not in (None, before[1])
        assert table[1]["state"] == "serving"
        for i in range(10):
            async with client(server.url) as c:
                result = await c.call_tool("echo", {"message": f"after {i}"})
            assert result.structured_content is not None
            assert result.structured_content["stdout"] == f"after {i}\n"
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    replaced = [r for r in records if r["event"] == "worker_replaced"]
    assert [(r["worker"], r["pid"], r["status"]) for r in replaced] == [(1, before[1], "was killed by SIGKILL")]
    calls = [r for r in records if r["event"] == "call"]
    assert len(calls) == 10
    assert {r["worker"] for r in calls} <= {0, 1}  # each record says which worker ran the call


def ancestors(pid: int) -> list[int]:
    """``pid``'s parent, its parent's parent, ... up to init."""
    chain = []
    while pid > 1:
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(") ", 1)[1].split()[1])
        chain.append(pid)
    return chain


@pytest.mark.parametrize("layer", ["bwrap", "landlock"])
async def test_the_commands_of_a_killed_worker_die_with_it(tmp_path: Path, layer: str) -> None:
    """Whether the sandbox's die-with-parent fires (bwrap, once it runs) or not (Landlock; or a worker killed in
    the first moment of a spawn), the supervisor is the orphans' subreaper, and kills them."""
    if layer == "bwrap" and shutil.which("bwrap") is None and not os.environ.get("CI"):
        pytest.skip("bubblewrap is not installed")
    marker = f"m-{uuid.uuid4().hex}"
    config = tmp_path / "family.toml"
    code = (  # a child that sleeps, and a grandchild that would outlive it: both carry the marker
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', sys.argv[1]]); time.sleep(300)"
    )
    config.write_text(f"[tools.slow]\ntemplate = {json.dumps(f'{sys.executable} -c {json.dumps(code)} {marker}')}\n")
    args = [*HTTP, "--allow-dangerous", "--config", str(config), *WORKERS, *PY_VIEW, "--sandbox", layer]
    async with run_server(*args) as server:
        workers = pids(await health(server))
        headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "slow", "arguments": {}}}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as h, trio.open_nursery() as nursery:

            async def call() -> None:
                with contextlib.suppress(httpx2.HTTPError):  # its worker is killed under it
                    await h.post(server.url, json=body)

            nursery.start_soon(call)
            running = await until_running(marker, count=2)
            (owner,) = set(ancestors(running[0])) & set(workers)
            os.kill(owner, signal.SIGKILL)
            await until_gone(marker, within_s=5)
            nursery.cancel_scope.cancel()
        async with client(server.url) as c:  # and the port goes on serving
            assert (await c.list_tools()).tools


async def test_sigterm_drains_every_worker_and_a_running_call_finishes(tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    args = [*HTTP, *slow_tool(tmp_path, marker, 2), *WORKERS, "--shutdown-grace", "20"]
    async with run_server(*args) as server:
        workers = pids(await health(server))
        results = []
        async with client(server.url) as c, trio.open_nursery() as nursery:
            await c.list_tools()

            async def call() -> None:
                results.append(await c.call_tool("slow", {}))

            nursery.start_soon(call)
            await until_running(marker)
            server.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            code = await server.proc.wait()
    assert code == 0
    assert results[0].structured_content is not None
    assert results[0].structured_content["stdout"] == "done\n"
    assert b"received SIGTERM: stopping 2 workers" in server.log
    assert server.log.count(b"received SIGTERM: no new connections") == 2  # each worker drained
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")]


async def test_workers_stop_when_their_supervisor_is_killed() -> None:
    async with run_server(*HTTP, *ECHO, *WORKERS) as server:
        workers = pids(await health(server))
        handles = [os.pidfd_open(pid) for pid in workers]
        try:
            server.proc.kill()  # SIGKILL: the supervisor cannot pass anything on
            with trio.fail_after(30):
                for handle in handles:
                    await trio.lowlevel.wait_readable(handle)  # readable once that process has ended
        finally:
            for handle in handles:
                os.close(handle)
        await server.proc.wait()
    assert server.log.count(b"the supervisor went away: stopping this worker") == 2


async def test_websocket_sessions_are_served_by_workers() -> None:
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    echo = {"name": "echo", "arguments": {"message": "ws"}}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": echo}
    async with run_server("--transport", "websocket", *ECHO, *WORKERS) as server:
        assert server.url.startswith("ws://")
        for _ in range(4):
            async with trio_websocket.open_websocket_url(server.url, subprotocols=["mcp"]) as ws:
                with trio.fail_after(30):
                    await ws.send_message(json.dumps(init))
                    assert json.loads(await ws.get_message())["result"]["serverInfo"]["name"] == "trio-exec"
                    await ws.send_message(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                    await ws.send_message(json.dumps(call))
                    answer = json.loads(await ws.get_message())
            assert answer["result"]["structuredContent"]["stdout"] == "ws\n"


async def test_workers_serve_tls_on_the_supervisors_sockets(tmp_path: Path) -> None:
    cert, key = await self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    async with run_server(*HTTP, *ECHO, *WORKERS, "--certfile", str(cert), "--keyfile", str(key)) as server:
        assert server.url.startswith("https://")
        for i in range(4):
            async with client(server.url, verify=trust) as c:
                result = await c.call_tool("echo", {"message": f"secure {i}"})
            assert result.structured_content is not None
            assert result.structured_content["stdout"] == f"secure {i}\n"


def test_a_worker_that_cannot_start_stops_the_supervisor_with_its_exit_code() -> None:
    script = (
        "import sys\n"
        "from trio_exec.cli import load_settings\n"
        "from trio_exec.workers import supervise\n"
        "loaded = load_settings(sys.argv[1:], {'PATH': '/usr/bin:/bin'})\n"
        "sys.exit(supervise(loaded.settings, ['--no-such-option'], {'PATH': '/usr/bin:/bin'}, 1))\n"
    )
    argv = [sys.executable, "-c", script, *HTTP, *ECHO, *WORKERS, "--bind", "127.0.0.1:0"]
    proc = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "--no-such-option" in err  # the worker's own line says why
    assert "exited with code 2 before it served: stopping" in err


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["--stateful"], "cannot serve --stateful sessions"),
        (["--allow-commands", "echo", "--background"], "cannot serve background tools (shell_execute)"),
    ],
)
def test_what_lives_in_one_worker_is_refused_with_several(
    extra: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*HTTP, *ECHO, *WORKERS, *extra], ENV) == 2
    err = capsys.readouterr().err
    assert why in err
    assert "README: Scale-out" in err


def test_a_background_template_is_refused_with_several_workers(tmp_path: Path) -> None:
    config = tmp_path / "jobs.toml"
    config.write_text('[tools.flood]\ntemplate = "seq 1 10"\nbackground = true\n')
    with pytest.raises(Exception, match=r"cannot serve background tools \(flood\)"):
        load_settings([*HTTP, "--config", str(config), *WORKERS], ENV)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("1", 1), ("3", 3), ("auto", len(os.sched_getaffinity(0))), ("AUTO", len(os.sched_getaffinity(0)))],
)
def test_workers_takes_a_count_or_auto_from_flag_environment_and_config(
    tmp_path: Path, given: str, expected: int
) -> None:
    assert load_settings([*HTTP, *ECHO, "--workers", given], ENV).settings.network.workers == expected
    assert load_settings([*HTTP, *ECHO], {**ENV, "MCP_EXEC_WORKERS": given}).settings.network.workers == expected
    config = tmp_path / "server.toml"
    config.write_text(f"[server]\nworkers = {json.dumps(given if given.isalpha() else int(given))}\n")
    assert load_settings([*HTTP, *ECHO, "--config", str(config)], ENV).settings.network.workers == expected


@pytest.mark.parametrize("given", ["0", "-2", "two", "1.5"])
def test_a_bad_worker_count_is_a_configuration_error(given: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*HTTP, *ECHO, "--workers", given], ENV) == 2
    assert "--workers must be" in capsys.readouterr().err


def test_processes_sharing_an_audit_log_rotate_it_once_and_lose_no_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    trails = [Audit(str(path), rotate=2048, stamp={"worker": i}) for i in range(2)]  # two fds, as two workers have
    try:
        for n in range(200):
            assert trails[n % 2].record("call", n=n, padding="x" * 40)
    finally:
        for trail in trails:
            trail.close()
    files = sorted(tmp_path.glob("audit*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert sorted(r["n"] for r in records) == list(range(200))
    assert all(r["worker"] == r["n"] % 2 for r in records)
    assert len(files) > 5
    assert all(f.stat().st_size <= 2048 for f in files)  # each rotation happened once, at the limit


def test_dry_run_says_how_many_workers_share_the_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*HTTP, *ECHO, *WORKERS, "--dry-run"], ENV) == 0
    out = capsys.readouterr().out
    assert "streamable-http on 127.0.0.1:3344, 2 workers sharing the port" in out
    assert "(each per worker)" in out
