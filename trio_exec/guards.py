"""Guards as pure state machines: token buckets (rate limits) and per-tool circuit breakers.

PURE: no trio, no clock. Every method takes ``now`` (seconds, from ``trio.current_time()`` at the
edge), so the machines are tested with plain numbers. ``admission.py`` wires them to trio.

Invariants:
- a refusal costs a few dictionary look-ups and never starts anything;
- the breaker's transitions are one table; anything not in it raises ``IllegalTransition``;
- a result from a call admitted under an earlier breaker generation is ignored (calls that
  were already running when the circuit opened cannot close it again).
"""

from __future__ import annotations

import enum
from collections import OrderedDict

import attrs


@attrs.define
class TokenBucket:
    """``rate`` tokens per second up to ``burst``; one call takes one token."""

    rate: float
    burst: float
    updated: float = 0.0
    tokens: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.tokens = self.burst  # a new bucket starts full

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def wait_time(self, now: float) -> float:
        """Seconds until a token is available (0 when one is available now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1


@attrs.define
class RateLimiter:
    """One bucket per client key plus a global bucket; a call must get a token from both."""

    rate: float
    burst: float
    global_factor: float = 4.0  # the whole server takes at most this many clients' worth
    max_clients: int = 10_000  # least recently seen clients are forgotten past this
    _clients: OrderedDict[str, TokenBucket] = attrs.field(factory=OrderedDict, init=False)
    _global: TokenBucket = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._global = TokenBucket(self.rate * self.global_factor, self.burst * self.global_factor)

    def admit(self, client: str, now: float) -> float | None:
        """None when the call may go ahead (a token was taken), else seconds to wait. A rate of 0 is no limit."""
        if self.rate <= 0:
            return None
        bucket = self._clients.get(client)
        if bucket is None:
            bucket = self._clients[client] = TokenBucket(self.rate, self.burst, updated=now)
            if len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        wait = max(bucket.wait_time(now), self._global.wait_time(now))
        if wait > 0:
            return wait
        bucket.take(now)
        self._global.take(now)
        return None


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Event(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"  # the threshold of consecutive failures was reached (or a probe failed)
    COOLDOWN_ENDED = "cooldown_ended"


class IllegalTransition(Exception):
    """A breaker event that its current state does not allow."""


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.CLOSED, Event.SUCCESS): State.CLOSED,
    (State.CLOSED, Event.FAILURE): State.OPEN,
    (State.OPEN, Event.COOLDOWN_ENDED): State.HALF_OPEN,
    (State.HALF_OPEN, Event.SUCCESS): State.CLOSED,
    (State.HALF_OPEN, Event.FAILURE): State.OPEN,
}


def transition(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransition(f"{event.value} is not allowed in state {state.value}") from None


@attrs.frozen
class Ticket:
    """Permission to run one call, tied to the breaker generation that gave it."""

    generation: int
    probe: bool = False


@attrs.define
class Breaker:
    """A per-tool circuit breaker counting consecutive execution failures."""

    threshold: int
    cooldown_s: float
    state: State = State.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    generation: int = 0
    probing: bool = False

    def admit(self, now: float) -> Ticket | float:
        """A ticket, or the seconds to wait before asking again."""
        if self.state is State.CLOSED:
            return Ticket(self.generation)
        if self.state is State.OPEN:
            return max(self.opened_at + self.cooldown_s - now, 0.0)
        if self.probing:  # half-open: exactly one probe at a time
            return 1.0
        self.probing = True
        return Ticket(self.generation, probe=True)

    def record(self, ticket: Ticket, *, failed: bool, now: float) -> State | None:
        """Count a finished call; returns the new state when it changed."""
        if ticket.generation != self.generation:
            return None  # admitted before the last state change: stale
        if ticket.probe:
            self.probing = False
            return self._move(Event.FAILURE if failed else Event.SUCCESS, now)
        if not failed:
            self.failures = 0
            return None
        self.failures += 1
        return self._move(Event.FAILURE, now) if self.failures >= self.threshold else None

    def release(self, ticket: Ticket) -> None:
        """A call that ended without a verdict (cancelled): a probe slot is freed, nothing counted."""
        if ticket.probe and ticket.generation == self.generation:
            self.probing = False

    def cooldown_due(self) -> float | None:
        """When an open breaker may move to half-open (None unless open)."""
        return self.opened_at + self.cooldown_s if self.state is State.OPEN else None

    def cool_down(self, now: float) -> State | None:
        """OPEN -> HALF_OPEN once the cooldown has passed; the breaker task calls this."""
        due = self.cooldown_due()
        if due is None or now < due:
            return None
        return self._move(Event.COOLDOWN_ENDED, now)

    def _move(self, event: Event, now: float) -> State:
        self.state = transition(self.state, event)
        self.generation += 1
        self.failures = 0
        self.probing = False
        if self.state is State.OPEN:
            self.opened_at = now
        return self.state
