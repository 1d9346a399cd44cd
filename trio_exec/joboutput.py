"""A job's output, one stream of it: the head and the most recent tail, read by absolute byte offset.

PURE: no trio, no clock. A job may print without end, and its output is never a reason to stop it, so
``StreamBuffer`` keeps the first ``limit // 2`` bytes and the last ``limit - limit // 2`` bytes it was given
and counts what it dropped in between. Offsets are bytes since the job started: a reader that continues at
``next_offset`` never reads a byte twice and is told (``skipped``) how many it can no longer read.

Pages end on a whole UTF-8 character where they can (the rest comes with the next page), and a page that
starts after dropped bytes skips the continuation bytes of a character cut in half, so text stays text.
"""

from __future__ import annotations

import attrs

_SLACK = 4  # the tail's storage may grow by a quarter of its limit before its front is deleted (amortized)


@attrs.frozen
class Page:
    """Bytes of one stream, where they are, and what the reader could not be given."""

    data: bytes
    offset: int  # the absolute offset of data[0]
    next_offset: int  # where the next read continues
    skipped: int  # bytes between the offset asked for and ``offset`` that are no longer kept
    total: int  # bytes the stream has had so far


def _is_continuation(byte: int) -> bool:
    return byte & 0xC0 == 0x80


def _cut_start(data: bytes) -> int:
    """How many leading bytes of ``data`` are the rest of a character cut in half (at most 3)."""
    return next((i for i, b in enumerate(data[:3]) if not _is_continuation(b)), min(3, len(data)))


def _whole_characters(data: bytes) -> int:
    """How many leading bytes of ``data`` end on a character boundary (all, when the end is not cut)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if _is_continuation(byte):
            continue
        if byte < 0x80:
            return len(data)
        width = 4 if byte >= 0xF0 else 3 if byte >= 0xE0 else 2 if byte >= 0xC0 else 1
        return len(data) if back >= width else len(data) - back
    return len(data)


class StreamBuffer:
    """The first and the most recent bytes of a stream, ``limit`` bytes at most."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self._head = bytearray()
        self._tail = bytearray()  # the stream's last bytes; only the last ``tail_limit`` are readable
        self.total = 0

    def write(self, chunk: bytes | bytearray) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail += chunk
            if len(self._tail) > self.tail_limit + self.tail_limit // _SLACK:
                del self._tail[: len(self._tail) - self.tail_limit]

    @property
    def kept_from(self) -> int:
        """Where the readable tail starts (equal to the head's end when nothing was dropped)."""
        return max(len(self._head), self.total - self.tail_limit)

    @property
    def dropped(self) -> int:
        """Bytes neither in the head nor in the tail."""
        return self.kept_from - len(self._head)

    def _slice(self, start: int, end: int) -> bytes:
        """Kept bytes ``start..end`` (absolute; both inside one kept part, or across them when nothing dropped)."""
        head = len(self._head)
        tail_base = self.total - len(self._tail)
        first = bytes(self._head[start : min(end, head)]) if start < head else b""
        rest = self._tail[max(start, head) - tail_base : end - tail_base] if end > head else b""
        return first + bytes(rest)

    def read(self, offset: int, max_bytes: int) -> Page:
        """Up to ``max_bytes`` from ``offset`` (clamped to what was written)."""
        offset = min(max(offset, 0), self.total)
        head = len(self._head)
        start, skipped = offset, 0
        if head <= offset < self.kept_from:  # in the dropped middle: continue at the tail
            start = self.kept_from
            start += _cut_start(self._slice(start, min(start + 3, self.total)))  # which may start inside a character
            skipped = start - offset
        # A page never spans the dropped middle: the head's last byte is followed by a gap, not by the tail.
        end = min(start + max_bytes, head if start < head < self.kept_from else self.total)
        data = self._slice(start, end)
        whole = _whole_characters(data)
        if 0 < whole < len(data):  # leave a cut character to the next page (a lone one is returned as it is)
            data = data[:whole]
        return Page(data=data, offset=start, next_offset=start + len(data), skipped=skipped, total=self.total)

    def tail_lines(self, lines: int, max_bytes: int) -> Page:
        """The last ``lines`` lines (a final newline ends the last one), at most the last ``max_bytes`` bytes."""
        end = self.total
        start = max(end - max_bytes, self.kept_from if self.dropped else 0)
        window = self._slice(start, end)
        if start > 0:  # the window may start inside a character
            window = window[_cut_start(window) :]
        cut = len(window) - 1 if window.endswith(b"\n") else len(window)
        for _ in range(lines):
            cut = window.rfind(b"\n", 0, cut)
            if cut < 0:
                break
        data = window[cut + 1 :] if lines > 0 else b""
        first = end - len(data)
        return Page(data=data, offset=first, next_offset=end, skipped=0, total=self.total)
