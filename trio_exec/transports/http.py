"""Streamable HTTP: the SDK's ASGI app served by ``hypercorn.trio.serve`` inside the app nursery.

Layers, outermost first (each is a small ASGI callable):
1. ``TrustedProxies``: ``X-Forwarded-For``/``-Proto`` are believed only from ``--forwarded-allow-ips``
   (hypercorn's ``ProxyFixMiddleware`` does the parsing), so rate limits and the audit trail see the
   real client address;
2. ``Front``: ``--root-path`` prefix, ``GET``/``HEAD /health`` (no auth, no secrets), then the ``Gate``:
   Bearer auth (401 with ``WWW-Authenticate``; failures are audit events and spend the client's rate
   limit), the client key for the guards, and Host/Origin (DNS rebinding) for ``/mcp``, answered as the
   SDK answers them (421, 403);
3. the SDK's Starlette app at ``/mcp``: the request body cap, stateless or stateful sessions, both eras.
   It is given the same Host/Origin lists, so its own check agrees with the Gate's (which runs first).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config, Sockets
from hypercorn.middleware import ProxyFixMiddleware
from hypercorn.trio import serve
from loguru import logger
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel.server import Server
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from trio_exec import __version__
from trio_exec.config import KILL_GRACE_S, NetworkSettings
from trio_exec.inflight import CALLS, CLIENT_KEY, OWNER, owner_of
from trio_exec.server import Service
from trio_exec.transports.gate import Gate, Refused, bearer, header, peer_key
from trio_exec.transports.replies import FLUSH_S
from trio_exec.transports.sockets import report_drop, set_write_timeout

if TYPE_CHECKING:
    from trio_exec.workers import Worker

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


NO_OAUTH = (
    "this server takes a static Bearer token, not OAuth: send 'Authorization: Bearer <token>' with the token its "
    "operator set (MCP_EXEC_AUTH_TOKEN or --auth-token-file)"
)


class TrustedProxies:
    """Apply ``X-Forwarded-*`` only when the direct peer is a trusted proxy."""

    def __init__(self, app: ASGIApp, trusted: Iterable[str]) -> None:
        self.app = app
        self.proxy_fix = ProxyFixMiddleware(app, mode="legacy", trusted_hops=1)  # type: ignore[arg-type]
        self.networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = (scope.get("client") or ("", 0))[0]
        if self.networks and scope["type"] in ("http", "websocket") and self._trusted(peer):
            await self.proxy_fix(scope, receive, send)  # type: ignore[arg-type]
        else:
            await self.app(scope, receive, send)

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


async def _respond(send: Send, status: int, body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                        *headers],
        }
    )  # fmt: skip
    await send({"type": "http.response.body", "body": payload})


class Front:
    """Root path, health, the gate (Bearer auth, the client key, Host/Origin) and session admission, in front
    of the SDK app."""

    def __init__(
        self,
        app: ASGIApp,
        service: Service,
        gate: Gate,
        sessions: Callable[[], int] | None = None,
        workers: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.gate = gate
        self.root_path = (service.settings.network.root_path or "").rstrip("/")
        self.draining = False  # set on shutdown: /health answers 503 so load balancers stop routing here
        self.sessions = sessions  # stateful: how many sessions are open
        self.workers = workers  # --workers: this worker, and every worker as the supervisor sees them

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan
            return
        path: str = scope["path"]
        if self.root_path and (path == self.root_path or path.startswith(self.root_path + "/")):
            scope = {**scope, "path": path[len(self.root_path) :] or "/", "root_path": ""}
            path = scope["path"]
        if path == "/health" and scope["method"] in ("GET", "HEAD"):
            audited = self.service.audit.accepting()  # retries a broken audit log (--audit-fail closed)
            status = "draining" if self.draining else "ok" if audited else "audit_unavailable"
            body: dict[str, Any] = {"status": status, "version": __version__, "tools": len(self.service.tools)}
            if self.sessions is not None:
                body.update(sessions=self.sessions(), max_sessions=self.service.settings.network.max_sessions)
            if self.workers is not None:
                body.update(self.workers())
            await _respond(send, 200 if status == "ok" else 503, body)
            return
        if path.startswith("/.well-known/") or scope["path"].startswith("/.well-known/"):
            # No OAuth here: clients that look for its metadata (RFC 9728, RFC 8414) on a 401 learn so at once.
            await _respond(send, 404, {"error": "not_found", "error_description": NO_OAUTH})
            return
        peer = peer_key((scope.get("client") or ("unknown", 0))[0])
        verdict = self.gate.admit(bearer(header(scope["headers"], b"authorization")), peer)
        if isinstance(verdict, Refused):
            await self._refuse(scope, receive, send, peer, verdict.reason)
            return
        key = verdict.key
        if verdict.authenticated:
            # The SDK binds a stateful session to the credential that opened it when it sees an authenticated
            # user: another token presenting a known session id is told "Session not found".
            scope = {**scope, "user": AuthenticatedUser(AccessToken(token=key, client_id=key, scopes=[]))}
        self.gate.enter(verdict)
        if self.sessions is not None and _opens_session(scope):
            refusal = self._session_refusal(key)
            if refusal is not None:
                await _read_body(receive, self.service.settings.network.max_request_bytes)
                await _respond(send, *refusal)
                return
        if scope["method"] == "POST":
            await self._watched(scope, receive, send, key, peer)
        elif (foreign := self._foreign(scope)) is not None:
            await foreign(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _foreign(self, scope: Scope) -> Response | None:
        """The answer to a request at ``/mcp`` whose Host or Origin this server does not trust (DNS rebinding), or
        None. The same statuses and bodies as the SDK's own check, which still runs behind this one and agrees."""
        if scope["path"] != "/mcp":
            return None  # the SDK's app answers 404 (or redirects ``/mcp/``) without looking at Host or Origin
        if not self.gate.host_allowed(_header(scope, b"host")):
            return Response("Invalid Host header", status_code=421)
        if not self.gate.origin_allowed(_header(scope, b"origin")):
            return Response("Invalid Origin header", status_code=403)
        return None

    async def _watched(self, scope: Scope, receive: Receive, send: Send, key: str, peer: str) -> None:
        """Pass a POST on, stopping the calls it carries if the client goes away before the answer, acting on
        a ``notifications/cancelled`` it carries (which a stateless server's SDK session cannot), and auditing
        a connection the kernel dropped because its peer stopped reading.

        The body is read here first (the SDK reads it whole anyway) and replayed; from then on this layer
        alone reads the client's messages, and the app's ``receive`` reports the disconnect when it happens.
        hypercorn swallows the failed write (``ETIMEDOUT`` from ``TCP_USER_TIMEOUT``) and reports
        ``http.disconnect``: a response write that blocked for the whole write timeout, then the disconnect,
        is that drop.
        """
        read, complete = await _buffer_body(receive, self.service.settings.network.max_request_bytes)
        if (foreign := self._foreign(scope)) is not None:  # after the body: the connection stays usable
            await foreign(scope, receive, send)
            return
        owner = owner_of(key, _header(scope, b"mcp-session-id"))
        if complete:
            for request_id in _cancelled_ids(b"".join(m.get("body", b"") for m in read)):
                self.service.inflight.cancel(owner, request_id)
        calls: set[trio.CancelScope] = set()
        gone = trio.Event()
        limit = self.service.settings.network.write_timeout_s
        stalled = False

        async def timed_send(message: MutableMapping[str, Any]) -> None:
            nonlocal stalled
            started = trio.current_time()
            await send(message)
            stalled = stalled or (limit > 0 and trio.current_time() - started >= limit)

        async def app_receive() -> MutableMapping[str, Any]:
            if read:
                return read.pop(0)
            if not complete:
                return await receive()  # over the cap: the SDK reads on and answers 413
            await gone.wait()
            return {"type": "http.disconnect"}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            for call in list(calls):
                call.cancel()

        try:
            async with trio.open_nursery() as nursery:
                if complete:
                    nursery.start_soon(watch)
                await self.app({**scope, OWNER: owner, CALLS: calls, CLIENT_KEY: key}, app_receive, timed_send)
                nursery.cancel_scope.cancel()
        finally:
            if stalled and gone.is_set():
                report_drop(self.service, "streamable-http", peer)

    def _session_refusal(self, key: str) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]] | None:
        """Why a new stateful session is refused (HTTP status, JSON-RPC error body, headers), or None.

        Opening a session spends the client's rate limit like a call (one client cannot open thousands a
        second), and at ``--max-sessions`` open sessions a new one waits for one to end or expire.
        """
        assert self.sessions is not None  # noqa: S101 - only called in stateful mode
        s = self.service.settings
        wait = self.service.guards.rates.admit(key, trio.current_time())
        if wait is not None:
            status, code, retry = 429, "rate_limited", math.ceil(wait)
            message = f"too many new sessions from this client; retry in {retry}s or reuse the session you have"
        elif (open_now := self.sessions()) >= s.network.max_sessions:
            status, code, retry = 503, "too_many_sessions", math.ceil(min(s.network.session_idle_timeout_s, 30.0))
            message = (
                f"the server has {open_now} sessions open, its limit (--max-sessions {s.network.max_sessions}); "
                f"idle ones close after {s.network.session_idle_timeout_s:g}s: retry in {retry}s, "
                "and end sessions you no longer need (HTTP DELETE)"
            )
        else:
            return None
        self.service.audit.record("session_refused", transport="streamable-http", client=key, reason=code)
        logger.warning("new session refused for {}: {}", key, code)
        error = {"code": -32000, "message": message, "data": {"code": code, "retry_after_s": retry}}
        body = {"jsonrpc": "2.0", "id": None, "error": error}
        return status, body, [(b"retry-after", str(retry).encode())]

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, peer: str, why: str) -> None:
        self.service.audit.record("auth_failure", transport="streamable-http", client=peer, reason=why,
                                  path=scope["path"])  # fmt: skip
        logger.warning("authentication failed ({} token) from {}", why, peer)
        # Read the body first: hypercorn closes a connection whose request was not read to the end when
        # the response is complete, so a client's next request on it (a retry with the right token) would
        # meet a closed socket. A body over the cap is not read; the client is told to reconnect instead.
        extra = (
            []
            if await _read_body(receive, self.service.settings.network.max_request_bytes)
            else [(b"connection", b"close")]
        )
        wait = self.service.guards.rates.admit(peer, trio.current_time())
        if wait is not None:  # repeated failures spend the client's rate limit like calls do
            retry = [(b"retry-after", str(int(wait) + 1).encode())]
            await _respond(send, 429, {"error": "too many requests"}, retry + extra)
            return
        challenge = b'Bearer realm="trio-exec"' + (b', error="invalid_token"' if why == "invalid" else b"")
        body = {"error": "unauthorized", "error_description": NO_OAUTH}
        await _respond(send, 401, body, [(b"www-authenticate", challenge), *extra])


