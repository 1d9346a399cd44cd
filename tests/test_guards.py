"""The pure guards with plain numbers for time: token buckets, rate limiter, breaker state machine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_exec.guards import (
    TRANSITIONS,
    Breaker,
    Event,
    IllegalTransition,
    RateLimiter,
    State,
    Ticket,
    TokenBucket,
    transition,
)


def test_a_bucket_starts_full_and_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    for _ in range(3):
        assert bucket.wait_time(0) == 0
        bucket.take(0)
    assert bucket.wait_time(0) == pytest.approx(0.5)
    assert bucket.wait_time(0.5) == 0
    assert bucket.wait_time(100) == 0
    bucket.take(100)
    assert bucket.tokens == pytest.approx(2)  # capped at the burst, then one taken


@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), min_size=1, max_size=60))
def test_a_bucket_never_admits_more_than_burst_plus_rate_times_elapsed(gaps: list[float]) -> None:
    bucket, now, admitted = TokenBucket(rate=5, burst=4), 0.0, 0
    for gap in gaps:
        now += gap
        if bucket.wait_time(now) == 0:
            bucket.take(now)
            admitted += 1
    assert admitted <= 4 + 5 * now + 1e-9


def test_each_client_has_its_own_bucket() -> None:
    limiter = RateLimiter(rate=1, burst=2)
    assert limiter.admit("a", 0) is None
    assert limiter.admit("a", 0) is None
    wait = limiter.admit("a", 0)
    assert wait == pytest.approx(1.0)
    assert limiter.admit("b", 0) is None  # another client is not held back by "a"
    assert limiter.admit("a", 1.0) is None


def test_the_global_bucket_caps_all_clients_together() -> None:
    limiter = RateLimiter(rate=1, burst=1, global_factor=2)
    assert [limiter.admit(c, 0) is None for c in "abc"] == [True, True, False]


def test_forgotten_clients_do_not_grow_memory() -> None:
    limiter = RateLimiter(rate=1000, burst=1000, max_clients=10, global_factor=1000)
    for i in range(100):
        limiter.admit(f"client-{i}", float(i))
    assert len(limiter._clients) == 10


def test_the_transition_table_is_the_only_way_states_change() -> None:
    assert transition(State.CLOSED, Event.FAILURE) is State.OPEN
    assert transition(State.OPEN, Event.COOLDOWN_ENDED) is State.HALF_OPEN
    assert transition(State.HALF_OPEN, Event.SUCCESS) is State.CLOSED
    assert transition(State.HALF_OPEN, Event.FAILURE) is State.OPEN
    illegal = [(s, e) for s in State for e in Event if (s, e) not in TRANSITIONS]
    assert (State.OPEN, Event.SUCCESS) in illegal
    for state, event in illegal:
        with pytest.raises(IllegalTransition):
            transition(state, event)


def test_consecutive_failures_open_the_breaker_and_a_success_resets_the_count() -> None:
    b = Breaker(threshold=3, cooldown_s=10)
    for _ in range(2):
        b.record(b.admit(0), failed=True, now=0)  # type: ignore[arg-type]
    b.record(b.admit(0), failed=False, now=0)  # type: ignore[arg-type]
    assert b.failures == 0
    changes = [b.record(b.admit(1), failed=True, now=1) for _ in range(3)]  # type: ignore[arg-type]
    assert changes == [None, None, State.OPEN]
    assert b.admit(4) == pytest.approx(7)  # seconds until the cooldown ends


def test_after_the_cooldown_one_probe_closes_or_reopens_the_breaker() -> None:
    b = Breaker(threshold=1, cooldown_s=10)
    b.record(b.admit(0), failed=True, now=0)  # type: ignore[arg-type]
    assert b.cool_down(9.9) is None
    assert b.cool_down(10) is State.HALF_OPEN
    probe = b.admit(10)
    assert isinstance(probe, Ticket)
    assert probe.probe
    assert b.admit(10) == 1.0  # only one probe at a time
    assert b.record(probe, failed=True, now=11) is State.OPEN
    assert b.cool_down(21) is State.HALF_OPEN
    probe = b.admit(21)
    assert b.record(probe, failed=False, now=21) is State.CLOSED  # type: ignore[arg-type]
    assert isinstance(b.admit(21), Ticket)


def test_results_of_calls_admitted_before_a_state_change_are_ignored() -> None:
    b = Breaker(threshold=1, cooldown_s=10)
    early = b.admit(0)
    b.record(b.admit(0), failed=True, now=0)  # type: ignore[arg-type]
    assert b.state is State.OPEN
    assert b.record(early, failed=False, now=1) is None  # type: ignore[arg-type]
    assert b.state is State.OPEN


def test_a_cancelled_probe_frees_the_probe_slot_without_a_verdict() -> None:
    b = Breaker(threshold=1, cooldown_s=1)
    b.record(b.admit(0), failed=True, now=0)  # type: ignore[arg-type]
    b.cool_down(1)
    probe = b.admit(1)
    b.release(probe)  # type: ignore[arg-type]
    assert b.state is State.HALF_OPEN
    assert isinstance(b.admit(1), Ticket)


def test_a_rate_of_zero_is_no_limit() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    assert all(limiter.admit("one", 0.0) is None for _ in range(1000))
