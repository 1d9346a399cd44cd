"""Kinds of malformed input a message transport must answer (or, for a notification, ignore) and survive."""

from __future__ import annotations

import json

import pytest

DEEP = 10_000

# (wire bytes, expected error code or None for no reply at all, expected id of the reply)
CASES = [
    pytest.param(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"', -32700, None, id="invalid-json"),
    pytest.param(b'{"jsonrpc": "2.0", "id": 1, "method": "ping"} x', -32700, None, id="trailing-garbage"),
    pytest.param(b"\xff\xfe{}", -32700, None, id="not-utf-8"),
    pytest.param(b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', -32600, None, id="batch"),
    pytest.param(b"[]", -32600, None, id="empty-batch"),
    pytest.param(b"42", -32600, None, id="number"),
    pytest.param(b'"ping"', -32600, None, id="string"),
    pytest.param(b"null", -32600, None, id="null"),
    pytest.param(b'{"id": 8, "method": "ping"}', -32600, 8, id="no-jsonrpc"),
    pytest.param(b'{"jsonrpc": "1.0", "id": "v", "method": "ping"}', -32600, "v", id="wrong-jsonrpc-version"),
    pytest.param(b'{"jsonrpc": "2.0", "id": 10}', -32600, 10, id="id-without-method"),
    pytest.param(b'{"jsonrpc": "2.0", "id": 11, "method": 5}', -32600, 11, id="method-not-a-string"),
    pytest.param(b'{"jsonrpc": "2.0", "id": [12], "method": "ping"}', -32600, None, id="id-of-wrong-type"),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": 13, "method": "tools/call", "params": ["echo"]}', -32602, 13, id="params-not-object"
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": 14, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": '
        + b"[" * DEEP
        + b"]" * DEEP
        + b"}}}",
        -32600,
        14,
        id="deep-nesting",
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "method": "notifications/initialized", "params": "x"}', None, None, id="bad-notification"
    ),
]

INIT = {
    "jsonrpc": "2.0", "id": "init", "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}  # fmt: skip
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def echo_call(request_id: str, message: str = "still here") -> bytes:
    call = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": message}}}  # fmt: skip
    return json.dumps(call).encode()
