"""``shell_execute`` end to end through the real client: pipelines, redirections, confinement, timeouts."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio

from tests.conftest import PY_VIEW, connect, processes_with, sleeper
from trio_exec.results import SHELL_OUTPUT_SCHEMA

ALLOWED = "echo,cat,sort,head,yes,wc,grep,git,awk,false,tr,python3,sh"


def content(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, SHELL_OUTPUT_SCHEMA)
    return result.structured_content  # type: ignore[no-any-return]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "base" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("TOP-SECRET\n")
    (tmp_path / "base" / "in.txt").write_text("pear\napple\nfig\n")
    return tmp_path / "base"


def args(base: Path, *extra: str) -> list[str]:
    return ["--base-path", str(base), "--allow-dangerous", "--allow-commands", ALLOWED, *extra]


async def test_the_tool_is_listed_with_its_schema_and_allowed_programs(base: Path, mode: str) -> None:
    async with connect(*args(base), mode=mode) as client:
        (tool,) = (await client.list_tools()).tools
    assert tool.name == "shell_execute"
    assert tool.input_schema["required"] == ["command"]
    assert set(tool.input_schema["properties"]) == {"command", "stdin", "directory", "timeout"}
    assert "sort" in (tool.description or "")
    assert tool.output_schema == SHELL_OUTPUT_SCHEMA


async def test_numbers_in_the_command_become_their_canonical_text(base: Path) -> None:
    async with connect(*args(base)) as client:
        (tool,) = (await client.list_tools()).tools
        numbers = content(await client.call_tool("shell_execute", {"command": ["head", "-n", 2, "in.txt"]}))
        boolean = content(await client.call_tool("shell_execute", {"command": ["echo", True]}))
    assert [b["type"] for b in tool.input_schema["properties"]["command"]["items"]["anyOf"]] == ["string", "number"]
    assert numbers["stdout"] == "pear\napple\n"
    assert boolean["error"]["code"] == "invalid_arguments"  # a boolean is no argv word


async def test_pipelines_run_concurrently_with_per_stage_exit_codes(base: Path) -> None:
    async with connect(*args(base)) as client:
        with trio.fail_after(10):  # yes never ends unless head runs at the same time
            first = content(await client.call_tool("shell_execute", {"command": ["yes", "|", "head", "-n", "1"]}))
        three = content(await client.call_tool(
            "shell_execute", {"command": ["cat", "in.txt", "|", "sort", "|", "head", "-n", "2"]}))  # fmt: skip
        failing = content(await client.call_tool("shell_execute", {"command": ["false", "|", "wc", "-l"]}))
    assert first["stdout"] == "y\n"
    assert [s["program"] for s in first["stages"]] == ["yes", "head"]
    assert three["stdout"] == "apple\nfig\n"
    assert [s["exit_code"] for s in three["stages"]] == [0, 0, 0]
    assert [s["exit_code"] for s in failing["stages"]] == [1, 0]
    assert failing["exit_code"] == 0
    assert failing["error"] is None


async def test_redirections_stay_inside_the_base_path(base: Path) -> None:
    outside = base.parent / "outside"
    (base / "escape").symlink_to(outside)
    (base / "link.txt").symlink_to(outside / "secret.txt")
    async with connect(*args(base)) as client:
        sorted_out = content(await client.call_tool(
            "shell_execute", {"command": ["sort", "<", "in.txt", ">", "sub/sorted.txt"]}))  # fmt: skip
        appended = content(await client.call_tool(
            "shell_execute", {"command": ["echo", "more", ">>", "sub/sorted.txt"], "directory": "sub"}))  # fmt: skip
        refused = [
            content(await client.call_tool("shell_execute", {"command": command}))
            for command in (
                ["cat", "<", str(outside / "secret.txt")],
                ["cat", "<", "../outside/secret.txt"],
                ["cat", "<", "escape/secret.txt"],
                ["echo", "x", ">", "link.txt"],
                ["echo", "x", ">", "escape/new.txt"],
            )
        ]
    assert sorted_out["error"] is None
    assert (base / "sub" / "sorted.txt").read_text() == "apple\nfig\npear\nmore\n"  # relative to the base
    assert appended["error"] is None
    for r in refused:
        assert r["error"]["code"] == "rejected"
        assert "TOP-SECRET" not in str(r)
    assert (outside / "secret.txt").read_text() == "TOP-SECRET\n"
    assert not (outside / "new.txt").exists()


async def test_stdin_directory_and_data_that_looks_like_syntax(base: Path) -> None:
    (base / "repo").mkdir()
    git = ["git", "-C", str(base / "repo")]
    await trio.run_process([*git, "init", "-q"])
    (base / "repo" / "f.txt").write_text("x\n")
    await trio.run_process([*git, "add", "f.txt"])
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    async with connect(*args(base), "--env-allow", ",".join(env), env=env) as client:
        piped = content(await client.call_tool("shell_execute", {"command": ["tr", "a-z", "A-Z"], "stdin": "hi\n"}))
        here = content(await client.call_tool("shell_execute", {"command": ["cat", "f.txt"], "directory": "repo"}))
        data = content(await client.call_tool("shell_execute", {"command": ["echo", "a;b", "&&", "c"]}))
        awk = content(await client.call_tool(
            "shell_execute", {"command": ["awk", "{print $1; print $2}"], "stdin": "1 2\n"}))  # fmt: skip
        message = ["git", "commit", "-qm", "fix: parser; add tests"]
        commit = content(await client.call_tool("shell_execute", {"command": message, "directory": "repo"}))
        log = content(await client.call_tool(
            "shell_execute", {"command": ["git", "log", "--format=%s"], "directory": "repo"}))  # fmt: skip
        outside = content(await client.call_tool("shell_execute", {"command": ["cat", "x"], "directory": "/etc"}))
    assert piped["stdout"] == "HI\n"
    assert here["stdout"] == "x\n"
    assert data["error"]["code"] == "rejected"  # a discrete '&&' is an operator, refused
    assert awk["stdout"] == "1\n2\n"
    assert commit["exit_code"] == 0, commit["stderr"]
    assert log["stdout"] == "fix: parser; add tests\n"
    assert outside["error"]["code"] == "rejected"
    assert outside["error"]["argument"] == "directory"


async def test_data_arguments_with_shell_characters_run(base: Path) -> None:
    async with connect(*args(base)) as client:
        result = content(await client.call_tool("shell_execute", {"command": ["echo", "a;b", "x|y", "$(id)"]}))
    assert result["stdout"] == "a;b x|y $(id)\n"


async def test_a_timeout_kills_every_stage(base: Path, tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    script = base / "slow.sh"
    script.write_text(f"{sleeper(marker)} & {sleeper(marker)}\n")
    async with connect(*args(base), *PY_VIEW) as client:
        with trio.fail_after(20):
            result = content(await client.call_tool(
                "shell_execute", {"command": ["sh", "slow.sh", "|", "cat"], "timeout": 1}))  # fmt: skip
    assert result["timed_out"] is True
    assert result["error"]["code"] == "timeout"
    assert processes_with(marker) == []


async def test_refused_programs_operators_and_exec_vectors(tmp_path: Path) -> None:
    base = tmp_path
    async with connect("--base-path", str(base), "--allow-commands", "find,git,echo") as client:
        results = [
            content(await client.call_tool("shell_execute", {"command": command}))
            for command in (
                ["rm", "-rf", "x"],
                ["echo", "a", ";", "id"],
                ["find", ".", "-exec", "id", ";"],
                ["git", "-c", "core.pager=id", "log"],
                ["git", "--co=core.pager=id", "log"],
            )
        ]
        string = content(await client.call_tool("shell_execute", {"command": "echo hi"}))
    for r in results:
        assert r["error"]["code"] == "rejected"
        assert r["stages"] == []
    assert "not allowed" in results[0]["error"]["message"]
    assert (string["error"]["code"], string["error"]["argument"]) == ("invalid_arguments", "command")  # not an array


@pytest.mark.parametrize("variable", ["ALLOW_COMMANDS", "ALLOWED_COMMANDS"])
async def test_mcp_shell_server_variables_enable_the_tool(tmp_path: Path, variable: str) -> None:
    env = {variable: "echo", "ALLOW_PATTERNS": "^ca[t]$"}
    async with connect("--base-path", str(tmp_path), env=env) as client:
        echo = content(await client.call_tool("shell_execute", {"command": ["echo", "compatible"]}))
        cat = content(await client.call_tool("shell_execute", {"command": ["cat"], "stdin": "by pattern"}))
    assert echo["stdout"] == "compatible\n"
    assert cat["stdout"] == "by pattern"


def test_allowlisting_a_shell_or_a_loose_pattern_is_refused_at_startup(tmp_path: Path) -> None:
    import sys

    for extra in (["--allow-commands", "bash"], ["--allow-commands", "echo", "--allow-patterns", ".*"]):
        proc = subprocess.run(
            [sys.executable, "-m", "trio_exec", "-d", "--base-path", str(tmp_path), *extra],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1


def test_a_pattern_matching_refused_programs_stops_the_server_with_examples(tmp_path: Path) -> None:
    import os
    import sys

    for pattern, example in (("[a-z0-9]+", "'sh', 'python'"), (r"python3\.[0-9]+", "'python3.12'")):
        proc = subprocess.run(
            [sys.executable, "-m", "trio_exec", "--base-path", str(tmp_path)],
            capture_output=True, text=True, check=False, timeout=60,
            env={**os.environ, "ALLOW_PATTERNS": pattern},
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert f"--allow-patterns {pattern!r}: it matches refused programs such as {example}" in line
        assert "--allow-commands" in line
