"""The architecture as a test: which parts may import what, and who may spawn or read the environment.

Read from the source with ``ast`` (no import runs). The contracts:

- the **pure core** (validation, templates, policies, ...; a package's submodules too, ``policies.awk``)
  never imports trio, anyio, the MCP SDK, an HTTP or WebSocket server, ``subprocess``, nor the runner, the
  server, the app, the CLI or the transports;
- **data** (config, errors) imports nothing of the package but errors and the **vocabulary** (values, regexes,
  text, paths), which imports only itself;
- only the **runner** starts processes (``subprocess``, ``os.system``/``popen``/``exec*``/``spawn*``/``fork``);
- only the **CLI** reads the process environment (``os.environ``, ``os.getenv``);
- nothing reaches into another object's private attributes (``x._name``, ``getattr(x, "_name")``; ``self``
  and ``cls`` are one's own, ``os._exit`` is public API): a library's privates change without notice;
- the **transports** never import the runner, nor one another: what they share (the gate, the JSON-RPC
  framing, the reply tracking, the socket settings) lives in modules of its own.

``KNOWN`` lists the breaks today's layout still has, each with the step that removes it (issue 13, the
redesign); an entry that no longer breaks its contract fails the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_exec"
PURE = {
    "allow_patterns", "argv", "commands", "confinement", "config", "elfsyms", "errors", "guards", "joboutput",
    "paths", "plan", "policies", "programs", "regexes", "sandbox_view", "templates", "text", "tools", "validation",
    "values",
}  # fmt: skip  # a package here (tools, policies) is pure with every module in it
# Data (the settings and the errors) stands on the vocabulary only, and the vocabulary on itself.
DATA = {"config", "errors"}
VOCABULARY = {"values", "regexes", "text", "paths"}
IMPURE_LIBRARIES = {"trio", "anyio", "mcp", "mcp_types", "hypercorn", "trio_websocket", "starlette", "subprocess"}
TRANSPORTS = {"transports.stdio", "transports.http", "transports.websocket"}
EDGES = {
    "runner", "server", "results", "compose", "app", "admission", "inflight", "jobs", "job_tools", "progress", "cli",
    "doctor", "transports", "workers",
}  # fmt: skip
SPAWNING = {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp"} | {
    f"{verb}{suffix}" for verb in ("exec", "spawn") for suffix in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")
}
KNOWN = {
    ("spawns", "sandbox"): "start-up probes (bwrap --version, a test sandbox): move them behind the runner",
    # No public accessor exists for these; the tests that would see a change: test_websocket_e2e (the Host
    # rule), test_http_sessions_e2e (the session count in /health and the 503 at --max-sessions).
    ("private attribute", "transports.websocket"): "request._event.host: wsproto drops Host from the headers; "
    "ws._send(TextMessage(..., message_finished=False)): trio-websocket sends no fragments publicly",
    ("private attribute", "transports.http"): "the SDK session manager's _server_instances: the open sessions",
}
PUBLIC_UNDERSCORED = {("os", "_exit")}


def modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name below ``trio_exec`` (``transports.http``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return found


def imports(tree: ast.Module) -> set[str]:
    """Dotted names imported anywhere in ``tree`` (``trio_exec.x`` shortened to ``x``), function bodies too."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module.split(".")[0] == "trio_exec":  # the names may be modules: ``from trio_exec.x import y``
                names |= {f"{node.module}.{a.name}" for a in node.names}
    return {n.removeprefix("trio_exec.") for n in names}


def _is_os_attribute(node: ast.AST, names: set[str]) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr in names
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _private_attribute(node: ast.AST) -> bool:
    """``x._name`` or ``getattr(x, "_name")`` where ``x`` is not ``self``/``cls`` (dunders are public)."""
    if isinstance(node, ast.Attribute):
        owner, attr = node.value, node.attr
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "setattr")
        and len(node.args) > 1
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ):
        owner, attr = node.args[0], node.args[1].value
    else:
        return False
    if not attr.startswith("_") or attr.startswith("__"):
        return False
    own = isinstance(owner, ast.Name) and (owner.id in ("self", "cls") or (owner.id, attr) in PUBLIC_UNDERSCORED)
    return not own


