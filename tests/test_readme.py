"""The README's snippets run as written on a fresh machine: each is extracted and run here.

Two spellings are placeholders, and the test gives them a real folder: ``/home/you/trio-exec`` is this
checkout, ``/home/you/work`` (``~/work``) is the project folder an agent works on (``HOME`` is a fresh
temporary folder). ``.venv/bin/trio-exec`` is the quick start's install; here it is a two-line script
that runs this checkout with the test's Python (installing is what ``nox -s package`` checks). Shell
snippets run in bash as written, except that the quick start's install step and the nox command (CI's
own) are left out and the example port is a free one; JSON client configurations and TOML config files
run through ``--dry-run``. The JavaScript and Python fragments are not programs; the behaviour they show
is tested end to end elsewhere (tests/test_node_clients.py, tests/test_http_e2e.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", README, re.M | re.S)]
INSTALL = "python3 -m venv .venv && .venv/bin/pip install --quiet . && "
# Absolute folders a snippet may name on any Linux machine (anything else must be a placeholder above).
SYSTEM = ("/usr/", "/etc/", "/tmp/", "/var/cache", "/dev/", "/proc/", "/bin/")


def blocks(*languages: str) -> list[str]:
    return [text for language, text in BLOCKS if language in languages]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh HOME with ``~/work`` and the quick start's ``.venv/bin/trio-exec`` (running this checkout)."""
    (tmp_path / "work").mkdir()
    script = tmp_path / ".venv" / "bin" / "trio-exec"
    script.parent.mkdir(parents=True)
    script.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m trio_exec "$@"\n')
    script.chmod(0o755)
    return tmp_path


def placeholders(text: str, home: Path) -> str:
    return text.replace("/home/you/trio-exec", str(ROOT)).replace("/home/you/work", str(home / "work"))


def run(
    argv: list[str], home: Path, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    ours = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EXEC_")}  # CA bundles, proxies, PATH
    environ = {**ours, "HOME": str(home), "LANG": "C.UTF-8", **(env or {})}
    return subprocess.run(argv, cwd=home, env=environ, capture_output=True, text=True, timeout=120, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def test_the_snippets_name_only_folders_a_fresh_machine_has_or_the_test_makes() -> None:
    for text in blocks("sh", "json", "toml"):
        for path in re.findall(r"(?<![\w.~])(/[A-Za-z][\w.-]*(?:/[\w.-]+)*)", text):
            assert path.startswith(("/home/you/", *SYSTEM)) or path in ("/mcp", "/health"), (path, text)


@pytest.mark.parametrize("index", range(len(blocks("sh"))))
def test_each_shell_snippet_runs(index: int, home: Path) -> None:
    text = blocks("sh")[index]
    with socket.socket() as probe:  # the example port, 3344, may be taken here: a free one instead
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    lines = [line.replace(INSTALL, "") for line in text.splitlines() if "nox" not in line]
    script = placeholders("\n".join(lines), home).replace("3344", port)
    done = run(["bash", "-e", "-c", script], home, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{text}\n---\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    if "/health" in text:
        assert json.loads(done.stdout)["status"] == "ok"


def client_configs() -> list[tuple[str, dict[str, object]]]:
    """(name, server entry) of every ``mcpServers`` entry in the README that starts trio-exec."""
    found = []
    for text in blocks("json"):
        document = json.loads(text) if text.lstrip().startswith("{") else {}
        for name, entry in document.get("mcpServers", {}).items():
            if "trio-exec" in json.dumps(entry):  # not mcp-shell-server's own configuration
                found.append((name, entry))
    return found


@pytest.mark.parametrize(("name", "entry"), client_configs(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_desktop_client_configuration_starts_a_valid_server(
    name: str, entry: dict[str, object], home: Path
) -> None:
    command, args = str(entry["command"]), [placeholders(str(a), home) for a in entry["args"]]  # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in dict(entry.get("env", {})).items()}  # type: ignore[call-overload]
    assert os.path.isabs(command), "a desktop client has no PATH: the command must be absolute (spawn ENOENT)"
    if command.endswith("/uvx"):  # uvx --from CHECKOUT trio-exec ARGS: the same server
        if shutil.which("uvx") is None:
            pytest.skip("uv is not installed here")
        assert args[:3] == ["--from", str(ROOT), "trio-exec"]
        argv = [shutil.which("uvx") or "uvx", *args]
        # the test's HOME is empty: keep uv's cache where it is, so the environment is built once
        env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))
    else:
        assert command == "/home/you/trio-exec/.venv/bin/trio-exec"
        argv = [str(home / ".venv" / "bin" / "trio-exec"), *args]
    done = run([*argv, "--dry-run"], home, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "configuration is valid" in done.stdout


@pytest.mark.parametrize("index", range(len(blocks("toml"))))
def test_each_config_file_snippet_is_valid(index: int, home: Path) -> None:
    config = home / "snippet.toml"
    config.write_text(placeholders(blocks("toml")[index], home))
    done = run([str(home / ".venv" / "bin" / "trio-exec"), "--config", str(config), "--dry-run"], home)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_the_doctor_example_runs_and_says_what_it_shows(home: Path) -> None:
    (example,) = [t for t in blocks("console") if "doctor" in t]
    command = example.splitlines()[0].removeprefix("$ ").split("#")[0].split()
    done = run([str(home / ".venv" / "bin" / "trio-exec"), *command[1:]], home)
    assert done.returncode == 0, done.stderr[-3000:]
    assert example.splitlines()[-1] in done.stdout  # "verdict: the sandbox holds"
