"""Run the MCP conformance suite against a live trio-exec and hold every failing check to a baseline.

    python conformance/run.py [--prefix DIR] [--out DIR]        (nox -s conformance runs this)

1. Node 22 and ``@modelcontextprotocol/conformance`` come from the npm registry, pinned by
   ``package.json`` and ``package-lock.json`` here, installed with ``npm ci`` into a private prefix
   (again only when the lock file changed). The suite runs on that Node, whatever ``node`` is on PATH.
2. trio-exec is started over Streamable HTTP on a free loopback port, without auth (the suite sends
   no custom headers), once stateless (the default) and once ``--stateful``; each is tested against
   the requirement sets of both protocol eras (2025-11-25: initialize handshake; 2026-07-28: per-request
   ``_meta``). The first listed tool, ``date``, takes no arguments: the header-validation scenario
   calls the first tool with ``{}``. ``fixtures.toml`` adds the tasks scenarios' fixtures (``greet``,
   ``slow_compute``, ``failing_job``) as command templates.
3. Every check of every run is read from the suite's ``checks.json`` files. A FAILURE must be listed in
   ``expected-failures.txt`` (scenario, check id, reason); a listed check that passes, or never fails,
   is a stale entry. Either fails this script. WARNING, INFO and SKIPPED are reported, not failed.

The suite's own console output (which ends in a "Total: ..." line that CI could take for a test
count) goes to log files in the results directory; this script prints one verdict line of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASELINE = HERE / "expected-failures.txt"
REVISIONS = ("2025-11-25", "2026-07-28")
MODES = {"stateless": [], "stateful": ["--stateful"]}
TOOLS = [
    "--cmd",
    'date|"date -u"',
    "--cmd",
    'echo|"echo {message}"',
    "--config",
    str(HERE / "fixtures.toml"),
    "--allow-dangerous",
]  # fmt: skip  (the fixtures start sh)
SUITE = "@modelcontextprotocol/conformance"
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")
SCENARIO_COUNT = re.compile(r"^Running requirements (?P<revision>\S+) \((?P<count>\d+) scenarios\)", re.MULTILINE)

Key = tuple[str, str]  # (scenario, check id)


class Failed(Exception):
    """The run could not be carried out (as opposed to checks that failed)."""


def say(message: str) -> None:
    print(f"conformance: {message}", flush=True)


# --- tools -------------------------------------------------------------------------------------


def ensure_tools(prefix: Path) -> tuple[Path, Path]:
    """``(node, suite entry point)`` installed from the pinned lock file into ``prefix``."""
    npm = shutil.which("npm")
    lock = (HERE / "package-lock.json").read_bytes()
    stamp = prefix / ".installed-lock.json"  # a copy of the lock file npm ci last completed with
    node, entry = _node(prefix), prefix / "node_modules" / SUITE / "dist" / "index.js"
    if not (stamp.exists() and stamp.read_bytes() == lock and node and entry.exists()):
        if npm is None:
            raise Failed("npm is not installed: it fetches Node 22 and the suite from the npm registry")
        prefix.mkdir(parents=True, exist_ok=True)
        stamp.unlink(missing_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(HERE / name, prefix / name)
        log = prefix / "npm.log"
        for attempt in (1, 2):  # one retry for a registry hiccup; a second failure is reported
            with log.open("wb") as out:
                code = subprocess.call([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(prefix)],
                                       cwd=prefix, stdin=subprocess.DEVNULL, stdout=out, stderr=out)  # fmt: skip
            if code == 0:
                break
            say(f"npm ci failed (attempt {attempt}, exit {code}); log: {log}")
        else:
            raise Failed(f"npm ci failed twice:\n{_tail(log)}")
        node = _node(prefix)
        if node is None or not entry.exists():
            raise Failed(f"npm ci succeeded but left no node binary or no suite in {prefix}:\n{_tail(log)}")
        stamp.write_bytes(lock)
    if node is None:  # installed already, so found above; for the type checker
        raise Failed(f"no node binary in {prefix}")
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if not version.startswith("v22."):
        raise Failed(f"{node} is {version}, not Node 22")
    return node, entry


def _node(prefix: Path) -> Path | None:
    """The ``node`` package's preinstall script fetches ``node-<os>-<arch>`` and links its binary
    to ``node_modules/node/bin/node``; look for the nested copy too, in case the link is missing."""
    package = prefix / "node_modules" / "node"
    for candidate in (package / "bin" / "node", *sorted(package.glob("node_modules/node-*/bin/node"))):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


# --- trio-exec ---------------------------------------------------------------------------------


@dataclass
class Server:
    mode: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""


def start_server(mode: str, out: Path, base_path: Path) -> Server:
    log = out / f"server-{mode}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EXEC_")}  # no auth token, no surprises
    argv = [sys.executable, "-m", "trio_exec", "--transport", "streamable-http", "--bind", "127.0.0.1:0",
            "--base-path", str(base_path), "--rate-limit-rps", "0",  # one client opening many sessions
            *TOOLS, *MODES[mode]]  # fmt: skip
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
    server = Server(mode, proc, log)
    deadline = time.monotonic() + 60
    while not (found := re.search(r"serving \d+ tool\(s\) on (\S+)", log.read_text(errors="replace"))):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise Failed(f"trio-exec ({mode}) did not start:\n{_tail(log)}")
        time.sleep(0.05)
    server.url = found.group(1)
    return server


def stop_server(server: Server) -> int:
    """SIGTERM (the graceful path), then the exit code; SIGKILL only if it hangs."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        return -signal.SIGKILL


# --- the suite ---------------------------------------------------------------------------------


@dataclass
class Check:
    run: str
    scenario: str
    id: str
    status: str
    message: str


