"""Validation through the real client over stdio: rejections, benign input, config kinds."""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import connect


def recorder(tmp_path: Path) -> tuple[Path, Path]:
    """A program that appends its arguments to a log: proof of whether anything was spawned."""
    log = tmp_path / "spawned.log"
    program = tmp_path / "record"
    program.write_text(
        f"#!{sys.executable}\nimport sys\nwith open({str(log)!r}, 'a') as f:\n    f.write(repr(sys.argv[1:]) + '\\n')\n"
    )
    program.chmod(0o755)
    return program, log


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("$(id)", "metacharacter"),
        ("-rf", "'-'"),
        ("../etc/passwd", ".."),
        ("LD_PRELOAD=/tmp/evil.so", "LD_PRELOAD"),
        ("a\u202eb", "bidi"),
    ],
)
async def test_a_rejected_argument_names_the_rule_and_starts_nothing(
    tmp_path: Path, mode: str, value: str, rule: str
) -> None:
    program, log = recorder(tmp_path)
    # The log is written beside the program, outside any base path: shown read-write in the sandbox.
    async with connect("--cmd", f'rec|"{program} {{message}}"', "--sandbox-rw", str(tmp_path), mode=mode) as client:
        result = await client.call_tool("rec", {"message": value})
        ok = await client.call_tool("rec", {"message": "fine"})
    assert result.is_error is True
    content = result.structured_content
    assert content is not None
    error = content["error"]
    assert error["code"] == "rejected"
    assert error["argument"] == "message"
    assert "message" in error["message"]
    assert rule.lower() in error["message"].lower()
    assert content["exit_code"] is None
    assert ok.is_error is False
    assert log.read_text() == "['fine']\n"  # only the accepted call started a process


async def test_the_value_of_a_sensitive_argument_is_never_echoed(tmp_path: Path) -> None:
    program, log = recorder(tmp_path)
    secret = "-hunter2-very-secret"  # noqa: S105 - a test value
    async with connect("--cmd", f'login|"{program} {{user}} {{password}}"', "--sandbox-rw", str(tmp_path)) as client:
        result = await client.call_tool("login", {"user": "alice", "password": secret})
    assert result.is_error is True
    assert result.structured_content is not None
    assert result.structured_content["error"]["argument"] == "password"
    assert "hunter2" not in result.model_dump_json()
    assert not log.exists()


@pytest.mark.parametrize(
    "value", ["hello world", "café", "user@example.com", "100%", "key=value", "readme", "2024-01-01", '"quoted"']
)
async def test_ordinary_text_is_not_over_blocked(value: str) -> None:
    async with connect("--cmd", 'echo|"echo {message}"') as client:
        result = await client.call_tool("echo", {"message": value})
    assert result.is_error is False
    assert result.structured_content is not None
    assert result.structured_content["stdout"] == value + "\n"


async def test_text_kind_passes_shell_syntax_as_data(tmp_path: Path) -> None:
    config = tmp_path / "tools.toml"
    config.write_text('[tools.say]\ntemplate = "echo {message}"\n[tools.say.args.message]\nkind = "text"\n')
    async with connect("--config", str(config)) as client:
        result = await client.call_tool("say", {"message": "a;b | $(id) `x` (y)"})
    assert result.structured_content is not None
    assert result.structured_content["stdout"] == "a;b | $(id) `x` (y)\n"


async def test_paths_are_confined_to_the_base_path(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "data..v2.txt").write_text("v2\n")
    (base / "report (final).txt").write_text("final\n")
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT\n")
    (base / "link").symlink_to(tmp_path)
    async with connect("--base-path", str(base), "--cmd", 'cat|"cat {path}"') as client:
        ok = await client.call_tool("cat", {"path": "data..v2.txt"})
        spaced = await client.call_tool("cat", {"path": "report (final).txt"})
        escapes = [
            await client.call_tool("cat", {"path": p})
            for p in ("../secret.txt", "link/secret.txt", str(tmp_path / "secret.txt"), "..%2Fsecret.txt")
        ]
    assert ok.structured_content is not None
    assert ok.structured_content["stdout"] == "v2\n"
    assert spaced.structured_content is not None
    assert spaced.structured_content["stdout"] == "final\n"
    for r in escapes:
        assert r.is_error is True
        assert r.structured_content is not None
        assert r.structured_content["error"]["code"] == "rejected"
        assert "TOP-SECRET-CONTENT" not in r.model_dump_json()


