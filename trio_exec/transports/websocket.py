"""WebSocket transport: trio-websocket at ``/mcp``, subprotocol ``mcp``, one JSON-RPC message per text frame.

The handshake gets the same checks as HTTP: path, Host and Origin allowlists (DNS rebinding),
Bearer auth (the ``Authorization`` header, else the ``access_token`` query parameter or a
``bearer.<token>`` subprotocol, for clients that cannot send headers; 401 with ``WWW-Authenticate``;
failures are audit events and spend the client's rate limit). Malformed messages are answered as on stdio
(``framing.decode``: -32700/-32600/-32602, with the id when it can be read) and the session goes
on; a message larger than ``--max-request-bytes`` closes the connection (1009, "message too big").
On shutdown the listener stops, new calls are refused with ``busy``, running calls get
``--shutdown-grace`` seconds; then what still runs is stopped and answered ``cancelled``, and
every connection is closed with 1001 (going away) once its answers are written.

trio-websocket speaks only the WebSocket handshake, so ``/health`` is not served on this
port: check the TCP port, or run the streamable-http transport where HTTP health matters.
"""

from __future__ import annotations

import socket
import ssl
import urllib.parse
from collections.abc import Iterable
from typing import Any

import anyio
import trio
import trio_websocket
from loguru import logger
from mcp.server.lowlevel.server import Server
from mcp.shared.message import SessionMessage
from wsproto.events import TextMessage

from trio_exec.config import KILL_GRACE_S
from trio_exec.server import CLIENT, Service
from trio_exec.transports import framing
from trio_exec.transports.gate import Admitted, Gate, Refused, bearer, header, peer_key, split_bind
from trio_exec.transports.replies import FLUSH_S, Replies
from trio_exec.transports.sockets import report_drop, set_write_timeout

SUBPROTOCOL = "mcp"


def _header(request: trio_websocket.WebSocketRequest, name: bytes) -> str | None:
    value = header(request.headers, name)
    return None if value is None else value.decode("latin-1")


def _host(request: trio_websocket.WebSocketRequest) -> str | None:
    """The handshake's Host.

    wsproto (1.3) takes Host out of the headers it hands on, so trio-websocket's public ``request.headers`` never
    holds it; the only copy is on wsproto's ``Request`` event, which trio-websocket (0.12) keeps private. The public
    headers are read first, so a release that keeps Host there is used without this one private read.
    """
    return _header(request, b"host") or getattr(getattr(request, "_event", None), "host", None)


def _presented_token(request: trio_websocket.WebSocketRequest) -> bytes | None:
    """The Bearer token of a handshake, from wherever a WebSocket client can put it (None if none).

    ``Authorization: Bearer`` first (read as on HTTP). Neither official SDK's WebSocket client (nor a browser's
    ``WebSocket``) can send a header, so also the URL's ``access_token`` query parameter (RFC 6750, 2.3: what the
    TypeScript SDK's ``WebSocketClientTransport(url)`` can carry) and a ``bearer.<token>`` subprotocol beside ``mcp``
    (what a browser's ``new WebSocket(url, ["mcp", "bearer." + token])`` can). No log line shows the path or
    the proposed subprotocols, and the accepted subprotocol is ``mcp``, so the token is never echoed.
    """
    presented = bearer(header(request.headers, b"authorization"))
    if presented is not None:
        return presented
    query = urllib.parse.parse_qs(request.path.partition("?")[2], keep_blank_values=False)
    if query.get("access_token"):
        return query["access_token"][0].encode()
    for proposed in request.proposed_subprotocols:
        if proposed.startswith("bearer.") and len(proposed) > len("bearer."):
            return proposed[len("bearer.") :].encode()
    return None


class _Handshake:
    """Decides whether a WebSocket handshake may become an MCP session."""

    def __init__(self, service: Service, gate: Gate) -> None:
        self.service = service
        self.gate = gate
        self.path = (service.settings.network.root_path or "") + "/mcp"

    async def check(self, request: trio_websocket.WebSocketRequest) -> Admitted | None:
        """The client when the handshake is acceptable; otherwise it is rejected here and None returned."""
        remote = request.remote
        peer = peer_key(str(remote.address if isinstance(remote, trio_websocket.Endpoint) else remote))
        if request.path.split("?", 1)[0] != self.path:
            await request.reject(404, body=b"not found: the MCP endpoint is " + self.path.encode())
            return None
        if not self.gate.host_allowed(_host(request)):
            await request.reject(421, body=b"invalid Host header")
            return None
        if not self.gate.origin_allowed(_header(request, b"origin")):
            await request.reject(403, body=b"invalid Origin header")
            return None
        verdict = self.gate.admit(_presented_token(request), peer)
        if isinstance(verdict, Refused):
            self.service.audit.record("auth_failure", transport="websocket", client=peer, reason=verdict.reason)
            logger.warning("authentication failed from {}", peer)
            wait = self.service.guards.rates.admit(peer, trio.current_time())
            status = 429 if wait is not None else 401
            await request.reject(status, extra_headers=[(b"www-authenticate", b'Bearer realm="trio-exec"')])
            return None
        if SUBPROTOCOL not in request.proposed_subprotocols:
            await request.reject(400, body=b"the WebSocket subprotocol 'mcp' is required")
            return None
        return verdict


