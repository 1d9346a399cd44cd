"""Listen backlog and write timeout on the network transports, end to end (issue 11, items 15 and 16)."""

from __future__ import annotations

import resource
import socket
import struct
from collections.abc import Iterator

import pytest
import trio

from tests.netserver import run_server

BURST = 1000
ECHO = ["--cmd", 'echo|"echo {message}"']


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> Iterator[None]:
    """The burst holds 1,000 client sockets in this process: raise the soft limit (within the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = BURST + 512 if hard == resource.RLIM_INFINITY else min(hard, BURST + 512)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _host_port(base: str) -> tuple[str, int]:
    host, _, port = base.split("://", 1)[1].rpartition(":")
    return host, int(port)


HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
UPGRADE = (
    b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mcp\r\n\r\n"
)


def _retransmissions(stream: trio.SocketStream) -> int:
    """``tcpi_total_retrans``: a SYN the listener dropped because its backlog was full counts here."""
    info = stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("I", info, 100)[0])


async def _burst(host: str, port: int, request: bytes) -> list[tuple[str, int]]:
    """Open BURST connections at once, each sends ``request``: the status line each got, and its retransmissions."""
    outcomes: list[tuple[str, int]] = []

    async def one() -> None:
        try:
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(request)
                head = b""
                while b"\r\n" not in head:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    head += chunk
                retransmitted = _retransmissions(stream)
            outcomes.append((head.split(b"\r\n", 1)[0].decode(errors="replace") or "EOF, no answer", retransmitted))
        except (OSError, trio.BrokenResourceError) as exc:
            outcomes.append((f"error: {exc!r}", -1))

    with trio.move_on_after(8):  # what has no answer by then counts as lost
        async with trio.open_nursery() as nursery:
            for _ in range(BURST):
                nursery.start_soon(one)
    return outcomes


def _answered(status_line: str) -> bool:
    """A success, or a refusal that is an answer (429, 503)."""
    parts = status_line.split()
    return len(parts) > 1 and parts[0].startswith("HTTP/") and (parts[1][:1] in "12" or parts[1] in ("429", "503"))


@pytest.mark.parametrize(
    ("transport", "request_bytes", "expected"),
    [("streamable-http", HEALTH, "200"), ("websocket", UPGRADE, "101")],
    ids=["http", "websocket"],
)
async def test_a_burst_of_a_thousand_connections_gets_a_thousand_answers(
    transport: str, request_bytes: bytes, expected: str
) -> None:
    async with run_server("--transport", transport, *ECHO) as server:
        outcomes = await _burst(*_host_port(server.base), request_bytes)
    assert len(outcomes) == BURST, f"{BURST - len(outcomes)} of {BURST} connections got no answer in 8 s"
    unanswered = [line for line, _ in outcomes if not _answered(line)]
    assert not unanswered, unanswered[:5]
    assert any(line.split()[1] == expected for line, _ in outcomes)
    # An overflowing backlog drops SYNs: the client retries after 1 s, 3 s, 7 s... and one with a connect
    # timeout gets no answer at all. With the default backlog the kernel queued every connection at once.
    retried = sum(n > 0 for _, n in outcomes)
    assert retried == 0, f"{retried} of {BURST} connections were retransmitted (listen backlog overflowed)"
