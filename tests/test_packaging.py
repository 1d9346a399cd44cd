"""Packaging facts a release needs (issue 12, item 10); `nox -s package` builds and twine-checks the files."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_the_licence_file_matches_the_declared_licence_and_ships_in_the_sdist() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    included = project["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    assert {"LICENSE", "CHANGELOG.md", "README.md"} <= set(included)


def test_the_changelog_has_an_unreleased_section_and_the_current_version() -> None:
    from trio_exec import __version__

    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert f"## [{__version__}]" in text


def test_package_is_a_default_nox_session() -> None:
    assert '"package"' in (ROOT / "noxfile.py").read_text().split("nox.options.sessions", 1)[1].split("\n", 1)[0]
