"""Tool calls in flight on network requests, so the HTTP transport can stop the ones their client abandoned.

stdio and WebSocket need none of this: each connection is one SDK session, which cancels a request on
``notifications/cancelled`` and ends with the connection. Streamable HTTP spreads a session over many
POSTs: a stateless server starts a new session per POST (a ``notifications/cancelled`` POST reaches a
session that never saw the call), and a POST whose client went away leaves its call running. So the
HTTP layer marks each POST's ASGI scope with its *owner* (the client key and the session id) and a set
for the cancel scopes of the calls it carries; the tool handler registers its command's cancel scope
there and here, by (owner, request id). A client can only ever stop its own calls: the owner includes
the client key (the token's fingerprint, or the address when there is no token).

Invariant: a cancel scope is registered exactly while its command runs (``track``'s ``with``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import trio

OWNER = "trio_exec.owner"  # ASGI scope keys set by the HTTP layer for each POST
CALLS = "trio_exec.calls"
CLIENT_KEY = "trio_exec.client"


def owner_of(client: str, session_id: str | None) -> str:
    return f"{client} {session_id or ''}"


class InFlight:
    """The cancel scopes of running calls by (owner, JSON-RPC request id)."""

    def __init__(self) -> None:
        self._by_id: dict[tuple[str, str], set[trio.CancelScope]] = {}

    @contextmanager
    def track(self, http_scope: MutableMapping[str, Any] | None, request_id: object) -> Iterator[trio.CancelScope]:
        """A cancel scope for one command, cancelled when its client cancels the call or goes away.

        Registered only for calls that came over HTTP (``http_scope`` carries the marks); otherwise it is
        a plain scope that nobody cancels.
        """
        stop = trio.CancelScope()
        calls: set[trio.CancelScope] | None = None
        key: tuple[str, str] | None = None
        if http_scope is not None and OWNER in http_scope:
            calls = http_scope[CALLS]
            key = (http_scope[OWNER], json.dumps(request_id))  # 1 and "1" are different ids
            calls.add(stop)
            self._by_id.setdefault(key, set()).add(stop)
        try:
            with stop:
                yield stop
        finally:
            if calls is not None and key is not None:
                calls.discard(stop)
                same = self._by_id.get(key, set())
                same.discard(stop)
                if not same:
                    self._by_id.pop(key, None)

    def cancel(self, owner: str, request_id: object) -> int:
        """Stop the calls ``owner`` started with ``request_id``; how many there were."""
        scopes = self._by_id.get((owner, json.dumps(request_id)), set())
        for scope in scopes:
            scope.cancel()
        return len(scopes)

    def __len__(self) -> int:
        return sum(map(len, self._by_id.values()))
