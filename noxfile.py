"""Quality gates: lint, typing, tests on every Python 3.10-3.13 found, branch coverage floor."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def _pyenv_pythons() -> str | None:
    """pyenv's newest 3.10-3.13 builds as a PYENV_VERSION value (so its shims offer them all), if pyenv is there."""
    try:
        listed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    newest: dict[str, tuple[int, ...]] = {}
    for version in listed.split():
        parts = version.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and ".".join(parts[:2]) in PYTHONS:
            key = ".".join(parts[:2])
            newest[key] = max(newest.get(key, (0,)), tuple(map(int, parts)))
    found = [".".join(map(str, newest[key])) for key in PYTHONS if key in newest]
    return ":".join(found) or None


# The README's command must run the same matrix as CI: with pyenv, make every 3.10-3.13 it has visible
# (unless the caller chose PYENV_VERSION), and in CI a Python of the matrix that is missing is an error.
if "PYENV_VERSION" not in os.environ and (_found := _pyenv_pythons()):
    os.environ["PYENV_VERSION"] = _found
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))
# Branch coverage, including the server processes the tests start, is measured on one Python: tracing
# every server start-up (the SDK import) roughly doubles the suite's time.
COVERAGE_PYTHON = "3.13"
COVERAGE_FLOOR = 95  # only ever goes up (measured: 98% on 2026-11-21)

nox.options.sessions = ["lint", "typing", "tests", "coverage", "package"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    session.install("mypy>=1.11", "types-jsonschema", "-e", ".[test]")
    session.run("mypy", "--strict", "trio_exec", "tests")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    # One pytest worker per core (pytest-xdist): the suite waits mostly on server start-ups, so on CI's
    # two cores this halves its time. `nox -s tests -- -n 0 tests/x.py` runs one file in one process.
    args = ["-n", "auto", *session.posargs]
    if session.python == COVERAGE_PYTHON:
        # parallel data files (.coverage.HOST.PID.RANDOM), also from the xdist workers and the server
        # processes the tests start
        session.run("coverage", "run", "-m", "pytest", *args)
    else:
        session.run("python", "-m", "pytest", *args)


@nox.session
def coverage(session: nox.Session) -> None:
    if not list(Path().glob(".coverage.*")):
        if os.environ.get("CI"):
            session.error(f"no coverage data: the tests did not run on Python {COVERAGE_PYTHON}")
        session.skip(f"no coverage data: Python {COVERAGE_PYTHON} is not installed here")
    session.install("coverage[toml]>=7.10")
    session.run("coverage", "combine")
    session.run("coverage", "report", f"--fail-under={COVERAGE_FLOOR}")


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel into a fresh folder and check them with twine (publish-ready), then
    install the wheel into a fresh virtualenv, as the README's quick start does, and start it."""
    session.install("build>=1.2", "twine>=5.1")
    tmp = Path(session.create_tmp())
    out = tmp / "dist"
    for stale in out.glob("*"):
        stale.unlink()
    session.run("python", "-m", "build", "--outdir", str(out))
    session.run("twine", "check", "--strict", *map(str, sorted(out.glob("*"))))
    venv = tmp / "fresh-venv"
    shutil.rmtree(venv, ignore_errors=True)
    session.run("python", "-m", "venv", str(venv))
    (wheel,) = out.glob("*.whl")
    session.run(str(venv / "bin" / "pip"), "install", "--quiet", str(wheel), external=True)
    trio_exec = str(venv / "bin" / "trio-exec")
    session.run(trio_exec, "--version", external=True)
    quick_start = ["--cmd", 'echo|"echo {message}"', "--base-path", "."]
    session.run(trio_exec, "--dry-run", *quick_start, external=True, silent=True)


@nox.session
def conformance(session: nox.Session) -> None:
    """The MCP conformance suite and the official Node clients (npm; needs npm and the registry) against a
    live trio-exec.

    Node 22, the suite, both MCP Inspectors and both TypeScript SDKs are pinned in
    conformance/package-lock.json and installed privately into .nox/conformance-node; every failing check
    must be in conformance/expected-failures.txt; then tests/test_node_clients.py drives the clients.
    Not a default session: it needs Node's npm, which the Python-only gates above do not.
    """
    session.install("-e", ".[test]")
    prefix = Path(".nox/conformance-node").resolve()
    session.run(
        "python",
        "conformance/run.py",
        "--prefix",
        str(prefix),
        "--out",
        ".nox/conformance-results",
        *session.posargs,
    )
    session.run("python", "-m", "pytest", "tests/test_node_clients.py", env={"TRIO_EXEC_NODE_PREFIX": str(prefix)})
