"""glibc's mmap threshold is fixed at start-up, unless the operator chose one (the end-to-end check is in
tests/test_sockets_e2e.py: memory held for stuck readers is returned)."""

from __future__ import annotations

import ctypes
import gc
import weakref

import pytest
import trio
import trio.testing

from trio_exec import memory


def test_the_operators_own_threshold_is_left_alone() -> None:
    assert memory.return_large_blocks({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"), reason="glibc only")
def test_the_threshold_is_fixed_on_glibc() -> None:
    assert memory.return_large_blocks({}) is True


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


async def test_garbage_in_cycles_is_collected_a_second_after_the_first_event_of_a_burst(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gc.disable()  # no collection by allocation counts in between: only reclaim_soon's
    try:
        node = _Node()
        alive = weakref.ref(node)
        del node
        memory.reclaim_soon()
        memory.reclaim_soon()  # the same burst: still one pending collection
        await trio.sleep(memory.RECLAIM_DELAY_S / 2)
        assert alive() is not None
        await trio.sleep(memory.RECLAIM_DELAY_S)
        assert alive() is None
        memory.reclaim_soon()  # a later event gets a collection of its own
        await trio.sleep(memory.RECLAIM_DELAY_S * 2)
    finally:
        gc.enable()
