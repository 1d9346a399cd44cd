"""Give freed memory back to the kernel: a burst of large results must not leave the server big for good.

glibc's ``malloc`` serves blocks of ``M_MMAP_THRESHOLD`` bytes or more (128 KiB at first) with their own
``mmap``, returned to the kernel on ``free``; but each such ``free`` raises the threshold (up to 32 MiB),
so the next large results come from the heap, where freed memory stays with the process. Measured: 100
clients that never read a 1 MiB result, dropped by the write timeout, left the server at 251 MB (78 MB
idle); with the threshold fixed at 128 KiB, at 88 MB. A fixed threshold also ends the adjustment, and
costs one ``mmap``/``munmap`` pair per large block: microseconds beside a result that size. Only on
glibc, and only unless the operator set ``MALLOC_MMAP_THRESHOLD_`` (glibc honours it itself).

Freed is not enough, though: a dropped connection leaves its request's objects (the reply among them) in
reference cycles, which only Python's cyclic collector frees, and an idle server allocates too little to
trigger it. Measured: 2 runs in 3 kept 1.9 GB after 100 dropped 1 MiB results, until a ``gc.collect()``.
So ``reclaim_soon`` collects once, a second after such an event (a burst of them shares one collection).
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Mapping

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
THRESHOLD = 128 * 1024


def return_large_blocks(environ: Mapping[str, str]) -> bool:
    """Fix glibc's mmap threshold at 128 KiB; False where there is no glibc or the operator chose one."""
    if "MALLOC_MMAP_THRESHOLD_" in environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl's mallopt does nothing
    except (OSError, AttributeError):  # pragma: no cover - no glibc here
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD) == 1)


RECLAIM_DELAY_S = 1.0  # drops come in bursts: one collection a second after the first covers the burst
_reclaiming = False


def reclaim_soon() -> None:
    """Run the cyclic garbage collector once, ``RECLAIM_DELAY_S`` from now (within a running trio loop).

    For events that leave large garbage in cycles (a connection dropped under its reply); tens of
    milliseconds, and at most once a second however many such events come.
    """
    global _reclaiming  # one pending collection for the whole process
    if _reclaiming:
        return
    _reclaiming = True
    import trio  # here: the CLI imports this module for --help too

    trio.lowlevel.spawn_system_task(_reclaim)


async def _reclaim() -> None:
    global _reclaiming  # one pending collection for the whole process
    import trio

    try:
        await trio.sleep(RECLAIM_DELAY_S)
        gc.collect()
    finally:
        _reclaiming = False
