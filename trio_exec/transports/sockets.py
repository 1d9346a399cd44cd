"""What both network transports do to their connections: the write timeout, and the drop it causes.

A peer that stops reading must not hold the server's memory (a reply it never reads) for longer than
``--write-timeout``: the kernel aborts the connection (``TCP_USER_TIMEOUT``), and the transport that sees
the failed write reports it here, once, in the log and the audit trail.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import trio
from loguru import logger

from trio_exec import memory

if TYPE_CHECKING:
    from trio_exec.server import Service


def set_write_timeout(sock: socket.socket | trio.socket.SocketType, seconds: float) -> None:
    """``TCP_USER_TIMEOUT`` on a listening socket (accepted sockets inherit it on Linux).

    The kernel then aborts a connection whose sent data stays unacknowledged that long, a peer that
    stopped reading (zero-window probes without progress) included: what it would have held unsent
    is freed, and the server's blocked write fails (``ETIMEDOUT``). 0 leaves the kernel default.
    """
    if seconds > 0 and sock.family in (socket.AF_INET, socket.AF_INET6) and hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, round(seconds * 1000)))


def report_drop(service: Service, transport: str, peer: str) -> None:
    """A connection the kernel dropped because its peer read nothing for ``--write-timeout``: log and audit."""
    memory.reclaim_soon()  # its reply is garbage in reference cycles now: give the memory back
    limit = service.settings.network.write_timeout_s
    logger.warning("dropped the connection of {}: it read nothing for {:g}s (--write-timeout)", peer, limit)
    service.audit.record("connection_dropped", transport=transport, client=peer, reason="write_timeout",
                         write_timeout_s=limit)  # fmt: skip
