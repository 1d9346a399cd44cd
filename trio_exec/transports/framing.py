"""One wire message in, one JSON-RPC message or the error that answers it out; shared by stdio and WebSocket.

The SDK's message loop drops any input it cannot read without a word, so a transport must answer
malformed input itself. Codes as the JSON-RPC 2.0 spec and the SDK's Streamable HTTP transport use
them: -32700 for bytes that are not JSON, -32600 for JSON that is not one message (a batch too:
this protocol revision has none), -32602 for ``params`` that are not an object. The reply carries
the request's ``id`` when the top level is an object whose ``id`` is a string or an integer, else
``null``; an object with a ``method`` and no ``id`` is a notification and gets no reply.

The parser (pydantic-core) refuses nesting beyond its recursion limit with an error, never a crash;
the id of such a message is read from the part before the limit, without recursing further.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import attrs
import mcp_types as types
import pydantic_core
from mcp.shared.message import SessionMessage
from pydantic import ValidationError


@attrs.frozen
class Malformed:
    """Input that is not a JSON-RPC message; ``reply`` answers it (``None``: a notification, no answer)."""

    reply: types.JSONRPCError | None
    reason: str


def encode(message: SessionMessage) -> bytes:
    """One message as UTF-8 JSON bytes (no intermediate ``str``)."""
    return types.jsonrpc_message_adapter.dump_json(message.message, by_alias=True, exclude_unset=True)


LARGE_STRING = 64 * 1024  # characters: a string longer than this in a reply is encoded in slices
SLICE = 1024 * 1024  # characters encoded at a time


def encode_parts(message: SessionMessage) -> Iterator[bytes]:
    """The bytes of ``encode(message)``, in parts that together hold no second copy of a large reply.

    A result holding a string over ``LARGE_STRING`` characters (a command's output, up to
    ``--max-output-bytes``) is encoded a ``SLICE`` at a time, each slice by the same serializer as
    ``encode``; encoding it whole would hold the entire JSON (six bytes per control character) in pydantic's
    buffer and then in a ``bytes`` copy at once. Any other message is one part, ``encode``'s.
    """
    reply = message.message
    if not isinstance(reply, types.JSONRPCResponse) or not _holds_large(reply.result):
        yield encode(message)
        return
    yield b'{"jsonrpc":"2.0","id":' + _json(reply.id) + b',"result":'
    yield from _parts(reply.result)
    yield b"}"


def _json(value: Any) -> bytes:
    """``value`` as ``encode`` serializes it inside a message (the adapter's defaults: inf and NaN as null)."""
    return pydantic_core.to_json(value, inf_nan_mode="null")


def _holds_large(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) > LARGE_STRING
    if isinstance(value, dict):
        return any(_holds_large(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_large(v) for v in value)
    return False


def _parts(value: Any) -> Iterator[bytes]:
    if not _holds_large(value):
        yield _json(value)
    elif isinstance(value, str):
        yield b'"'
        for start in range(0, len(value), SLICE):
            yield _json(value[start : start + SLICE])[1:-1]
        yield b'"'
    elif isinstance(value, dict):
        for i, (key, item) in enumerate(value.items()):
            yield (b"{" if i == 0 else b",") + _json(key) + b":"
            yield from _parts(item)
        yield b"}"
    else:
        for i, item in enumerate(value):
            yield b"[" if i == 0 else b","
            yield from _parts(item)
        yield b"]"


def error(code: int, message: str, request_id: types.RequestId | None = None) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


def oversize(limit: int) -> Malformed:
    """A message over ``limit`` bytes: refused unread, so its id is unknown."""
    reason = f"message larger than {limit} bytes"
    return Malformed(error(types.INVALID_REQUEST, f"Invalid Request: {reason}"), reason)


def decode(data: bytes | str) -> types.JSONRPCMessage | Malformed:
    """Read one message (one stdio line or one WebSocket message)."""
    try:
        raw = pydantic_core.from_json(data)
    except ValueError as e:
        reason = str(e)
        if reason.startswith("recursion limit exceeded"):  # valid JSON maybe, but too deep to read
            # Answered even without a readable id: the part past the limit may hold it.
            partial = _before_the_limit(data.encode() if isinstance(data, str) else data, reason)
            message = "Invalid Request: nested too deeply"
            return Malformed(error(types.INVALID_REQUEST, message, _readable_id(partial)), message)
        return _refuse(None, types.PARSE_ERROR, f"Parse error: {reason}")
    if not isinstance(raw, dict):
        kind = "a batch (this protocol has none)" if isinstance(raw, list) else "not a JSON object"
        return _refuse(None, types.INVALID_REQUEST, f"Invalid Request: {kind}")
    if raw.get("jsonrpc") != "2.0":
        return _refuse(raw, types.INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"')
    if "method" in raw and "id" in raw and _readable_id(raw) is None:  # the SDK would take it for a notification
        return _refuse(raw, types.INVALID_REQUEST, 'Invalid Request: "id" must be a string or an integer')
    if "method" in raw and "params" in raw and not isinstance(raw["params"], dict):
        return _refuse(raw, types.INVALID_PARAMS, 'Invalid params: "params" must be an object')
    try:
        return types.jsonrpc_message_adapter.validate_python(raw, by_name=False)
    except ValidationError:
        return _refuse(raw, types.INVALID_REQUEST, "Invalid Request: not a JSON-RPC request, notification or response")


def _refuse(raw: Any, code: int, message: str) -> Malformed:
    if isinstance(raw, dict) and "method" in raw and "id" not in raw:
        return Malformed(None, message)  # a notification: never answered
    return Malformed(error(code, message, _readable_id(raw)), message)


def _readable_id(raw: Any) -> types.RequestId | None:
    request_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool)):
        return request_id
    return None


_AT = re.compile(r"at line (\d+) column (\d+)")


def _before_the_limit(data: bytes, reason: str) -> Any:
    """The document up to where the parser gave up (its columns count bytes), read as a partial value."""
    m = _AT.search(reason)
    if m is None:
        return None
    start = 0
    for _ in range(int(m.group(1)) - 1):
        start = data.find(b"\n", start) + 1
        if start == 0:
            return None
    try:
        return pydantic_core.from_json(data[: start + int(m.group(2)) - 1], allow_partial=True)
    except ValueError:
        return None