async def _read_body(receive: Receive, limit: int) -> bool:
    """Consume the request body (discarded); False when it passed ``limit`` or the client went away."""
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return False
        seen += len(message.get("body", b""))
        if seen > limit:
            return False
        if not message.get("more_body", False):
            return True


def _header(scope: Scope, name: bytes) -> str | None:
    value = header(scope["headers"], name)
    return None if value is None else value.decode("latin-1")


def _opens_session(scope: Scope) -> bool:
    """A stateful server opens a session for a POST without a session id in a handshake-era protocol (the
    ``initialize`` request; the 2026 era has no sessions). Mirrors the SDK's session manager routing."""
    if scope["method"] != "POST" or _header(scope, b"mcp-session-id") is not None:
        return False
    version = _header(scope, b"mcp-protocol-version")
    return version is None or version in HANDSHAKE_PROTOCOL_VERSIONS


async def _buffer_body(receive: Receive, limit: int) -> tuple[list[MutableMapping[str, Any]], bool]:
    """The request's messages up to its end (True) or until past ``limit`` bytes or a disconnect (False)."""
    read: list[MutableMapping[str, Any]] = []
    seen = 0
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            return read, False
        seen += len(message.get("body", b""))
        if seen > limit:
            return read, False
        if not message.get("more_body", False):
            return read, True


