"""The hostile-input corpus (``shared/corpus/public_cases.json`` and ours beside it), case by case, end to end.

Each case starts the real server over stdio in a fresh folder, makes its call(s) with the real
``mcp.Client`` and checks the outcome as the corpus README defines it. The newest corpus beside
the checkout (``../shared/corpus``) wins over the copy vendored in ``tests/corpus``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from mcp.shared.exceptions import MCPError

from tests.conftest import server_params

_HERE = Path(__file__).parent
_SHARED = _HERE.parent.parent / "shared" / "corpus" / "public_cases.json"
CORPUS = _SHARED if _SHARED.exists() else _HERE / "corpus" / "public_cases.json"


def _load_cases() -> list[dict[str, Any]]:
    """The public cases, then the project's own (every other ``tests/corpus/*.json``, same schema)."""
    cases: list[dict[str, Any]] = json.loads(CORPUS.read_text())["cases"]
    for extra in sorted((_HERE / "corpus").glob("*.json")):
        if extra.name != "public_cases.json":
            cases.extend(json.loads(extra.read_text())["cases"])
    ids = [c["id"] for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"corpus case ids used twice: {duplicates}"
    return cases


CASES = _load_cases()
IMPLEMENTED_MODES = {"template", "allowlist"}


def _subst(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in names.items():
            value = value.replace(key, replacement)
        return value
    if isinstance(value, list):
        return [_subst(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _subst(v, names) for k, v in value.items()}
    return value


def _make_fixtures(fixtures: list[dict[str, Any]]) -> None:
    for f in fixtures:
        path = Path(f["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        if f["type"] == "file":
            path.write_text(f["content"])
        elif f["type"] == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif f["type"] == "symlink":
            path.symlink_to(f["target"])
        elif f["type"] == "git_repo":
            path.mkdir(parents=True, exist_ok=True)
            for name, content in f["files"].items():
                (path / name).parent.mkdir(parents=True, exist_ok=True)
                (path / name).write_text(content)
            git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
            subprocess.run([*git, "init", "-q"], check=True)
            subprocess.run([*git, "add", "-A"], check=True)
            subprocess.run([*git, "commit", "-qm", "init"], check=True)
        else:  # pragma: no cover - a new fixture type must be implemented here
            raise AssertionError(f"unknown fixture type {f['type']}")


def _outcome(result: Any) -> str:
    if isinstance(result, MCPError):
        return f"PROTOCOL_ERROR:{result.error.code}"
    if not result.is_error:
        return "RAN"
    code = (result.structured_content or {}).get("error", {}).get("code")
    return "REJECTED" if code == "rejected" else f"FAILED:{code}"


@pytest.fixture
def corpus_root() -> Any:
    # Paths in the cases must not be under pytest's tmp_path (it may sit below /tmp/pytest-of-root,
    # fine), but <MARKER> is required to live under /tmp.
    root = Path(f"/tmp/trio-exec-corpus-{uuid.uuid4().hex[:12]}")
    marker = Path(f"/tmp/trio-exec-marker-{uuid.uuid4().hex[:12]}")
    (root / "base").mkdir(parents=True)
    (root / "outside").mkdir()
    marker.mkdir()
    yield root, marker
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(marker, ignore_errors=True)


# Every case under the default layer (bubblewrap here) and again under the Landlock fallback.
@pytest.mark.parametrize("layer", ["auto", "landlock"])
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
async def test_corpus_case(case: dict[str, Any], layer: str, corpus_root: tuple[Path, Path]) -> None:
    from mcp import Client

    if case["mode"] not in IMPLEMENTED_MODES:
        pytest.skip(f"{case['mode']} mode (shell_execute) is not implemented yet")
    root, marker = corpus_root
    secret = f"SECRET-{uuid.uuid4().hex}"
    names = {
        "<ROOT>": str(root),
        "<BASE>": str(root / "base"),
        "<OUTSIDE>": str(root / "outside"),
        "<MARKER_REL>": str(marker).lstrip("/"),
        "<MARKER>": str(marker),
        "<SECRET>": secret,
    }
    c = _subst(case, names)
    _make_fixtures(c["fixtures"])
    env = {"MCP_EXEC_AUTH_TOKEN": secret, "APP_SECRET_TOKEN": secret, "MCP_EXEC_SANDBOX": layer,
           **c.get("server_env", {})}  # fmt: skip
    params = server_params(*c["server_args"], env=env, cwd=str(root / "base"))

    if c.get("startup_refusal_ok"):
        with trio.fail_after(60):
            dry = await trio.run_process(
                [sys.executable, "-m", "trio_exec", "--dry-run", *c["server_args"]],
                capture_stdout=True,
                capture_stderr=True,
                env=params.env,
                cwd=params.cwd,
                check=False,
            )
        if dry.returncode == 2:
            assert len(dry.stderr.decode().strip().splitlines()) == 1, dry.stderr
            return

    results: list[Any] = []
    async with Client(params, read_timeout_seconds=60) as client:
        for call in [{"tool": c["tool"], "arguments": c["arguments"]}, *c.get("then", [])]:
            try:
                results.append(await client.call_tool(call["tool"], call["arguments"]))
            except MCPError as e:
                results.append(e)

    first = results[0]
    outcome = _outcome(first)
    rendered = json.dumps(
        [r.model_dump(mode="json") if not isinstance(r, MCPError) else str(r) for r in results], ensure_ascii=False
    )
    assert secret not in rendered, "the server's secret leaked into a result"
    for path in c.get("must_not_exist", []):
        assert not os.path.lexists(path), f"{path} exists: a payload ran"
    if c["check"] == "verdict":
        if c["expected"] == "reject":
            # A value the inputSchema refuses is a tool error (SEP-1303): as good as a rejection, nothing ran.
            allowed = {"REJECTED"} | ({"FAILED:invalid_arguments"} if c.get("accept_protocol_error") else set())
            assert outcome in allowed, f"{case['id']}: expected a rejection, got {outcome}: {rendered[:500]}"
        else:
            assert outcome == "RAN", f"{case['id']}: expected the command to run, got {outcome}: {rendered[:500]}"
            if "expect_stdout" in c:
                assert first.structured_content["stdout"] == c["expect_stdout"]
            for path, content in c.get("expect_files", {}).items():
                assert Path(path).read_text() == content
    else:
        assert not outcome.startswith("PROTOCOL_ERROR"), f"{case['id']}: {outcome}"
