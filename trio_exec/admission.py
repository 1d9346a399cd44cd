"""Admission: the pure guards of ``guards.py`` wired to trio (DESIGN §6).

Order and cost: rate limit -> circuit breaker -> ``trio.CapacityLimiter``; each refuses at once
(microseconds, nothing started). The breaker task, owned by the app nursery, moves open
circuits to half-open when their cooldown ends. Time comes from ``trio.current_time()`` only,
so every guard runs on trio's autojump clock in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs
import trio

from trio_exec.errors import Busy, CircuitOpen, RateLimited
from trio_exec.guards import Breaker, RateLimiter, State, Ticket


@attrs.frozen(eq=False)
class Admission:
    """A call let in: it holds a concurrency token (it is the borrower) and a breaker ticket."""

    tool: str
    ticket: Ticket


class Guards:
    """Every guard of one server."""

    def __init__(
        self,
        *,
        tools: Iterable[str],
        max_concurrent: int,
        rate: float,
        burst: int,
        circuit_threshold: int,
        circuit_timeout_s: float,
        on_breaker_change: Callable[[str, State], None] = lambda tool, state: None,
    ) -> None:
        self.limiter = trio.CapacityLimiter(max_concurrent)
        self.rates = RateLimiter(rate, burst)
        self.breakers = {t: Breaker(circuit_threshold, circuit_timeout_s) for t in tools}
        self._on_breaker_change = on_breaker_change
        self._breaker_opened = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self.draining = False  # shutting down: no new calls

    def admit(self, tool: str, client: str) -> Admission:
        """Let a call in, or raise ``RateLimited``, ``CircuitOpen`` or ``Busy``."""
        if self.draining:
            raise Busy("the server is shutting down and takes no new calls; retry shortly", retry_after_s=5.0)
        now = trio.current_time()
        wait = self.rates.admit(client, now)
        if wait is not None:
            raise RateLimited(f"too many calls: rate limit reached; retry in {wait:.2f}s", retry_after_s=round(wait, 3))
        ticket = self.breakers[tool].admit(now)
        if not isinstance(ticket, Ticket):
            raise CircuitOpen(
                f"tool {tool!r} failed repeatedly and is paused; retry in {ticket:.1f}s",
                retry_after_s=round(ticket, 3),
            )
        admission = Admission(tool, ticket)
        try:
            self.limiter.acquire_on_behalf_of_nowait(admission)
            if self._idle.is_set():
                self._idle = trio.Event()
        except trio.WouldBlock:
            self.breakers[tool].release(ticket)
            raise Busy(
                f"{int(self.limiter.total_tokens)} commands are already running (--max-concurrent); retry shortly"
            ) from None
        return admission

    def finish(self, admission: Admission, *, failed: bool | None) -> None:
        """End an admitted call: ``failed`` True/False counts for the breaker, None counts nothing."""
        self.limiter.release_on_behalf_of(admission)
        if not self.limiter.borrowed_tokens:
            self._idle.set()  # (the reply is written after this; hypercorn's own grace flushes it)
        breaker = self.breakers[admission.tool]
        if failed is None:
            breaker.release(admission.ticket)
            return
        changed = breaker.record(admission.ticket, failed=failed, now=trio.current_time())
        if changed is not None:
            self._changed(admission.tool, changed)

    async def wait_idle(self) -> None:
        """Until no admitted call is running (for graceful shutdown)."""
        while self.limiter.borrowed_tokens:
            await self._idle.wait()

    def _changed(self, tool: str, state: State) -> None:
        self._on_breaker_change(tool, state)
        if state is State.OPEN:
            self._breaker_opened.set()

    async def breaker_task(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Move open circuits to half-open when their cooldown ends; runs for the server's life."""
        task_status.started()
        while True:
            dues = [d for b in self.breakers.values() if (d := b.cooldown_due()) is not None]
            with trio.move_on_at(min(dues) if dues else float("inf")):
                await self._breaker_opened.wait()
            self._breaker_opened = trio.Event()
            now = trio.current_time()
            for tool, breaker in self.breakers.items():
                changed = breaker.cool_down(now)
                if changed is not None:
                    self._changed(tool, changed)
