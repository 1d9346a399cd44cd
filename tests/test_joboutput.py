"""Properties of ``joboutput.StreamBuffer`` against a model, the whole byte string written so far: what it keeps
and counts, pages read one after another, UTF-8 boundaries, clamped and skipped offsets, and ``tail_lines``.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_exec.joboutput import Page, StreamBuffer

props = settings(deadline=None, database=None)

limits = st.integers(16, 256)
page_sizes = st.integers(4, 64)
characters = st.sampled_from("a\n\u00e9\u20ac\U0001f600") | st.characters(codec="utf-8")
texts = st.text(characters, max_size=300).map(str.encode)
lined_texts = st.text(st.sampled_from("ab\n\u00e9\U0001f600"), max_size=300).map(str.encode)


@st.composite
def chunked(draw: st.DrawFn, payload: st.SearchStrategy[bytes]) -> list[bytes]:
    """``payload`` split into chunks at arbitrary byte offsets (cutting characters too)."""
    whole = draw(payload)
    cuts = sorted(draw(st.lists(st.integers(0, len(whole)), max_size=8)))
    return [whole[a:b] for a, b in pairwise([0, *cuts, len(whole)])]


binary_chunks = st.lists(st.binary(max_size=64), max_size=10)


def filled(limit: int, chunks: list[bytes]) -> tuple[StreamBuffer, bytes]:
    buf = StreamBuffer(limit)
    for chunk in chunks:
        buf.write(chunk)
    return buf, b"".join(chunks)


def pages_from_zero(buf: StreamBuffer, max_bytes: int) -> list[Page]:
    pages: list[Page] = []
    offset = 0
    while offset < buf.total:
        assert len(pages) <= buf.total, "reading does not terminate"
        page = buf.read(offset, max_bytes)
        assert page.offset == offset + page.skipped
        assert page.next_offset > offset
        pages.append(page)
        offset = page.next_offset
    assert offset == buf.total
    return pages


def last_lines(whole: bytes, n: int) -> bytes:
    """The model of ``tail_lines``: a final newline ends the last line, it does not start another."""
    lines = [line + b"\n" for line in whole.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    return b"".join(lines[max(0, len(lines) - n) :]) if n else b""


@props
@given(limits, binary_chunks)
def test_counters_follow_the_model_of_everything_written(limit: int, chunks: list[bytes]) -> None:
    buf, whole = filled(limit, chunks)
    assert buf.head_limit + buf.tail_limit == limit
    assert buf.total == len(whole)
    assert buf.dropped == max(0, buf.total - buf.head_limit - buf.tail_limit)
    assert buf.kept_from == max(min(buf.total, buf.head_limit), buf.total - buf.tail_limit)


@props
@given(limits, binary_chunks, page_sizes)
def test_pages_from_zero_cover_every_kept_byte_once(limit: int, chunks: list[bytes], max_bytes: int) -> None:
    buf, whole = filled(limit, chunks)
    pages = pages_from_zero(buf, max_bytes)
    for page in pages:
        assert page.data == whole[page.offset : page.next_offset]
        assert len(page.data) <= max_bytes
        assert page.total == buf.total
    assert sum(len(p.data) + p.skipped for p in pages) == buf.total
    gaps = [p for p in pages if p.skipped]
    if not buf.dropped:
        assert not gaps
        assert b"".join(p.data for p in pages) == whole
        return
    (gap,) = gaps  # pages never span the gap: those before it are the head, those from it on the tail
    assert gap.offset - gap.skipped == buf.head_limit
    assert buf.dropped <= gap.skipped <= buf.dropped + 3
    assert b"".join(p.data for p in pages if p.offset < gap.offset) == whole[: buf.head_limit]
    assert b"".join(p.data for p in pages if p.offset >= gap.offset) == whole[gap.offset :]


@props
@given(chunked(texts), page_sizes, st.integers(0, 64))
def test_text_pages_decode_and_end_on_characters_when_nothing_was_dropped(
    chunks: list[bytes], max_bytes: int, room: int
) -> None:
    buf, whole = filled(len(b"".join(chunks)) + room, chunks)
    assert buf.dropped == 0
    pages = pages_from_zero(buf, max_bytes)
    assert b"".join(p.data for p in pages) == whole
    for page in pages:
        page.data.decode()


@props
@given(limits, chunked(texts), page_sizes)
def test_text_pages_after_drops_decode_but_for_a_character_cut_at_the_head_end(
    limit: int, chunks: list[bytes], max_bytes: int
) -> None:
    buf, whole = filled(limit, chunks)
    undecodable = []
    for page in pages_from_zero(buf, max_bytes):
        try:
            page.data.decode()
        except UnicodeDecodeError:
            undecodable.append(page)
    assert len(undecodable) <= 1
    for page in undecodable:  # the first part of a character alone: the head ended inside it
        assert buf.dropped
        assert page.next_offset == buf.head_limit
        char = whole[page.offset : page.offset + 4].decode(errors="ignore")[0].encode()
        assert char.startswith(page.data)
        assert len(page.data) < len(char)


def test_a_page_after_the_gap_still_ends_on_a_character_boundary() -> None:
    grin = "\U0001f600".encode()  # 4 bytes; the tail of 8 starts with this character's last 3
    buf, _ = filled(16, [b"a" * 8 + b"bbbb" + grin + grin + b"c"])
    assert buf.kept_from == 13
    page = buf.read(8, 4)
    assert (page.offset, page.skipped) == (16, 8)
    assert page.data == grin  # whole: the cut is skipped before the page is measured


@props
@given(limits, binary_chunks, st.integers(0, 64), page_sizes)
def test_an_offset_past_the_end_is_clamped_and_one_in_the_gap_continues_at_the_tail(
    limit: int, chunks: list[bytes], beyond: int, max_bytes: int
) -> None:
    buf, whole = filled(limit, chunks)
    assert buf.read(buf.total + beyond, max_bytes) == Page(b"", buf.total, buf.total, 0, buf.total)
    assert buf.read(-1 - beyond, max_bytes) == buf.read(0, max_bytes)
    for offset in range(buf.kept_from - buf.dropped, buf.kept_from):
        page = buf.read(offset, max_bytes)
        assert buf.kept_from - offset <= page.skipped <= buf.kept_from - offset + 3
        assert page.offset == offset + page.skipped
        assert page.data == whole[page.offset : page.next_offset]


@props
@given(chunked(lined_texts), st.integers(0, 12), st.integers(0, 64))
def test_tail_lines_without_drops_are_the_last_lines_written(chunks: list[bytes], lines: int, room: int) -> None:
    buf, whole = filled(len(b"".join(chunks)) + room, chunks)
    page = buf.tail_lines(lines, buf.total + room)
    assert page.data == last_lines(whole, lines)
    assert (page.offset, page.next_offset, page.skipped) == (buf.total - len(page.data), buf.total, 0)


@props
@given(limits, chunked(lined_texts), st.integers(0, 12), st.integers(0, 64))
def test_tail_lines_never_exceed_max_bytes_and_end_at_the_total(
    limit: int, chunks: list[bytes], lines: int, max_bytes: int
) -> None:
    buf, whole = filled(limit, chunks)
    page = buf.tail_lines(lines, max_bytes)
    assert len(page.data) <= max_bytes
    assert (page.next_offset, page.skipped) == (buf.total, 0)
    assert page.data == whole[page.offset :]
    assert page.offset >= (buf.kept_from if buf.dropped else 0)
    assert last_lines(whole, lines).endswith(page.data)
    page.data.decode()


def test_tail_lines_examples() -> None:
    buf, _ = filled(64, [b"one\ntw", b"o\nthree\n"])
    assert buf.tail_lines(1, 64).data == b"three\n"
    assert buf.tail_lines(2, 64).data == b"two\nthree\n"
    assert buf.tail_lines(9, 64).data == b"one\ntwo\nthree\n"
    assert buf.tail_lines(0, 64) == Page(b"", buf.total, buf.total, 0, buf.total)
    assert buf.tail_lines(5, 8).data == b"o\nthree\n"  # the last 8 bytes, the first line cut


@props
@given(limits, chunked(st.binary(max_size=400)), page_sizes)
def test_chunk_boundaries_do_not_change_any_read(limit: int, chunks: list[bytes], max_bytes: int) -> None:
    one, _ = filled(limit, [b"".join(chunks)])
    many, _ = filled(limit, chunks)
    assert (one.total, one.kept_from, one.dropped) == (many.total, many.kept_from, many.dropped)
    for offset in range(one.total + 2):
        assert one.read(offset, max_bytes) == many.read(offset, max_bytes)
    for lines in range(4):
        assert one.tail_lines(lines, max_bytes) == many.tail_lines(lines, max_bytes)
