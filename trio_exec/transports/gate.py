"""The one admission edge of the network transports: Host and Origin (DNS rebinding), the Bearer token, the client key.

Both ``http`` and ``websocket`` build one ``Gate`` at start-up and ask it the same questions in the same terms;
what each answers on its wire (statuses, bodies, challenges, audit fields) stays with the transport.

Invariants:
- a Host or Origin is matched against the operator's patterns exactly as the MCP SDK's ``TransportSecuritySettings``
  does (``mcp.server.transport_security``, 2.3): a pattern matches itself; ``base:*`` also matches anything that
  starts with ``base:``. An absent Host never passes; an absent Origin always does (same-origin requests send none);
- a presented token is compared with every accepted token in constant time, so the time taken says nothing about
  which one matched; an absent or empty token is ``missing``, any other unmatched one ``invalid``;
- the client key (rate limits, the audit trail, session ownership) is the token's fingerprint when tokens are set,
  else the peer's address; the token itself never leaves this module;
- ``server.CLIENT`` is set here (``Gate.enter``) and nowhere else in the transports.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Literal

import attrs
from loguru import logger

from trio_exec.config import NetworkSettings
from trio_exec.server import CLIENT


def split_bind(bind: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as ``(host, port)``, brackets removed."""
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


def default_allowed(bind: str) -> tuple[list[str], list[str]]:
    """Host and Origin allowlists: the bind address and localhost, any port."""
    host, _ = split_bind(bind)
    names = ["127.0.0.1", "localhost", "[::1]"]
    if host not in ("0.0.0.0", "::", "", *names, "::1"):  # noqa: S104 - comparing, not binding
        names.append(f"[{host}]" if ":" in host else host)
    hosts = [h for n in names for h in (n, f"{n}:*")]
    origins = [o for n in names for scheme in ("http", "https") for o in (f"{scheme}://{n}", f"{scheme}://{n}:*")]
    return hosts, origins


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


@attrs.frozen
class Patterns:
    """Host or Origin patterns: ``name`` (that exact value) or ``name:*`` (``name`` with any port).

    ``base:*`` matches every value that starts with ``base:`` (the SDK's rule: it does not look at what
    follows the colon), and also the literal ``base:*``. Order does not matter.
    """

    listed: tuple[str, ...] = attrs.field(converter=_strings)

    def match(self, value: str) -> bool:
        # ``base:*`` minus its ``*`` is the prefix ``base:``.
        return value in self.listed or any(p.endswith(":*") and value.startswith(p[:-1]) for p in self.listed)


def fingerprint(token: bytes) -> str:
    """A stable, non-reversible name for a token (never the token itself)."""
    return "token:" + hashlib.sha256(token).hexdigest()[:12]


def bearer(authorization: bytes | None) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header value; None when absent, empty or another scheme."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" and token.strip() else None


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case) in raw ``(name, value)`` pairs."""
    return next((v for k, v in headers if k.lower() == name), None)


def peer_key(address: str) -> str:
    """The client key of a peer without a token (and the name auth failures are recorded under)."""
    return "ip:" + address


@attrs.frozen
class Admitted:
    """A client that may go on: ``key`` names it to the guards and the audit trail."""

    key: str
    authenticated: bool  # it presented an accepted token (``key`` is that token's fingerprint)


@attrs.frozen
class Refused:
    """A client without an accepted token: ``reason`` is ``missing`` (none presented) or ``invalid``."""

    reason: Literal["missing", "invalid"]


@attrs.frozen
class Gate:
    """What a network transport admits: built once from the settings, the same for every connection."""

    hosts: Patterns
    origins: Patterns
    tokens: tuple[bytes, ...]  # empty: no authentication (loopback, or behind an authenticating proxy)

    @classmethod
    def build(cls, network: NetworkSettings, tokens: Iterable[str], extra_origins: Iterable[str] = ()) -> Gate:
        """The bind address and localhost unless ``--allowed-hosts``/``--allowed-origins`` replace them;
        ``extra_origins`` (HTTP's ``--cors-origins``: a CORS origin is a trusted one) are added either way."""
        hosts, origins = default_allowed(network.bind)
        return cls(
            hosts=Patterns(network.allowed_hosts or hosts),
            origins=Patterns([*(network.allowed_origins or origins), *extra_origins]),
            tokens=tuple(t.encode() for t in tokens if t),
        )

    def host_allowed(self, host: str | None) -> bool:
        """Whether a request's Host names this server (DNS rebinding); a missing Host never does."""
        if not host:
            logger.warning("Missing Host header in request")
            return False
        if self.hosts.match(host):
            return True
        logger.warning("Invalid Host header: {}", host)
        return False

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether a request's Origin is trusted; a request without one (not from a browser page) is."""
        if not origin or self.origins.match(origin):
            return True
        logger.warning("Invalid Origin header: {}", origin)
        return False

    def admit(self, presented: bytes | None, peer: str) -> Admitted | Refused:
        """The verdict on a presented token (None or empty: none presented) from ``peer`` (``peer_key``)."""
        if not self.tokens:
            return Admitted(peer, authenticated=False)
        if not presented:
            return Refused("missing")
        found = False
        for token in self.tokens:  # every token, always: the time taken says nothing about which one matched
            found |= hmac.compare_digest(presented, token)
        return Admitted(fingerprint(presented), authenticated=True) if found else Refused("invalid")

    def enter(self, admitted: Admitted) -> None:
        """From here on, the calls made in this task's context (and the tasks it starts) are ``admitted``'s."""
        CLIENT.set(admitted.key)
