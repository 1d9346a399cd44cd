"""Progress notifications while a client waits on a command: elapsed seconds, and the latest output line.

A call with a ``progressToken`` gets ``notifications/progress`` every ``PROGRESS_INTERVAL_S`` while it waits (a
command running, a job being waited for), so clients with idle timeouts keep the request open and the model sees
what the command is doing. Calls without a token cost nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from mcp.server.context import ServerRequestContext

from trio_exec.runner import OutputWatch

PROGRESS_INTERVAL_S = 2.0  # well under the 5 s that clients with idle timeouts need


@asynccontextmanager
async def reporting(
    ctx: ServerRequestContext[Any], watch: OutputWatch, *, answered: bool = False
) -> AsyncIterator[None]:
    """Report progress (message: ``watch``'s latest line) for as long as the body runs, if the client asked.

    ``answered``: the request was answered already (a task's), so the request's own channel is closed and
    progress goes on the connection's (stdio, WebSocket, a stateful HTTP session's GET stream).
    """
    token = (ctx.meta or {}).get("progress_token")
    if token is None:
        yield
        return
    started = trio.current_time()

    async def tick() -> None:
        while True:
            await trio.sleep(PROGRESS_INTERVAL_S)
            elapsed = trio.current_time() - started
            message = watch.last_line or f"running for {elapsed:.0f}s"
            if answered:
                await ctx.session.send_progress_notification(token, round(elapsed, 3), None, message)
            else:
                await ctx.session.report_progress(round(elapsed, 3), None, message)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        yield
        nursery.cancel_scope.cancel()
