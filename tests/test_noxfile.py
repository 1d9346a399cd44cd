"""The README's test command runs the same matrix as CI (issue 12, item 11)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NOXFILE = Path(__file__).resolve().parent.parent / "noxfile.py"
_PROBE = f"""
import runpy, os, nox
runpy.run_path({str(NOXFILE)!r})
print(os.environ.get("PYENV_VERSION", ""))
print(nox.options.error_on_missing_interpreters)
"""


def _load(env: dict[str, str]) -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    version, strict = out.stdout.split("\n")[-3:-1]
    return version, strict


pytest.importorskip("nox")


@pytest.mark.skipif(shutil.which("pyenv") is None, reason="pyenv is not installed here")
def test_without_pyenv_version_every_pyenv_python_of_the_matrix_is_made_visible() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYENV_VERSION", "CI")}
    version, _ = _load(env)
    assert version, "the noxfile left PYENV_VERSION unset although pyenv has Pythons of the matrix"
    for found in version.split(":"):
        minor = ".".join(found.split(".")[:2])
        assert minor in ("3.10", "3.11", "3.12", "3.13")
        probe = subprocess.run([f"python{minor}", "-c", "import sys; print(sys.version)"],
                               env={**env, "PYENV_VERSION": version}, capture_output=True, text=True)  # fmt: skip
        assert probe.returncode == 0, f"python{minor} is not found through pyenv: {probe.stderr}"
        assert probe.stdout.startswith(found)


def test_a_chosen_pyenv_version_is_kept_and_ci_requires_every_python() -> None:
    version, strict = _load({**os.environ, "PYENV_VERSION": "3.12.1", "CI": "true"})
    assert (version, strict) == ("3.12.1", "True")
    _, local = _load({k: v for k, v in os.environ.items() if k != "CI"})
    assert local == "False"
