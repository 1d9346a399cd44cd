"""trio-exec behind a real nginx configured by ``examples/nginx.conf`` (prefix, SSE, forwarded addresses)
and by ``examples/nginx-scale-out.conf`` (two stateful instances, affinity by token: sessions and jobs).

The example file itself is loaded into nginx (only its listen address and upstream ports are swapped
for free loopback ports), so the documented configuration is the tested one. nginx runs in the
foreground from a config in ``tmp_path`` (pid, logs and temp directories there too); nothing under
/etc is read or written.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import signal
import socket
import subprocess
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

import httpx2
import pytest
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import MODES
from tests.netserver import Running, run_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE = EXAMPLES / "nginx.conf"
SCALE_OUT = EXAMPLES / "nginx-scale-out.conf"
EXAMPLE_PORTS = (3344, 3345)  # the upstream ports the examples name, in their order
SPOOFED = "203.0.113.9"  # what the client claims to be, in its own X-Forwarded-For
CLIENT_ADDRESS = "127.0.0.2"  # the source address the client really connects from (all of 127/8 is loopback)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def swap_once(text: str, old: str, new: str, name: str = "examples/nginx.conf") -> str:
    assert text.count(old) == 1, f"{name} no longer holds exactly one {old!r}"
    return text.replace(old, new)


def port_of(server: Running) -> int:
    return int(server.base.rsplit(":", 1)[1])


def nginx_config(
    tmp_path: Path,
    port: int,
    upstream_ports: Sequence[int],
    example: Path = EXAMPLE,
    edit: Callable[[str], str] = lambda site: site,
) -> Path:
    """A complete nginx.conf around the example: everything nginx writes stays inside ``tmp_path``.

    The example's upstream servers (``EXAMPLE_PORTS``, in order) become ``upstream_ports``; ``edit`` may
    change the site's text further (uncomment what the example offers as an option)."""
    name = f"examples/{example.name}"
    site = example.read_text()
    for old, new in zip(EXAMPLE_PORTS, upstream_ports, strict=False):
        site = swap_once(site, f"server 127.0.0.1:{old};", f"server 127.0.0.1:{new};", name)
    assert len(upstream_ports) == site.count("    server 127.0.0.1:"), f"{name} has another number of upstreams"
    site = swap_once(site, "\n    listen 80;\n", f"\n    listen 127.0.0.1:{port};\n", name)
    site = edit(site)
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
async def run_nginx(
    nginx: str,
    tmp_path: Path,
    upstream_ports: Sequence[int],
    example: Path = EXAMPLE,
    edit: Callable[[str], str] = lambda site: site,
) -> AsyncIterator[str]:
    """nginx in the foreground in front of ``upstream_ports``; yields its base URL; stops it with SIGQUIT."""
    port = free_port()
    config = nginx_config(tmp_path, port, upstream_ports, example, edit)
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
    async with run_server(*args) as server, run_nginx(nginx, tmp_path, [port_of(server)]) as front:
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


# --- examples/nginx-scale-out.conf: two instances, affinity by token ---------------------------------


def chash_server(key: str, servers: Sequence[str]) -> str:
    """The upstream ``server`` nginx's ``hash KEY consistent`` picks for ``key`` (all servers up).

    nginx's ketama ring (ngx_http_upstream_hash_module, compatible with Cache::Memcached::Fast): 160 points
    per server of weight 1, each crc32(HOST "\\0" PORT PREV) where PREV is the point before it as 4 bytes,
    little-endian (0 for the first); a key goes to the first point >= crc32(key), wrapping around. The ring
    is built from the ``server`` names as written, so it moves with the ports, which the tests choose
    freely: hence tokens chosen by this ring, not a fixed list."""
    ring: dict[int, str] = {}
    for server in servers:
        host, _, port = server.rpartition(":")
        base = zlib.crc32(f"{host}\0{port}".encode())
        point = 0
        for _ in range(160):
            point = zlib.crc32(point.to_bytes(4, "little"), base)
            ring.setdefault(point, server)
    points = sorted(ring)
    return ring[points[bisect.bisect_left(points, zlib.crc32(key.encode())) % len(points)]]


def spread_tokens(servers: Sequence[str], per_server: int) -> list[str]:
    """``per_server`` tokens for each upstream server, by the ring: without this choice a fixed set of 6
    tokens would all land on one instance in about 3% of runs (the ring moves with the free ports)."""
    chosen: dict[str, list[str]] = {s: [] for s in servers}
    for i in range(10_000):
        token = f"agent-{i:04d}-" + "k" * 24
        if len(mine := chosen[chash_server(f"Bearer {token}", servers)]) < per_server:
            mine.append(token)
        if all(len(tokens) == per_server for tokens in chosen.values()):
            return [t for tokens in zip(*chosen.values(), strict=True) for t in tokens]
    raise AssertionError(f"no {per_server} tokens for each of {servers}")


def scale_out_tools(tmp_path: Path) -> Path:
    config = tmp_path / "tools.toml"
    config.write_text(
        '[tools.echo]\ntemplate = "echo {message}"\n\n'
        '[tools.count]\ntemplate = "seq {n}"\nbackground = true\nargs.n.kind = "integer"\n'
    )
    return config


def scale_out_args(tmp_path: Path, tokens: Sequence[str], name: str) -> list[str]:
    """One instance as examples/nginx-scale-out.conf starts it (the same tokens; its own audit log)."""
    token_file = tmp_path / "tokens"
    token_file.write_text("# one token per agent\n" + "".join(f"{t}\n" for t in tokens))
    audit = tmp_path / f"audit-{name}.jsonl"
    return ["--transport", "streamable-http", "--root-path", "/exec", "--stateful",
            "--forwarded-allow-ips", "127.0.0.1", "--auth-token-file", str(token_file),
            "--config", str(scale_out_tools(tmp_path)), "--audit-log", str(audit)]  # fmt: skip


