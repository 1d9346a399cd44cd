"""The deployment examples (Dockerfile, docker-compose.yml, systemd unit) hold what they promise.

Docker cannot run here, so the Dockerfile and the compose file are checked by what can be run
without it: their command lines are valid trio-exec configurations (``--dry-run``), the exact
HEALTHCHECK one-liner passes against a live server with auth on and fails when nothing answers,
and the compose file keeps its lock-down settings. The unit file goes through ``systemd-analyze verify``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.netserver import run_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOKEN = "example-token-" + "z" * 24
SHUTDOWN_GRACE_S = 10  # trio-exec's --shutdown-grace default


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (EXAMPLES / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        name, _, rest = pending.strip().partition(" ")
        instructions.append((name.upper(), rest.strip()))
        pending = ""
    return instructions


def instruction(name: str) -> list[str]:
    return [rest for n, rest in dockerfile() if n == name]


def healthcheck_argv() -> list[str]:
    [check] = instruction("HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert "--timeout=" in options
    argv: list[str] = json.loads(command)  # exec form: no shell in the image needed
    return argv


def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (pip install pyyaml) to read docker-compose.yml")
    document: dict[str, Any] = yaml.safe_load((EXAMPLES / "docker-compose.yml").read_text())
    return document


def unit() -> dict[str, list[str]]:
    """``Key`` -> values of the systemd unit (continuation lines joined)."""
    keys: dict[str, list[str]] = {}
    text = re.sub(r"\\\n\s*", " ", (EXAMPLES / "trio-exec.service").read_text())
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


async def test_the_dockerfile_healthcheck_passes_with_auth_on_and_fails_when_nothing_answers() -> None:
    argv = healthcheck_argv()
    assert argv[:2] == ["python", "-c"]
    code = argv[2]
    assert code.count("http://127.0.0.1:3344/health") == 1
    env = {"MCP_EXEC_AUTH_TOKEN": TOKEN}
    async with run_server("--transport", "streamable-http", "--cmd", 'echo|"echo {message}"', env=env) as server:
        live = code.replace("http://127.0.0.1:3344", server.base)
        healthy = await trio.run_process([sys.executable, "-c", live], check=False, capture_stderr=True)
    gone = await trio.run_process([sys.executable, "-c", live], check=False, capture_stderr=True)
    assert healthy.returncode == 0, healthy.stderr
    assert gone.returncode != 0


def test_the_image_installs_bubblewrap_for_the_sandbox() -> None:
    assert any("apt-get install" in run and "bubblewrap" in run for run in instruction("RUN"))


def test_the_compose_file_locks_the_container_down() -> None:
    service = compose()["services"]["trio-exec"]
    assert service["read_only"] is True
    assert any(t.split(":")[0] == "/tmp" for t in service["tmpfs"])
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    # bubblewrap can build each command's sandbox there, and the server refuses to start without it.
    assert {"seccomp=unconfined", "apparmor=unconfined"} <= set(service["security_opt"])
    assert "--sandbox-require" in service["command"]
    assert all(str(p).startswith("127.0.0.1:") for p in service["ports"])
    assert service["healthcheck"]["test"] == ["CMD", *healthcheck_argv()]  # the one proven live above
    assert int(service["stop_grace_period"].rstrip("s")) > SHUTDOWN_GRACE_S
    assert service["init"] is True
    # The token comes from a secret file, never from the file itself.
    assert "--auth-token-file=/run/secrets/mcp_token" in service["command"]
    assert [s if isinstance(s, str) else s["source"] for s in service["secrets"]] == ["mcp_token"]
    assert "MCP_EXEC_AUTH_TOKEN" not in service.get("environment", {})


def dockerfile_command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    [entrypoint] = instruction("ENTRYPOINT")
    [cmd] = instruction("CMD")
    assert json.loads(entrypoint) == ["trio-exec"]
    env: dict[str, str] = {}
    for line in instruction("ENV"):
        env.update(word.split("=", 1) for word in shlex.split(line))  # type: ignore[misc]
    args = [str(tmp_path) if a == "/work" else a for a in json.loads(cmd)]
    # 0.0.0.0 without a token is refused: the documented `docker run -e MCP_EXEC_AUTH_TOKEN=...` gives one
    assert "-e MCP_EXEC_AUTH_TOKEN=" in (EXAMPLES / "Dockerfile").read_text()
    return args, {**{k: v for k, v in env.items() if k.startswith("MCP_EXEC_")}, "MCP_EXEC_AUTH_TOKEN": TOKEN}


def compose_command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    service = compose()["services"]["trio-exec"]
    token = tmp_path / "mcp_token"
    token.write_text(TOKEN + "\n")
    swaps = {"/run/secrets/mcp_token": str(token), "/work": str(tmp_path)}
    args = []
    for arg in service["command"]:
        name, eq, value = arg.partition("=")
        args.append(f"{name}={swaps.get(value, value)}" if eq else arg)
    return args, {k: str(v) for k, v in service.get("environment", {}).items()}


def systemd_command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    [exec_start] = unit()["ExecStart"]
    program, *args = shlex.split(exec_start)
    assert program == "/opt/trio-exec/bin/trio-exec"
    tools = tmp_path / "tools.toml"
    tools.write_text('[tools.echo]\ntemplate = "echo {message}"\n')
    swaps = {"/etc/trio-exec/tools.toml": str(tools), "/srv/trio-exec": str(tmp_path),
             "/var/log/trio-exec/audit.jsonl": str(tmp_path / "audit.jsonl")}  # fmt: skip
    return [swaps.get(a, a) for a in args], {"MCP_EXEC_AUTH_TOKEN": TOKEN}  # what EnvironmentFile= holds


@pytest.fixture(params=[dockerfile_command, compose_command, systemd_command], ids=lambda f: f.__name__)
def command_line(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """(arguments, MCP_EXEC_* environment) of one example; a sync fixture, so a skip keeps its reason."""
    source = request.param
    result: tuple[list[str], dict[str, str]] = source(tmp_path)
    return result


async def test_example_command_lines_are_valid_configurations(
    command_line: tuple[list[str], dict[str, str]], tmp_path: Path
) -> None:
    args, env = command_line
    assert "--transport" in " ".join(args)
    result = await trio.run_process(
        [sys.executable, "-m", "trio_exec", "--dry-run", *args],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env},
        cwd=tmp_path,
        check=False,
        capture_stdout=True,
        capture_stderr=True,
    )
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()


def test_the_systemd_unit_verifies_and_outlasts_the_shutdown_grace(tmp_path: Path) -> None:
    keys = unit()
    assert keys["KillMode"] == ["mixed"]
    grace = re.search(r"--shutdown-grace (\d+)", keys["ExecStart"][0])
    assert int(keys["TimeoutStopSec"][0]) > (int(grace.group(1)) if grace else SHUTDOWN_GRACE_S) + 2
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert keys[key] == ["yes"], key
    assert keys["ProtectSystem"] == ["strict"]
    allowed = keys["SystemCallFilter"][0].split()
    assert "@system-service" in allowed
    assert {"@mount", "chroot"} <= set(allowed)  # what bubblewrap needs to build each command's view
    assert "user" in keys["RestrictNamespaces"][0].split()  # bubblewrap's namespaces (not "yes")
    for key in ("RestrictAddressFamilies", "User", "EnvironmentFile"):
        assert keys.get(key), key
    assert "/srv/trio-exec" in keys["ReadWritePaths"][0].split()
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit was checked by key only")
    # verify wants ExecStart's program to exist: point it at this environment's trio-exec.
    program = shutil.which("trio-exec", path=str(Path(sys.executable).parent)) or "/bin/true"
    copy = tmp_path / "trio-exec.service"
    copy.write_text((EXAMPLES / "trio-exec.service").read_text().replace("/opt/trio-exec/bin/trio-exec", program))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, check=False)
    # It reports unknown keys and unparsable values on stderr, yet exits 0: both must be clean.
    assert (result.returncode, result.stderr.strip()) == (0, ""), result.stderr
