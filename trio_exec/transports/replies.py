"""Requests read but not yet answered, so a transport can answer every one before it closes.

A message transport (stdio, WebSocket) notes each request it reads and each response it has
written; at shutdown it first stops the running commands (their calls answer ``cancelled``),
then waits here, bounded, until every request read has its answer on the wire, and only then
closes. A request the client cancelled itself gets no answer (MCP), so it is forgotten.
"""

from __future__ import annotations

from collections.abc import Hashable

import mcp_types as types
import trio

FLUSH_S = 5.0  # at most this long for the last answers once the commands are stopped


class Replies:
    def __init__(self) -> None:
        self._open: set[tuple[Hashable, types.RequestId]] = set()
        self._none_open = trio.Event()
        self._none_open.set()

    def read(self, message: types.JSONRPCMessage, peer: Hashable = None) -> None:
        if isinstance(message, types.JSONRPCRequest):
            self._open.add((peer, message.id))
            if self._none_open.is_set():
                self._none_open = trio.Event()
        elif isinstance(message, types.JSONRPCNotification) and message.method == "notifications/cancelled":
            self._close(peer, (message.params or {}).get("requestId"))

    def written(self, message: types.JSONRPCMessage, peer: Hashable = None) -> None:
        if isinstance(message, (types.JSONRPCResponse, types.JSONRPCError)):
            self._close(peer, message.id)

    def forget(self, peer: Hashable) -> None:
        """A connection ended: nothing more can be written to it."""
        for key in [k for k in self._open if k[0] == peer]:
            self._close(*key)

    def _close(self, peer: Hashable, request_id: object) -> None:
        self._open.discard((peer, request_id))
        if not self._open:
            self._none_open.set()

    @property
    def pending(self) -> int:
        return len(self._open)

    async def all_answered(self) -> None:
        while self._open:
            await self._none_open.wait()