def _cancelled_ids(body: bytes) -> list[object]:
    """The request ids of the ``notifications/cancelled`` messages in a POST body (a message or a batch)."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return []  # the SDK answers the parse error
    messages = decoded if isinstance(decoded, list) else [decoded]
    return [
        m["params"]["requestId"]
        for m in messages
        if isinstance(m, dict)
        and m.get("method") == "notifications/cancelled"
        and isinstance(m.get("params"), dict)
        and isinstance(m["params"].get("requestId"), (str, int))
    ]


# What MCP clients send and may read, for CORS.
CORS_REQUEST_HEADERS = [
    "authorization",
    "content-type",
    "accept",
    "mcp-protocol-version",
    "mcp-session-id",
    "last-event-id",
]
CORS_EXPOSED_HEADERS = ["mcp-session-id", "mcp-protocol-version", "www-authenticate", "retry-after"]


def with_cors(app: ASGIApp, origins: Iterable[str]) -> ASGIApp:
    """Starlette's CORS middleware for ``--cors-origins`` (``scheme://name:*`` is any port of that name).

    Outside the auth layer: a preflight carries no token. A browser may then send what MCP clients
    send and read the session id and the auth challenge.
    """
    exact = [o for o in origins if not o.endswith(":*")]
    ports = [re.escape(o[: -len(":*")]) + r"(:[0-9]+)?" for o in origins if o.endswith(":*")]
    return CORSMiddleware(
        app,
        allow_origins=exact,
        allow_origin_regex="|".join(ports) or None,
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )


def build_app(
    server: Server[Any], service: Service, tokens: Iterable[str], worker: Worker | None = None
) -> tuple[ASGIApp, Front]:
    s = service.settings
    gate = Gate.build(s.network, tokens, extra_origins=s.network.cors_origins)  # a CORS origin is a trusted one
    security = TransportSecuritySettings(  # the same lists: behind the gate, the SDK's check agrees with it
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(gate.hosts.listed),
        allowed_origins=list(gate.origins.listed),
    )
    sdk_app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=not s.network.stateful,
        json_response=s.network.json_response,
        transport_security=security,
        max_request_body_size=s.network.max_request_bytes,
        session_idle_timeout=s.network.session_idle_timeout_s,
        max_sessions=s.network.max_sessions,
    )
    count: Callable[[], int] | None = None
    if s.network.stateful:
        manager = server.session_manager

        def sessions() -> int:
            return len(manager._server_instances)  # the SDK keeps the count private

        count = sessions
    front = Front(sdk_app, service, gate, count, None if worker is None else worker.health)
    app: ASGIApp = with_cors(front, s.network.cors_origins) if s.network.cors_origins else front
    return TrustedProxies(app, s.network.forwarded_allow_ips), front


class _Config(Config):
    """hypercorn's configuration, with ``--write-timeout`` set on the sockets it listens on."""

    write_timeout_s = 0.0

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
            set_write_timeout(sock, self.write_timeout_s)
            sock.set_inheritable(False)  # hypercorn makes them inheritable (for its own workers): no command gets one
        return sockets