@asynccontextmanager
async def token_client(url: str, token: str) -> AsyncIterator[Client]:
    """A new connection and a new stateful session (the legacy handshake) for ``token``."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers) as h,
        Client(streamable_http_client(url, http_client=h), mode="legacy") as c,
    ):
        yield c


async def structured(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result
    assert result.structured_content is not None, result
    return dict(result.structured_content)


def audited_clients(path: Path) -> set[str]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["client"] for r in records if "client" in r}


@pytest.fixture
def two_ports() -> tuple[int, int]:
    """Ports for the two instances, fixed before they start so that the tokens can be chosen for them."""
    first = free_port()
    while (second := free_port()) == first:
        pass
    return first, second


async def test_sessions_and_background_jobs_keep_to_one_instance_per_token(
    nginx: str, tmp_path: Path, two_ports: tuple[int, int]
) -> None:
    ports = list(two_ports)
    tokens = spread_tokens([f"127.0.0.1:{p}" for p in ports], per_server=3)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    started: dict[str, dict[str, Any]] = {}
    read: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    with trio.fail_after(120):
        async with (
            run_server(*scale_out_args(tmp_path / "a", tokens, "a"), "--bind", f"127.0.0.1:{ports[0]}") as a,
            run_server(*scale_out_args(tmp_path / "b", tokens, "b"), "--bind", f"127.0.0.1:{ports[1]}") as b,
            run_nginx(nginx, tmp_path, ports, SCALE_OUT) as front,
        ):
            url = front + "/exec/mcp"
            async with AsyncExitStack() as first_sessions, httpx2.AsyncClient() as h:
                for n, token in enumerate(tokens, start=3):
                    c = await first_sessions.enter_async_context(token_client(url, token))
                    names = {t.name for t in (await c.list_tools()).tools}
                    assert {"echo", "count", "job_output", "job_list"} <= names, names
                    echoed = await structured(c, "echo", {"message": token})
                    assert echoed["stdout"] == f"{token}\n"
                    started[token] = (await structured(c, "count", {"n": n, "background": True}))["job"]
                # All six first sessions are open: each instance holds its share of them.
                health = [(await h.get(s.base + "/exec/health")).json() for s in (a, b)]
                # A second session of each token, on a new connection, reads the job the first started.
                for token in tokens:
                    async with token_client(url, token) as c:
                        job_id = started[token]["id"]
                        args = {"id": job_id, "offset": 0, "wait_s": 30, "until": "end"}
                        read[token] = (await structured(c, "job_output", args), await structured(c, "job_list", {}))
    for n, token in enumerate(tokens, start=3):
        page, listed = read[token]
        assert page["output"] == "".join(f"{i}\n" for i in range(1, n + 1)), page
        assert page["job"]["state"] == "completed"
        # Three tokens share each instance; each sees its own job only.
        assert [j["id"] for j in listed["jobs"]] == [started[token]["id"]]
    # Both instances served sessions (the tokens were chosen 3 and 3 by nginx's ring; at least one each
    # is the point: all six on one instance would prove nothing about affinity).
    sessions = [hh["sessions"] for hh in health]
    assert all(count >= 1 for count in sessions), health
    assert sum(sessions) == len(tokens), health
    # Every request of a token, from both of its sessions, reached one and the same instance: the
    # instances' audit trails name disjoint sets of clients, six in all.
    clients = [audited_clients(tmp_path / name / f"audit-{name}.jsonl") for name in "ab"]
    assert all(clients), clients
    assert not clients[0] & clients[1], clients
    assert len(clients[0] | clients[1]) == len(tokens)
    assert all(client.startswith("token:") for client in clients[0] | clients[1])


def enable_rate_limits(site: str) -> str:
    """Uncomment the example's optional limit_req lines (both zones and their use in the location)."""
    zones = ("limit_req_zone $http_authorization", "limit_req_zone $server_name")
    uses = ("limit_req zone=trio_exec_per_token", "limit_req zone=trio_exec_total", "limit_req_status")
    for directive in (*zones, *uses):
        site = swap_once(site, f"# {directive}", directive, "examples/nginx-scale-out.conf")
    return site


async def test_the_optional_nginx_rate_limit_counts_each_token_in_front_of_the_instances(
    nginx: str, tmp_path: Path, two_ports: tuple[int, int]
) -> None:
    ports = list(two_ports)
    tokens = ["agent-limited-" + "k" * 24, "agent-other-" + "k" * 24]
    statuses: list[int] = []
    with trio.fail_after(60):
        async with (
            run_server(*scale_out_args(tmp_path, tokens, "a"), "--bind", f"127.0.0.1:{ports[0]}"),
            run_server(*scale_out_args(tmp_path, tokens, "b"), "--bind", f"127.0.0.1:{ports[1]}"),
            run_nginx(nginx, tmp_path, ports, SCALE_OUT, enable_rate_limits) as front,
            httpx2.AsyncClient() as h,
        ):
            # burst=40 nodelay: 41 requests pass at once, then 20 per second; requests a few ms apart
            # reach the limit long before 400 of them.
            limited = {"Authorization": f"Bearer {tokens[0]}"}
            while len(statuses) < 400 and 429 not in statuses:
                statuses.append((await h.get(front + "/exec/health", headers=limited)).status_code)
            other = await h.get(front + "/exec/health", headers={"Authorization": f"Bearer {tokens[1]}"})
    assert statuses[:41] == [200] * 41
    assert statuses[-1] == 429, statuses
    assert other.status_code == 200  # another token has its own bucket