async def test_fifos_and_sockets_in_the_base_are_refused_not_waited_on(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    os.mkfifo(base / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(base / "sock"))
        args = ("--base-path", str(base), "--cmd", 'cat|"cat {path}"', "--allow-commands", "cat", "--cmd-timeout", "60")
        async with connect(*args) as client:
            with trio.fail_after(30):  # a FIFO that were opened would hang cat until the 60 s timeout
                results = [
                    await client.call_tool("cat", {"path": "fifo"}),
                    await client.call_tool("cat", {"path": "sock"}),
                    await client.call_tool("shell_execute", {"command": ["cat", "<", "fifo"]}),
                    await client.call_tool("shell_execute", {"command": ["cat", ">", "fifo"]}),
                ]
    for result in results:
        assert result.structured_content is not None
        assert result.structured_content["error"]["code"] == "rejected", result
        assert re.search("FIFO|socket", result.structured_content["error"]["message"])


async def test_no_validate_paths_turns_containment_off(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (tmp_path / "neighbour.txt").write_text("n\n")
    neighbour = str(tmp_path / "neighbour.txt")
    args = ["--base-path", str(base), "--cmd", 'cat|"cat {path}"', "--no-validate-paths"]
    async with connect(*args) as client:
        boxed = await client.call_tool("cat", {"path": neighbour})
    async with connect(*args, "--sandbox-ro", neighbour) as client:
        shown = await client.call_tool("cat", {"path": neighbour})
    assert boxed.structured_content is not None
    assert shown.structured_content is not None
    # Validation lets the path through; the sandbox still shows only what the operator listed.
    assert boxed.structured_content["exit_code"] != 0
    assert "No such file" in boxed.structured_content["stderr"]
    assert shown.structured_content["stdout"] == "n\n"


async def test_config_kinds_are_published_and_enforced(tmp_path: Path, mode: str) -> None:
    config = tmp_path / "tools.toml"
    config.write_text(
        """
[tools.head]
template = "head -n {lines} {file}"
[tools.head.args.lines]
kind = "integer"
minimum = 1
maximum = 5
[tools.pick]
template = "echo {colour} {word}"
[tools.pick.args.colour]
kind = "enum"
enum = ["red", "green"]
[tools.pick.args.word]
pattern = "[a-z]+"
max_length = 8
"""
    )
    (tmp_path / "f.txt").write_text("1\n2\n3\n4\n5\n6\n7\n")
    async with connect("--config", str(config), "--base-path", str(tmp_path), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        head = await client.call_tool("head", {"lines": 2, "file": "f.txt"})
        pick = await client.call_tool("pick", {"colour": "red", "word": "apple"})
        refused = []
        cases: list[tuple[str, dict[str, Any]]] = [
            ("head", {"lines": 9, "file": "f.txt"}),
            ("head", {"lines": "2", "file": "f.txt"}),
            ("pick", {"colour": "blue", "word": "apple"}),
            ("pick", {"colour": "red", "word": "Apple1"}),
            ("pick", {"colour": "red", "word": "abcdefghij"}),
        ]
        for name, args in cases:
            result = await client.call_tool(name, args)
            assert result.is_error
            assert result.structured_content is not None
            refused.append(result.structured_content["error"]["code"])
    props = tools["head"].input_schema["properties"]
    assert props["lines"] == {"type": "integer", "minimum": 1, "maximum": 5, "description": "An integer."}
    pick_props = tools["pick"].input_schema["properties"]
    assert pick_props["colour"]["enum"] == ["red", "green"]
    text, *others = pick_props["word"]["anyOf"]  # a plain value: numbers and booleans become text too
    assert text == {"type": "string", "pattern": "^(?:[a-z]+)$", "maxLength": 8}
    assert others == [{"type": "number"}, {"type": "boolean"}]
    assert head.structured_content is not None
    assert head.structured_content["stdout"] == "1\n2\n"
    assert pick.structured_content is not None
    assert pick.structured_content["stdout"] == "red apple\n"
    assert refused == ["invalid_arguments"] * 5