def hypercorn_config(network: NetworkSettings, listen_fd: int | None = None) -> Config:
    """``listen_fd``: a socket already listening (a ``--workers`` worker's), instead of binding ``--bind``."""
    config = _Config()
    config.bind = [network.bind if listen_fd is None else f"fd://{listen_fd}"]
    config.backlog = network.backlog  # hypercorn's 100 overflows under a burst: connections go unanswered
    config.write_timeout_s = network.write_timeout_s
    config.graceful_timeout = 1.0  # calls have drained already (serve_http); this only flushes responses
    config.accesslog = logging.getLogger("hypercorn.access")  # shown at --log-level debug
    config.errorlog = logging.getLogger("hypercorn.error")  # routed to loguru by audit.setup_logging
    if network.certfile:
        config.certfile = network.certfile
        config.keyfile = network.keyfile
    return config


async def serve_http(
    server: Server[Any],
    service: Service,
    tokens: Iterable[str],
    shutdown: trio.Event,
    *,
    worker: Worker | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown`` is set, then drain for ``--shutdown-grace`` seconds; reports bound URLs.

    Draining happens here rather than in hypercorn (whose terminate drops replies still being
    written): ``/health`` answers 503 "draining" so load balancers stop routing here, new tool
    calls are refused with ``busy``, protocol requests are still answered, running calls get the
    grace to finish and answer; then hypercorn stops and whatever still runs is cancelled.
    """
    app, front = build_app(server, service, tokens, worker)
    stop_hypercorn = trio.Event()

    async def drain() -> None:
        await shutdown.wait()
        front.draining = True
        service.guards.draining = True
        with trio.move_on_after(service.settings.network.shutdown_grace_s) as grace:
            await service.guards.wait_idle()
        if grace.cancelled_caught:
            logger.warning(
                "calls still running after {}s of grace: cancelling them", service.settings.network.shutdown_grace_s
            )
            service.guards.shutdown()  # their calls answer ``cancelled``; hypercorn's own grace writes the answers
            with trio.move_on_after(KILL_GRACE_S + FLUSH_S):
                await service.guards.wait_idle()
        stop_hypercorn.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        config = hypercorn_config(service.settings.network, None if worker is None else worker.listen_fd)
        await serve(app, config, shutdown_trigger=stop_hypercorn.wait, task_status=task_status)  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()