def breaks(name: str, tree: ast.Module) -> Iterator[tuple[str, str]]:
    """(contract, what) for each contract module ``name`` breaks."""
    imported = imports(tree)
    top = {i.split(".")[0] for i in imported}
    if name.split(".")[0] in PURE:
        for what in sorted((top & IMPURE_LIBRARIES) | {i for i in imported if i.split(".")[0] in EDGES}):
            yield "pure core imports an edge", what
    if name in DATA | VOCABULARY:
        own = {path.stem for path in PACKAGE.iterdir()} - {"__init__", "__main__"}
        allowed = VOCABULARY | ({"errors"} if name in DATA else set())
        for what in sorted((top & own) - allowed):
            yield "data or vocabulary imports the core", what
    if name != "runner" and ("subprocess" in top or any(_is_os_attribute(n, SPAWNING) for n in ast.walk(tree))):
        yield "spawns", name
    if name != "cli" and any(_is_os_attribute(n, {"environ", "getenv", "environb", "getenvb"}) for n in ast.walk(tree)):
        yield "reads the environment", name
    if any(_private_attribute(n) for n in ast.walk(tree)):
        yield "private attribute", name
    if name.startswith("transports.") and "runner" in imported:
        yield "transport imports the runner", name
    if name in TRANSPORTS:
        for what in sorted(imported & (TRANSPORTS - {name})):
            yield "transport imports another transport", what


def found_breaks() -> dict[tuple[str, str], str]:
    return {(contract, name): what for name, tree in modules().items() for contract, what in breaks(name, tree)}


def test_the_parts_keep_their_contracts() -> None:
    unexpected = {key: what for key, what in found_breaks().items() if key not in KNOWN}
    assert not unexpected, f"architecture broken (see this file's docstring): {unexpected}"


def test_every_known_break_still_exists_so_the_list_only_shrinks() -> None:
    stale = set(KNOWN) - set(found_breaks())
    assert not stale, f"fixed, so remove from KNOWN: {sorted(stale)}"


@pytest.mark.parametrize(
    ("name", "source", "contract"),
    [
        ("validation", "import trio\n", "pure core imports an edge"),
        ("templates", "from trio_exec import runner\n", "pure core imports an edge"),
        ("policies", "def f():\n    from trio_exec.transports import http\n", "pure core imports an edge"),
        ("policies.awk", "import trio\n", "pure core imports an edge"),
        ("guards", "import subprocess\n", "pure core imports an edge"),
        ("config", "from trio_exec.validation import validate_value\n", "data or vocabulary imports the core"),
        ("errors", "from trio_exec import policies\n", "data or vocabulary imports the core"),
        ("paths", "from trio_exec.policies import POLICIES\n", "data or vocabulary imports the core"),
        ("values", "from trio_exec import config\n", "data or vocabulary imports the core"),
        ("tools.shell", "import subprocess\n", "spawns"),
        ("tools.template", "from trio_exec import results\n", "pure core imports an edge"),
        ("plan", "from trio_exec.runner import run\n", "pure core imports an edge"),
        ("server", "import os\nos.execvp('sh', ['sh'])\n", "spawns"),
        ("audit", "import os\nx = os.environ.get('X')\n", "reads the environment"),
        ("transports.stdio", "from trio_exec.runner import KILL_GRACE_S\n", "transport imports the runner"),
        (
            "transports.websocket",
            "from trio_exec.transports.stdio import encode\n",
            "transport imports another transport",
        ),
        ("transports.http", "from trio_exec.transports import websocket\n", "transport imports another transport"),
        ("server", "def f(x):\n    return x._secret\n", "private attribute"),
        ("app", "def f(x):\n    return getattr(x, '_state', None)\n", "private attribute"),
    ],
)
def test_each_contract_catches_its_break(name: str, source: str, contract: str) -> None:
    assert contract in {c for c, _ in breaks(name, ast.parse(source))}
