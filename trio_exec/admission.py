"""Admission: the pure guards of ``guards.py`` wired to trio (DESIGN §6).

Order and cost: rate limit -> circuit breaker -> ``trio.CapacityLimiter``; each refuses at once
(microseconds, nothing started). Breakers are kept per (tool, client key): a client that keeps
making a tool fail opens that tool's circuit for itself only, never for the other clients. The
breaker task, owned by the app nursery, moves open circuits to half-open when their cooldown ends.
Time comes from ``trio.current_time()`` only, so every guard runs on trio's autojump clock in tests.

At shutdown, ``shutdown`` cancels every running command through its call's own cancel scope, so the
call still answers (``cancelled``, "server shutting down") before the transport closes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

import attrs
import trio

from trio_exec.errors import Busy, CircuitOpen, RateLimited
from trio_exec.guards import Breaker, RateLimiter, State, Ticket

# What a ``busy`` refusal suggests: no honest estimate of when a running command ends exists (any
# of them may run up to its timeout), so a short fixed pause; a retry that finds a free slot runs.
BUSY_RETRY_S = 1.0
DRAINING_RETRY_S = 5.0  # a restarting server is usually back within seconds (or a peer takes over)
MAX_BREAKERS = 10_000  # (tool, client) pairs remembered; the least recently used are forgotten past this


@attrs.frozen(eq=False)
class Admission:
    """A call let in: it holds a concurrency token (it is the borrower), a breaker ticket, and the
    cancel scope its command runs in (cancelled when the server shuts down)."""

    tool: str
    client: str
    breaker: Breaker
    ticket: Ticket
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)


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
        on_breaker_change: Callable[[str, str, State], None] = lambda tool, client, state: None,
        max_breakers: int = MAX_BREAKERS,
    ) -> None:
        self.limiter = trio.CapacityLimiter(max_concurrent)
        self.rates = RateLimiter(rate, burst)
        self.tools = frozenset(tools)
        self._threshold = circuit_threshold
        self._cooldown_s = circuit_timeout_s
        self._max_breakers = max_breakers
        self._breakers: OrderedDict[tuple[str, str], Breaker] = OrderedDict()
        self._on_breaker_change = on_breaker_change
        self._breaker_opened = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self._running: set[Admission] = set()
        self.draining = False  # shutting down: no new calls

    def breaker(self, tool: str, client: str) -> Breaker:
        """The breaker of ``tool`` for ``client`` (a fresh closed one if none is remembered)."""
        key = (tool, client)
        found = self._breakers.get(key)
        if found is None:
            found = self._breakers[key] = Breaker(self._threshold, self._cooldown_s)
            if len(self._breakers) > self._max_breakers:
                self._breakers.popitem(last=False)
        else:
            self._breakers.move_to_end(key)
        return found

    def admit(self, tool: str, client: str) -> Admission:
        """Let a call in, or raise ``RateLimited``, ``CircuitOpen`` or ``Busy``."""
        if self.draining:
            raise Busy(
                "the server is shutting down and takes no new calls; retry shortly", retry_after_s=DRAINING_RETRY_S
            )
        now = trio.current_time()
        self.check_rate(client, now)
        breaker = self.breaker(tool, client)
        ticket = breaker.admit(now)
        if not isinstance(ticket, Ticket):
            raise CircuitOpen(
                f"tool {tool!r} failed repeatedly for this client and is paused for it; retry in {ticket:.1f}s",
                retry_after_s=round(ticket, 3),
            )
        admission = Admission(tool, client, breaker, ticket)
        try:
            self.limiter.acquire_on_behalf_of_nowait(admission)
            if self._idle.is_set():
                self._idle = trio.Event()
        except trio.WouldBlock:
            breaker.release(ticket)
            raise Busy(
                f"{int(self.limiter.total_tokens)} commands are already running (--max-concurrent); "
                f"retry in {BUSY_RETRY_S:g}s",
                retry_after_s=BUSY_RETRY_S,
            ) from None
        self._running.add(admission)
        return admission

    def check_rate(self, client: str, now: float) -> None:
        """Take one call of ``client`` from its token bucket, or raise ``RateLimited`` (job tools: this guard only)."""
        wait = self.rates.admit(client, now)
        if wait is not None:
            raise RateLimited(f"too many calls: rate limit reached; retry in {wait:.2f}s", retry_after_s=round(wait, 3))

    def finish(self, admission: Admission, *, failed: bool | None) -> None:
        """End an admitted call: ``failed`` True/False counts for the breaker, None counts nothing."""
        self._running.discard(admission)
        self.limiter.release_on_behalf_of(admission)
        if not self.limiter.borrowed_tokens:
            self._idle.set()  # (the reply is written after this; the transports flush it before closing)
        breaker = admission.breaker
        if failed is None:
            breaker.release(admission.ticket)
            return
        changed = breaker.record(admission.ticket, failed=failed, now=trio.current_time())
        if changed is not None:
            self._changed(admission.tool, admission.client, changed)

    def shutdown(self) -> int:
        """No new calls; stop every running command (its call answers ``cancelled``). Returns how many."""
        self.draining = True
        for admission in self._running:
            admission.scope.cancel()
        return len(self._running)

    async def wait_idle(self) -> None:
        """Until no admitted call is running (for graceful shutdown)."""
        while self.limiter.borrowed_tokens:
            await self._idle.wait()

    def _changed(self, tool: str, client: str, state: State) -> None:
        self._on_breaker_change(tool, client, state)
        if state is State.OPEN:
            self._breaker_opened.set()

    async def breaker_task(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Move open circuits to half-open when their cooldown ends; runs for the server's life."""
        task_status.started()
        while True:
            dues = [d for b in self._breakers.values() if (d := b.cooldown_due()) is not None]
            with trio.move_on_at(min(dues) if dues else float("inf")):
                await self._breaker_opened.wait()
            self._breaker_opened = trio.Event()
            now = trio.current_time()
            for (tool, client), breaker in list(self._breakers.items()):
                changed = breaker.cool_down(now)
                if changed is not None:
                    self._changed(tool, client, changed)
