"""The guards wired to trio, on trio's mock clock (zero wall time)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_exec.admission import BUSY_RETRY_S, Guards
from trio_exec.errors import Busy, CircuitOpen, RateLimited
from trio_exec.guards import State


def guards(changes: list[tuple[str, State]] | None = None, **kw: float) -> Guards:
    """Guards of one tool ``t``; ``changes`` collects (tool, state) of the breaker of client ``c``."""
    settings: dict[str, float] = {
        "max_concurrent": 2,
        "rate": 100,
        "burst": 100,
        "circuit_threshold": 2,
        "circuit_timeout_s": 30,
    }
    settings.update(kw)
    return Guards(
        tools=["t"],
        on_breaker_change=lambda tool, client, state: (changes if changes is not None else []).append((tool, state)),
        **settings,  # type: ignore[arg-type]
    )


async def test_a_call_beyond_max_concurrent_is_busy_at_once() -> None:
    g = guards(max_concurrent=1)
    first = g.admit("t", "c")
    with pytest.raises(Busy):
        g.admit("t", "c")
    g.finish(first, failed=False)
    g.finish(g.admit("t", "c"), failed=False)


async def test_rate_limits_refuse_with_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    g = guards(rate=1, burst=2)
    for _ in range(2):
        g.finish(g.admit("t", "c"), failed=False)
    with pytest.raises(RateLimited) as caught:
        g.admit("t", "c")
    assert caught.value.retry_after_s == pytest.approx(1.0)
    await trio.sleep(1)
    g.finish(g.admit("t", "c"), failed=False)


async def test_the_breaker_task_half_opens_after_the_cooldown(autojump_clock: trio.testing.MockClock) -> None:
    changes: list[tuple[str, State]] = []
    g = guards(changes)
    async with trio.open_nursery() as nursery:
        await nursery.start(g.breaker_task)
        for _ in range(2):
            g.finish(g.admit("t", "c"), failed=True)
        assert changes == [("t", State.OPEN)]
        with pytest.raises(CircuitOpen) as caught:
            g.admit("t", "c")
        assert caught.value.retry_after_s == pytest.approx(30)
        await trio.sleep(29.9)
        assert g.breaker("t", "c").state is State.OPEN
        await trio.sleep(0.2)
        assert changes[-1] == ("t", State.HALF_OPEN)
        probe = g.admit("t", "c")
        with pytest.raises(CircuitOpen):
            g.admit("t", "c")  # one probe at a time
        g.finish(probe, failed=False)
        assert changes[-1] == ("t", State.CLOSED)
        nursery.cancel_scope.cancel()


async def test_a_busy_refusal_does_not_keep_the_probe_slot(autojump_clock: trio.testing.MockClock) -> None:
    g = guards(max_concurrent=1, circuit_threshold=1, circuit_timeout_s=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(g.breaker_task)
        g.finish(g.admit("t", "c"), failed=True)
        await trio.sleep(1.5)
        holder = g.breaker("t", "c")
        assert holder.state is State.HALF_OPEN
        other = object()
        g.limiter.acquire_on_behalf_of_nowait(other)  # someone else holds the only token
        with pytest.raises(Busy):
            g.admit("t", "c")
        g.limiter.release_on_behalf_of(other)
        assert not holder.probing
        nursery.cancel_scope.cancel()


async def test_cancelled_calls_count_nothing() -> None:
    g = guards(circuit_threshold=1)
    g.finish(g.admit("t", "c"), failed=None)
    assert g.breaker("t", "c").state is State.CLOSED
    assert g.limiter.borrowed_tokens == 0


async def test_one_clients_failures_open_the_circuit_for_that_client_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[str, str, State]] = []
    g = Guards(
        tools=["t"], max_concurrent=5, rate=100, burst=100, circuit_threshold=2, circuit_timeout_s=30,
        on_breaker_change=lambda tool, client, state: seen.append((tool, client, state)),
    )  # fmt: skip
    async with trio.open_nursery() as nursery:
        await nursery.start(g.breaker_task)
        for _ in range(2):
            g.finish(g.admit("t", "mallory"), failed=True)
        assert seen == [("t", "mallory", State.OPEN)]
        with pytest.raises(CircuitOpen):
            g.admit("t", "mallory")
        g.finish(g.admit("t", "alice"), failed=False)  # another client is not locked out
        await trio.sleep(30.1)
        assert seen[-1] == ("t", "mallory", State.HALF_OPEN)
        assert g.breaker("t", "alice").state is State.CLOSED
        nursery.cancel_scope.cancel()


async def test_breakers_are_bounded_and_forget_the_least_recently_used() -> None:
    g = Guards(tools=["t"], max_concurrent=5, rate=100, burst=100, circuit_threshold=1, circuit_timeout_s=30,
               max_breakers=2)  # fmt: skip
    g.finish(g.admit("t", "a"), failed=True)
    g.admit("t", "b")  # the admission is dropped: only the breaker table matters here
    g.breaker("t", "a")  # seen again: most recent
    g.breaker("t", "c")  # "b" is forgotten
    assert g.breaker("t", "a").state is State.OPEN
    assert g.breaker("t", "b").failures == 0


async def test_busy_says_when_to_retry() -> None:
    g = guards(max_concurrent=1)
    first = g.admit("t", "c")
    with pytest.raises(Busy) as caught:
        g.admit("t", "c")
    assert caught.value.retry_after_s == BUSY_RETRY_S > 0
    g.finish(first, failed=False)
    g.draining = True
    with pytest.raises(Busy) as caught:
        g.admit("t", "c")
    assert caught.value.retry_after_s is not None
    assert caught.value.retry_after_s > 0


async def test_shutdown_cancels_the_running_calls_scopes_and_refuses_new_ones() -> None:
    g = guards()
    admission = g.admit("t", "c")
    with admission.scope:
        assert g.shutdown() == 1
        await trio.sleep_forever()
    assert admission.scope.cancelled_caught
    g.finish(admission, failed=None)
    assert g.shutdown() == 0
    with pytest.raises(Busy):
        g.admit("t", "c")
