"""git in repositories the agent builds, end to end through the real client (SECURITY.md, the git policy).

The agent may write files in the base path, so any configuration git reads from there could name a program
to run. Each test plants one such configuration the way an agent could and shows that git never runs it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import connect

PLANTED = "[alias]\n\tpwn = !touch PWNED\n[core]\n\tfsmonitor = touch PWNED\n\tpager = touch PWNED\n"


def call(client: Any, *command: str) -> Any:
    return client.call_tool("shell_execute", {"command": list(command)})


def _git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "-C", str(repo), *identity, *args], check=True, capture_output=True)


async def test_a_bare_repository_the_agent_builds_is_never_used(tmp_path: Path) -> None:
    async with connect("--base-path", str(tmp_path), "--allow-commands", "git,printf") as client:
        init = (await call(client, "git", "init", "-q", "--bare", "d")).structured_content
        planted = (await call(client, "printf", PLANTED, ">>", "d/config")).structured_content
        alias = (await call(client, "git", "-C", "d", "pwn")).structured_content
        status = (await call(client, "git", "-C", "d", "status")).structured_content
        explicit = (await call(client, "git", "-C", "d", "--bare", "status")).structured_content
        separate = (await call(client, "git", "init", "--separate-git-dir=g", "w")).structured_content
    assert init["exit_code"] == 0
    assert planted["exit_code"] == 0
    assert alias["error"]["code"] == "rejected"
    assert "not one of git's own commands" in alias["error"]["message"]
    assert status["exit_code"] == 128
    assert "safe.bareRepository" in status["stderr"]
    assert explicit["error"]["code"] == "rejected"
    assert "--bare" in explicit["error"]["message"]
    assert separate["error"]["code"] == "rejected"
    assert "--separate-git-dir" in separate["error"]["message"]
    assert not list(tmp_path.rglob("PWNED"))


async def test_hooks_and_global_configuration_written_by_the_agent_never_run(tmp_path: Path) -> None:
    repo = tmp_path / "w"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    # A template's HOME is the base path, so the agent's ~/.gitconfig would be git's global configuration.
    config = tmp_path / "c.toml"
    config.write_text('[tools.status]\ntemplate = "git -C w status --short"\n')
    shell = ["--allow-commands", "git,printf,chmod,cp", "--allow-dangerous"]
    async with connect("--base-path", str(tmp_path), "--config", str(config), *shell) as client:
        steps = [
            (await call(client, *argv)).structured_content
            for argv in (
                ("printf", "#!/bin/sh\ntouch ../../PWNED\n", ">", "hook"),
                ("chmod", "+x", "hook"),
                ("cp", "hook", "w/.git/hooks/post-checkout"),  # cp writes anywhere the sandbox lets it
                ("printf", PLANTED, ">", "planted"),
                ("cp", "planted", ".gitconfig"),
                ("git", "-C", "w", "checkout", "-q", "-b", "topic"),
            )
        ]
        status = (await client.call_tool("status", {})).structured_content
    assert [step["exit_code"] for step in steps] == [0] * 6, steps
    assert status["exit_code"] == 0
    assert (repo / ".git" / "hooks" / "post-checkout").exists()
    assert not list(tmp_path.rglob("PWNED"))


async def test_git_writes_stay_inside_the_base_and_out_of_git_directories(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    _git(base, "init", "-q")
    (base / "config").write_text("[alias]\n")
    _git(base, "add", "config")
    outside = str(tmp_path / "outside")
    async with connect("--base-path", str(base), "--allow-commands", "git") as client:
        refused = [
            (await call(client, *argv)).structured_content
            for argv in (
                ("git", "init", outside),
                ("git", "clone", ".", outside),
                ("git", "worktree", "add", outside),
                ("git", "bundle", "create", f"{outside}.bundle", "--all"),
                ("git", "checkout-index", f"--prefix={outside}/", "-a"),
                ("git", "checkout-index", "--prefix=.git/", "config"),  # the index's 'config' over .git/config
                ("git", "credential-store", f"--file={outside}", "store"),
            )
        ]
        inside = (await call(client, "git", "checkout-index", "--prefix=copy/", "-a")).structured_content
    for result in refused:
        assert result["error"]["code"] == "rejected", result
    assert not (tmp_path / "outside").exists()
    assert inside["exit_code"] == 0
    assert (base / "copy" / "config").read_text() == "[alias]\n"
