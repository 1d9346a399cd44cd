"""trio-exec behind a real nginx configured by ``examples/nginx.conf``: prefix, SSE, forwarded addresses.

The example file itself is loaded into nginx (only its listen address and upstream port are swapped
for free loopback ports), so the documented configuration is the tested one. nginx runs in the
foreground from a config in ``tmp_path`` (pid, logs and temp directories there too); nothing under
/etc is read or written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import httpx2
import pytest
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import MODES
from tests.netserver import run_server

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nginx.conf"
SPOOFED = "203.0.113.9"  # what the client claims to be, in its own X-Forwarded-For
CLIENT_ADDRESS = "127.0.0.2"  # the source address the client really connects from (all of 127/8 is loopback)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def swap_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"examples/nginx.conf no longer holds exactly one {old!r}"
    return text.replace(old, new)


def nginx_config(tmp_path: Path, port: int, upstream_port: int) -> Path:
    """A complete nginx.conf around the example: everything nginx writes stays inside ``tmp_path``."""
    site = EXAMPLE.read_text()
    site = swap_once(site, "server 127.0.0.1:3344;", f"server 127.0.0.1:{upstream_port};")
    site = swap_once(site, "\n    listen 80;\n", f"\n    listen 127.0.0.1:{port};\n")
    user = "user root;" if os.geteuid() == 0 else ""  # workers would otherwise switch to "nobody"
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"""
daemon off;
master_process on;
worker_processes 1;
worker_shutdown_timeout 5s;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log notice;
{user}
events {{ worker_connections 64; }}
http {{
    access_log {tmp_path}/access.log;
    client_body_temp_path {tmp_path}/client_body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
{site}
}}
"""
    )
    return config


def output_file(path: Path) -> BinaryIO:
    """Where nginx's own stdout/stderr go (startup errors before its error_log is open)."""
    return path.open("wb")


@asynccontextmanager
async def run_nginx(nginx: str, tmp_path: Path, upstream_port: int) -> AsyncIterator[str]:
    """nginx in the foreground in front of ``upstream_port``; yields its base URL; stops it with SIGQUIT."""
    port = free_port()
    config = nginx_config(tmp_path, port, upstream_port)
    base = f"http://127.0.0.1:{port}"
    with output_file(tmp_path / "nginx.out") as out:
        proc = await trio.lowlevel.open_process(
            [nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        async with httpx2.AsyncClient() as h:
            with trio.fail_after(15):
                while True:
                    if proc.returncode is not None:
                        raise RuntimeError(f"nginx exited with {proc.returncode}: {nginx_logs(tmp_path)}")
                    try:
                        if (await h.get(base + "/exec/health")).status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    await trio.sleep(0.05)
        yield base
    finally:
        with trio.CancelScope(shield=True):  # a failing test must not leave nginx behind either
            if proc.returncode is None:
                proc.send_signal(signal.SIGQUIT)  # graceful: open requests finish, then workers and master exit
            with trio.move_on_after(15):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def nginx_logs(tmp_path: Path) -> str:
    return "\n".join(
        p.read_text(errors="replace") for p in (tmp_path / "nginx.out", tmp_path / "error.log") if p.exists()
    )


@pytest.fixture
def nginx() -> str:
    """The nginx binary (a sync fixture: a skip raised here keeps its reason in the report)."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.skip("nginx is not installed (apt-get install nginx); .ci/run installs it")
    return found


async def test_mcp_through_nginx_under_a_path_prefix(nginx: str, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    args = ["--transport", "streamable-http", "--cmd", 'echo|"echo {message}"', "--root-path", "/exec",
            "--forwarded-allow-ips", "127.0.0.1", "--audit-log", str(audit)]  # fmt: skip
    # The client forges X-Forwarded-For and X-Forwarded-Host; nginx must not let either through as truth.
    forged = {"X-Forwarded-For": SPOOFED, "X-Forwarded-Host": "evil.example"}
    results = {}
    async with run_server(*args) as server, run_nginx(nginx, tmp_path, int(server.base.rsplit(":", 1)[1])) as front:
        for mode in MODES:  # the 2026-07-28 protocol and the legacy handshake, through the same proxy
            transport = httpx2.AsyncHTTPTransport(local_address=CLIENT_ADDRESS)
            async with (
                httpx2.AsyncClient(transport=transport, headers=forged) as h,
                Client(streamable_http_client(front + "/exec/mcp", http_client=h), mode=mode) as c,
            ):
                tools = (await c.list_tools()).tools
                results[mode] = await c.call_tool("echo", {"message": f"via nginx in {mode} mode"})
            assert [t.name for t in tools] == ["echo"]
        async with httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(local_address=CLIENT_ADDRESS)) as h:
            health = await h.get(front + "/exec/health")
            outside = await h.get(front + "/mcp")  # only /exec/ is proxied
    for mode, result in results.items():
        assert not result.is_error, result.structured_content
        assert result.structured_content is not None
        assert result.structured_content["stdout"] == f"via nginx in {mode} mode\n"
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert outside.status_code == 404
    # nginx receives "X-Forwarded-For: 203.0.113.9" from the client and, through
    # $proxy_add_x_forwarded_for, sends "203.0.113.9, 127.0.0.2" on: the client's own claim first,
    # then the address nginx saw. trio-exec trusts exactly one hop (hypercorn's ProxyFixMiddleware,
    # trusted_hops=1, takes the LAST entry) and only because the connection comes from
    # --forwarded-allow-ips. So the audit trail names 127.0.0.2: not the forged 203.0.113.9 (anyone
    # can write that header), and not 127.0.0.1 (nginx itself, which is what trio-exec would see
    # without the header). The client connects from 127.0.0.2 because from 127.0.0.1 the right
    # answer would look the same as no forwarding at all. That the calls succeeded also shows the
    # forged X-Forwarded-Host was replaced by nginx: believed, it would have become the Host and
    # been refused with 421.
    calls = [json.loads(line) for line in audit.read_text().splitlines()]
    calls = [r for r in calls if r["event"] == "call"]
    assert [r["client"] for r in calls] == [f"ip:{CLIENT_ADDRESS}"] * len(MODES)
    assert all(r["tool"] == "echo" and r["outcome"] == "ok" and r["transport"] == "streamable-http" for r in calls)
