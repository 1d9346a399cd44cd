"""The ELF dynamic-symbol reader and the "can run programs" decision, on this machine's real binaries."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from trio_exec.elfsyms import EXEC_SYMBOLS, can_run_programs, imported_symbols


def _which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def test_env_imports_execvp_and_cat_imports_no_exec_function() -> None:
    env, cat = imported_symbols(_which("env")), imported_symbols(_which("cat"))
    assert env is not None
    assert "execvp" in env
    assert cat is not None
    assert "read" in cat  # a real import table, not an empty answer
    assert not cat & EXEC_SYMBOLS


@pytest.mark.parametrize("name", ["cat", "ls", "grep", "wc", "echo", "head", "md5sum", "uname"])
def test_ordinary_programs_cannot_run_programs(name: str) -> None:
    assert not can_run_programs(_which(name))


@pytest.mark.parametrize("name", ["env", "setarch", "flock", "install", "ionice", "nohup"])
def test_wrappers_can_run_programs(name: str) -> None:
    assert can_run_programs(_which(name))


def test_static_binaries_and_non_elf_files_are_unknown_so_may_exec(tmp_path: Path) -> None:
    ldconfig = "/usr/sbin/ldconfig" if os.path.exists("/usr/sbin/ldconfig") else _which("ldconfig")
    assert imported_symbols(ldconfig) is None  # static-pie: no program interpreter
    assert can_run_programs(ldconfig)
    text = tmp_path / "data"
    text.write_text("just text\n")
    assert imported_symbols(str(text)) is None
    assert can_run_programs(str(text))
    truncated = tmp_path / "truncated"
    truncated.write_bytes(Path(_which("cat")).read_bytes()[:200])
    assert imported_symbols(str(truncated)) is None
    assert can_run_programs(str(truncated))
    assert imported_symbols(str(tmp_path / "missing")) is None


def test_a_script_counts_as_its_interpreter(tmp_path: Path) -> None:
    by_cat, by_sh, by_env = tmp_path / "by-cat", tmp_path / "by-sh", tmp_path / "by-env"
    by_cat.write_text(f"#!{_which('cat')}\nhello\n")
    by_sh.write_text("#!/bin/sh\necho hi\n")
    by_env.write_text("#!/usr/bin/env python3\n")
    assert not can_run_programs(str(by_cat))
    assert can_run_programs(str(by_sh))
    assert can_run_programs(str(by_env))


def test_a_symlink_is_judged_by_its_target(tmp_path: Path) -> None:
    link = tmp_path / "innocent"
    link.symlink_to(_which("env"))
    assert can_run_programs(str(link))
