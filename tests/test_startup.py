"""Start-up: what each path imports (read from ``python -X importtime``, the real command) and the SDK's types.

A desktop client starts the server for every session, and ``--dry-run`` is what an operator runs while editing a
configuration: neither should load what it never uses (issue 15: the stdio path once imported the HTTP stack).
"""

from __future__ import annotations

import re
import subprocess
import sys

ECHO = ["--cmd", 'echo|"echo {message}"']


def imported(*args: str) -> tuple[set[str], str]:
    """The modules ``python -m trio_exec ARGS`` imports (stdin at its end at once), and the rest of its stderr."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "trio_exec", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    modules = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", done.stderr, re.MULTILINE))
    assert len(modules) > 50, done.stderr[-3000:]
    rest = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))
    return modules, rest


def test_serving_on_stdio_imports_no_network_transport_nor_the_supervisor() -> None:
    modules, log = imported(*ECHO)
    assert "serving 1 tool(s) on stdio" in log  # it really served, then saw stdin end
    assert "mcp.server.lowlevel.server" in modules
    network = {"hypercorn", "trio_websocket", "wsproto", "trio_exec.transports.http",
               "trio_exec.transports.websocket", "trio_exec.transports.gate", "trio_exec.workers"}  # fmt: skip
    assert not modules & network
    assert "jsonschema" not in modules  # the argument checks are built at the first call


def test_dry_run_imports_neither_trio_nor_the_sdk_nor_the_call_checks() -> None:
    modules, _ = imported(*ECHO, "--dry-run")
    serving_only = {"trio", "anyio", "mcp", "mcp_types", "pydantic", "loguru", "jsonschema", "ssl", "hypercorn",
                    "starlette", "trio_exec.server", "trio_exec.runner"}  # fmt: skip
    assert not modules & serving_only


def test_the_sdk_types_are_built_at_first_use_and_pydantic_is_left_as_it_was() -> None:
    script = (
        "import pydantic\n"
        "from trio_exec.startup import deferred_model_builds\n"
        "with deferred_model_builds():\n"
        "    import mcp_types\n"
        "print(mcp_types.CallToolResult.__pydantic_complete__)\n"
        "print(mcp_types.CallToolResult(content=[]).model_dump(by_alias=True))\n"
        "print(mcp_types.CallToolResult.__pydantic_complete__)\n"
        "print('defer_build' in pydantic.BaseModel.model_config)\n"
        "class Later(pydantic.BaseModel):\n"
        "    x: int\n"
        "print(Later.__pydantic_complete__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    deferred, dumped, built, left, later = done.stdout.splitlines()
    assert (deferred, built, left, later) == ("False", "True", "False", "True")
    assert "'content': []" in dumped
