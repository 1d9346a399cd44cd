"""``framing.encode_parts``: a large reply in slices, byte for byte what ``encode`` makes of it whole."""

from __future__ import annotations

from typing import Any
from unittest import mock

import mcp_types as types
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.shared.message import SessionMessage

from trio_exec.transports import framing

# Small sizes for the properties (the code reads them at each call): the same slicing, examples hypothesis can show.
LARGE, SLICE = 40, 128
# Characters that JSON escapes or that take several UTF-8 bytes, so a slice boundary lands among them.
TRICKY = st.sampled_from(["\x00", "\x1f", '"', "\\", "/", "é", "€", "😀", "\u2028", "a", "\n"])


def big_text(draw: st.DrawFn) -> str:
    """A string over ``LARGE``, with tricky characters around a slice boundary."""
    around = draw(st.lists(TRICKY, min_size=1, max_size=6))
    filler = draw(st.sampled_from(["x", "\x00", "ü"]))
    length = SLICE - len(around) // 2 + draw(st.integers(0, 3))
    return filler * length + "".join(around) + filler * draw(st.integers(0, 2 * SLICE))


@st.composite
def results(draw: st.DrawFn) -> dict[str, Any]:
    small = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    )
    structured = draw(st.dictionaries(st.text(max_size=8), small, max_size=4))
    structured["stdout"] = big_text(draw)
    return {"content": [{"type": "text", "text": draw(st.text(max_size=50))}], "structuredContent": structured,
            "isError": draw(st.booleans()), "extra": [draw(small), big_text(draw)]}  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(results(), st.integers(0, 2**40) | st.text(max_size=10))
def test_a_large_reply_in_parts_is_the_same_bytes_as_encoded_whole(result: dict[str, Any], rid: int | str) -> None:
    message = SessionMessage(types.JSONRPCResponse(jsonrpc="2.0", id=rid, result=result))
    with mock.patch.object(framing, "LARGE_STRING", LARGE), mock.patch.object(framing, "SLICE", SLICE):
        parts = list(framing.encode_parts(message))
    assert len(parts) > 3  # sliced
    assert max(len(p) for p in parts) <= 6 * SLICE + 16  # no part holds the whole output
    assert b"".join(parts) == framing.encode(message)


def test_small_messages_and_requests_are_one_part() -> None:
    small = SessionMessage(types.JSONRPCResponse(jsonrpc="2.0", id=1, result={"x": "y" * framing.LARGE_STRING}))
    request = SessionMessage(
        types.JSONRPCRequest(jsonrpc="2.0", id=2, method="tools/call", params={"a": "b" * 2 * framing.LARGE_STRING})
    )
    for message in (small, request):
        assert list(framing.encode_parts(message)) == [framing.encode(message)]


def test_a_real_size_reply_is_sliced_at_the_real_sizes() -> None:
    text = ("é\x00" * framing.SLICE)[: framing.SLICE + 7]  # over one slice, a two-byte character at its edge
    message = SessionMessage(types.JSONRPCResponse(jsonrpc="2.0", id=7, result={"structuredContent": {"stdout": text}}))
    parts = list(framing.encode_parts(message))
    assert len(parts) > 3
    assert b"".join(parts) == framing.encode(message)