def run_suite(node: Path, entry: Path, server: Server, revision: str, out: Path) -> list[Check]:
    name = f"{server.mode}-{revision}"
    results, log = out / name, out / f"{name}.log"
    shutil.rmtree(results, ignore_errors=True)
    argv = [str(node), str(entry), "server", "--url", server.url, "--requirements", revision, "-o", str(results)]
    with log.open("wb") as output:
        try:
            code = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, timeout=600,
                                   env={**os.environ, "NO_COLOR": "1"})  # fmt: skip
        except subprocess.TimeoutExpired:
            raise Failed(f"the suite ran over 10 minutes ({name}); log: {log}") from None
    if code not in (0, 1):  # 1 means "some check failed", which is judged below
        raise Failed(f"the suite crashed ({name}, exit {code}):\n{_tail(log)}")
    announced = SCENARIO_COUNT.search(log.read_text(errors="replace"))
    if announced is None:
        raise Failed(f"the suite did not say how many scenarios it runs ({name}); log: {log}")
    dirs = sorted(results.iterdir()) if results.is_dir() else []
    if len(dirs) != int(announced["count"]):
        raise Failed(f"{name}: the suite announced {announced['count']} scenarios but saved {len(dirs)}; log: {log}")
    checks = []
    for d in dirs:
        match = RESULT_DIR.match(d.name)
        if match is None or not (d / "checks.json").is_file():
            raise Failed(f"{name}: unexpected result folder {d}")
        for c in json.loads((d / "checks.json").read_text()):
            message = c.get("errorMessage") or (c.get("details") or {}).get("message") or ""
            checks.append(Check(name, match["scenario"], c["id"], c["status"], " ".join(str(message).split())))
    return checks


# --- the baseline ------------------------------------------------------------------------------


def read_baseline(path: Path) -> dict[Key, str]:
    """``scenario check-id reason...`` per line; ``#`` comments and blank lines are skipped."""
    baseline: dict[Key, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise Failed(f"{path}:{number}: want 'scenario check-id reason', got {line!r}")
        key = (parts[0], parts[1])
        if key in baseline:
            raise Failed(f"{path}:{number}: {key[0]} {key[1]} is listed twice")
        baseline[key] = parts[2]
    return baseline


@dataclass
class Verdict:
    passed: int = 0
    expected: int = 0
    unexpected: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # stale baseline entries, unclean server exits
    notes: dict[Key, Check] = field(default_factory=dict)  # WARNING/INFO/SKIPPED, one per check id
    statuses: Counter[str] = field(default_factory=Counter)


def judge(checks: list[Check], baseline: dict[Key, str]) -> Verdict:
    verdict = Verdict()
    failed_somewhere: set[Key] = set()
    for c in checks:
        key = (c.scenario, c.id)
        verdict.statuses[c.status] += 1
        if c.status == "FAILURE":
            if key in baseline:
                verdict.expected += 1
                failed_somewhere.add(key)
            else:
                verdict.unexpected.append(c)
        elif c.status == "SUCCESS":
            verdict.passed += 1
            if key in baseline:
                verdict.problems.append(f"baselined {c.scenario} {c.id} passed in {c.run}: remove it from the baseline")
        else:
            verdict.notes.setdefault(key, c)
    passed_somewhere = {(c.scenario, c.id) for c in checks if c.status == "SUCCESS"}
    for key in sorted(baseline.keys() - failed_somewhere - passed_somewhere):
        verdict.problems.append(f"baselined {key[0]} {key[1]} never failed: remove it from the baseline")
    return verdict


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", type=Path, default=ROOT / ".nox" / "conformance-node", help="npm prefix")
    parser.add_argument("--out", type=Path, default=ROOT / ".nox" / "conformance-results", help="results")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="expected failures")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        baseline = read_baseline(args.baseline)
        node, entry = ensure_tools(args.prefix.resolve())
        suite_version = json.loads((entry.parent.parent / "package.json").read_text())["version"]
        out = args.out.resolve()
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        checks: list[Check] = []
        exits = {}
        with tempfile.TemporaryDirectory(prefix="trio-exec-conformance-") as base_path:
            for mode in MODES:
                server = start_server(mode, out, Path(base_path))
                try:
                    for revision in REVISIONS:
                        checks += run_suite(node, entry, server, revision, out)
                finally:
                    exits[mode] = stop_server(server)
    except Failed as e:
        say(f"error: {e}")
        return 2
    verdict = judge(checks, baseline)
    for mode, code in exits.items():
        if code != 0:
            verdict.problems.append(f"trio-exec ({mode}) exited with {code} on SIGTERM; see server-{mode}.log")
    for key, c in sorted(verdict.notes.items()):
        if c.status == "WARNING":
            say(f"warning: {key[0]} {key[1]}: {c.message[:160] or '(no message)'}")
    for c in verdict.unexpected:
        say(f"UNEXPECTED FAILURE [{c.run}] {c.scenario} {c.id}: {c.message[:300]}")
    for line in verdict.problems:
        say(f"PROBLEM: {line}")
    runs = f"{len(MODES) * len(REVISIONS)} runs ({'/'.join(MODES)} x {'/'.join(REVISIONS)})"
    say(f"suite {suite_version} on Node 22 ({node}), {runs} in {time.monotonic() - started:.0f}s; details in {out}")
    say(f"{verdict.passed} checks passed, {verdict.expected} baselined as not applicable, "
        f"{len(verdict.unexpected)} unexpected failures, {len(verdict.problems)} other problems, "
        f"{verdict.statuses['WARNING']} warnings")  # fmt: skip
    return 1 if verdict.unexpected or verdict.problems else 0


if __name__ == "__main__":
    sys.exit(main())
