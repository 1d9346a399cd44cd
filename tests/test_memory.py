"""glibc's mmap threshold is fixed at start-up, unless the operator chose one (the end-to-end check is in
tests/test_sockets_e2e.py: memory held for stuck readers is returned)."""

from __future__ import annotations

import ctypes

import pytest

from trio_exec import memory


def test_the_operators_own_threshold_is_left_alone() -> None:
    assert memory.return_large_blocks({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"), reason="glibc only")
def test_the_threshold_is_fixed_on_glibc() -> None:
    assert memory.return_large_blocks({}) is True