async def _session(
    server: Server[Any], ws: trio_websocket.WebSocketConnection, replies: Replies, service: Service
) -> None:
    """Bridge one WebSocket connection to one MCP server session (``replies`` sees what it reads and answers)."""
    in_tx, in_rx = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    out_tx, out_rx = anyio.create_memory_object_stream[SessionMessage](0)

    async def pump_in() -> None:
        async with in_tx, out_tx.clone() as answer:
            while True:
                try:
                    frame = await ws.get_message()
                except trio_websocket.ConnectionClosed:
                    return
                message = framing.decode(frame)  # text or binary frames alike
                if isinstance(message, framing.Malformed):
                    logger.debug("malformed WebSocket message: {}", message.reason)
                    if message.reply is not None:  # the SDK would drop it without a word
                        await answer.send(SessionMessage(message.reply))
                    continue
                replies.read(message, ws)
                await in_tx.send(SessionMessage(message))

    async def pump_out() -> None:
        async with out_rx:
            async for message in out_rx:
                started = trio.current_time()
                try:
                    await _send(ws, message)
                except trio_websocket.ConnectionClosed as closed:
                    # A write blocked for the whole --write-timeout, then an abnormal closure: the kernel
                    # dropped a peer that stopped reading (TCP_USER_TIMEOUT).
                    limit = service.settings.network.write_timeout_s
                    abnormal = closed.reason is not None and closed.reason.code == 1006
                    if abnormal and 0 < limit <= trio.current_time() - started:
                        report_drop(service, "websocket", CLIENT.get())
                    return
                replies.written(message.message, ws)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump_in)
            nursery.start_soon(pump_out)
            await server.run(in_rx, out_tx, server.create_initialization_options())
            nursery.cancel_scope.cancel()
    finally:
        replies.forget(ws)


async def _send(ws: trio_websocket.WebSocketConnection, message: SessionMessage) -> None:
    """One JSON-RPC message as one text message: one frame, or, for a large reply, fragments of it.

    ``framing.encode_parts`` slices a large reply so that no whole copy of its JSON exists (50 MB of NUL output
    peaked at 1626 MB sent whole, 175 MB in fragments). trio-websocket's public ``send_message`` takes a whole
    message only; its ``_send`` takes any wsproto event, a fragment (``message_finished=False``) too. This task
    is the connection's only sender of data frames, so fragments of two messages cannot interleave (control
    frames may, RFC 6455 5.4).
    """
    send_event = getattr(ws, "_send", None)  # trio-websocket 0.12; without it, the message goes whole
    if send_event is None:
        await ws.send_message(framing.encode(message).decode("utf-8"))
        return
    parts = framing.encode_parts(message)
    pending = next(parts)
    fragmented = False
    for part in parts:
        await send_event(TextMessage(data=pending.decode("utf-8"), message_finished=False))
        pending, fragmented = part, True
    if fragmented:
        await send_event(TextMessage(data=pending.decode("utf-8"), message_finished=True))
    else:
        await ws.send_message(pending.decode("utf-8"))


async def _listeners(
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    backlog: int,
    write_timeout_s: float,
    listen_fd: int | None = None,
) -> list[trio.SocketListener | trio.SSLListener[trio.SocketStream]]:
    """What ``trio_websocket.serve_websocket`` would open, with our backlog and ``TCP_USER_TIMEOUT``; or the
    socket ``listen_fd`` already listens on (a ``--workers`` worker's)."""
    if listen_fd is None:
        plain = await trio.open_tcp_listeners(port, host=host, backlog=backlog)
    else:
        plain = [trio.SocketListener(trio.socket.from_stdlib_socket(socket.socket(fileno=listen_fd)))]
    for listener in plain:
        set_write_timeout(listener.socket, write_timeout_s)
    if context is None:
        return list(plain)
    return [trio.SSLListener(listener, context, https_compatible=True) for listener in plain]


async def serve_websocket(
    server: Server[Any],
    service: Service,
    tokens: Iterable[str],
    stopping: trio.Event,
    *,
    listen_fd: int | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket sessions until ``stopping`` is set, then drain and close them; on ``listen_fd`` if given."""
    s = service.settings
    host, port = split_bind(s.network.bind)
    context = None
    if s.network.certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(s.network.certfile, s.network.keyfile)
    handshake = _Handshake(service, Gate.build(s.network, tokens))
    replies = Replies()

    async def handle(request: trio_websocket.WebSocketRequest) -> None:
        admitted = await handshake.check(request)
        if admitted is None:
            return
        ws = await request.accept(subprotocol=SUBPROTOCOL)
        handshake.gate.enter(admitted)
        try:
            await _session(server, ws, replies, service)
        finally:
            # Shielded so the peer hears "going away", bounded so a half-closed peer cannot hold us.
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await ws.aclose(1001, "server shutting down")

    async with trio.open_nursery() as connections:
        async with trio.open_nursery() as listening:
            ws_server = trio_websocket.WebSocketServer(
                handle,
                await _listeners(host, port, context, s.network.backlog, s.network.write_timeout_s, listen_fd),
                handler_nursery=connections, max_message_size=s.network.max_request_bytes,
            )  # fmt: skip
            await listening.start(ws_server.run)
            scheme = "wss" if context else "ws"
            shown = f"[{host}]" if ":" in host else host
            task_status.started(f"{scheme}://{shown}:{ws_server.port}{handshake.path}")
            await stopping.wait()
            service.guards.draining = True  # open connections get ``busy`` for new calls
            listening.cancel_scope.cancel()  # no new connections
        with trio.move_on_after(s.network.shutdown_grace_s) as grace:
            await service.guards.wait_idle()
        if grace.cancelled_caught:
            logger.warning("calls still running after {}s of grace: cancelling them", s.network.shutdown_grace_s)
        service.guards.shutdown()  # what still runs is stopped; its call answers ``cancelled``
        with trio.move_on_after(KILL_GRACE_S + FLUSH_S):
            await service.guards.wait_idle()
            await replies.all_answered()
        connections.cancel_scope.cancel()
