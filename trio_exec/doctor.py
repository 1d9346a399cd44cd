"""``trio-exec doctor``: which sandbox layer is active, why the others are not, and a live self-test.

The self-test runs one command through the real runner, inside the sandbox the server would use,
that tries what an attacker's command would: read the server's ``/proc`` entries, read
``/etc/shadow``, write outside the base path, connect to a TCP listener on 127.0.0.1, and keep
capabilities. Each attempt is reported as blocked or not; the exit code is 0 only when a layer is
active and every attempt was blocked.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile

import trio

from trio_exec import landlock, runner, sandbox
from trio_exec.config import Settings
from trio_exec.plan import SAFE_PATH, ExecPlan

# Runs inside the box with ``python -I -S``: standard library only, prints one JSON object.
PROBE = r"""
import json, os, socket, sys
server, outside, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def attempt(action):
    try:
        action()
    except OSError as e:
        return "blocked (" + (e.strerror or type(e).__name__) + ")"
    return "NOT blocked"
def read(path):
    return lambda: open(path, "rb").read(1)
def write():
    with open(os.path.join(outside, "written-from-the-sandbox"), "w") as f:
        f.write("x")
def connect():
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()
libc.capget(header, data)
effective = data[0] | data[3] << 32
sys.stdout.write(json.dumps({
    "read the server's /proc/<pid>/environ": attempt(read("/proc/" + server + "/environ")),
    "read the server's /proc/<pid>/mem": attempt(read("/proc/" + server + "/mem")),
    "list the server's open files (/proc/<pid>/fd)": attempt(lambda: os.listdir("/proc/" + server + "/fd")),
    "read /etc/shadow": attempt(read("/etc/shadow")),
    "write outside the base path": attempt(write),
    "connect to a TCP listener on 127.0.0.1": attempt(connect),
    "capabilities": "none" if effective == 0 else "SOME: %x" % effective,
    "no_new_privs": "on" if libc.prctl(39, 0, 0, 0, 0) == 1 else "OFF",
    "seccomp filter": "on" if libc.prctl(21, 0, 0, 0, 0) == 2 else "OFF",
}) + "\n")
"""


def _landlock_abi() -> int | None:
    """The kernel's Landlock ABI version (None when Landlock is absent or disabled)."""
    import ctypes

    if platform.machine() not in ("x86_64", "aarch64"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return int(abi) if abi > 0 else None


def self_test(box: sandbox.Sandbox, base: str) -> dict[str, str]:
    """Run the probe in ``box``; what each attempt came to."""
    outside = tempfile.mkdtemp(prefix="trio-exec-doctor-")
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        plan = ExecPlan(
            argv=(sys.executable, "-I", "-S", "-c", PROBE, str(os.getpid()), outside, str(port)),
            cwd=base,
            env={"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": "/tmp"},  # noqa: S108
            timeout_s=20,
            sandbox=box,
        )
        result = trio.run(runner.run, plan)
        written = os.listdir(outside)
    finally:
        listener.close()
        for name in os.listdir(outside):
            os.unlink(os.path.join(outside, name))
        os.rmdir(outside)
    try:
        found: dict[str, str] = json.loads(result.stdout)
    except ValueError:
        err = result.stderr.decode(errors="replace").strip()
        return {"self-test": f"FAILED to run (exit {result.exit_code}): {err[-300:]}"}
    if written:  # the host's view is what counts, whatever the command believed
        found["write outside the base path"] = "NOT blocked (the file appeared on the host)"
    return found


def run(settings: Settings, box: sandbox.Sandbox, facts: list[str]) -> tuple[int, str]:
    """The report, and the exit code: 0 when a layer is active and the self-test found nothing open."""
    abi = _landlock_abi()
    lines = ["trio-exec doctor", *facts]
    if box.bwrap:
        lines.append(f"  bwrap: {sandbox.bwrap_version(box.bwrap)} at {box.bwrap}")
    lines.append(f"  kernel: {platform.release()}; Landlock ABI: {abi if abi else 'not available'}")
    if box.mode is sandbox.Mode.BWRAP:
        fallback = landlock.landlock_abi()
        usable = fallback is not None and fallback >= landlock.LANDLOCK_MIN_ABI
        lines.append("  fallback: " + ("landlock is usable (--sandbox landlock), not needed while bwrap runs" if usable
                                       else "none (Landlock needs ABI >= 4 and the landlockpy package)"))  # fmt: skip
    lines.append(f"  server user: uid {os.geteuid()}" + (" (root)" if os.geteuid() == 0 else ""))
    base = settings.policy.base_path or os.getcwd()
    results = self_test(box, base)
    lines.append(f"self-test (one command in the sandbox, base path {base}):")
    lines += [f"  {what}: {verdict}" for what, verdict in results.items()]
    weak = [v for v in results.values() if v.startswith(("NOT", "SOME", "OFF", "FAILED"))]
    ok = box.active and not weak
    lines.append("verdict: " + ("the sandbox holds" if ok else "NOT protected: see the notes above"))
    return (0 if ok else 1), "\n".join(lines)
