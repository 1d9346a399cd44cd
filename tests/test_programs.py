"""Program names: folding, families, the template blacklist (pure; real symlinks in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_exec.programs import DEFAULT_BLACKLIST, blacklist_match, fold_program_name


def test_default_blacklist_is_mcp_secure_exec_s_47_names_in_order() -> None:
    assert len(DEFAULT_BLACKLIST) == 47
    assert DEFAULT_BLACKLIST[:3] == ("rm", "dd", "mkfs")
    assert DEFAULT_BLACKLIST[-3:] == ("sftp", "rbash", "rsh")


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("python3.12", "python"),
        ("python3", "python"),
        ("Python3.11", "python"),
        ("perl5.36", "perl"),
        ("perl5.36.0", "perl"),
        ("pip-3.11", "pip"),
        ("lua5.4", "lua"),
        ("php8.2", "php"),
        ("node18", "node"),
        ("gcc-12", "gcc"),
        ("mkfs.ext4", "mkfs"),
        ("nc.openbsd", "nc"),
        ("bzip2", "bzip"),
        ("ls", "ls"),
        ("md5sum", "md5sum"),
        (".hidden", ".hidden"),
        ("2048", "2048"),
    ],
)
def test_fold_program_name_drops_case_and_version_suffixes(name: str, folded: str) -> None:
    assert fold_program_name(name) == folded


@pytest.mark.parametrize(
    ("program", "entry"),
    [
        ("/usr/bin/python3.12", "python"),
        ("/usr/bin/PYTHON3", "python"),
        ("/usr/bin/perl5.36", "perl"),
        ("/sbin/mkfs.ext4", "mkfs"),
        ("/usr/bin/mawk", "awk"),
        ("/usr/bin/nawk", "awk"),
        ("/usr/bin/gtar", "tar"),
        ("/usr/bin/bsdtar", "tar"),
        ("/usr/bin/nodejs", "node"),
        ("/bin/ksh", "sh"),
        ("/usr/bin/fish", "sh"),
        ("/usr/bin/pwsh", "sh"),
        ("/usr/bin/socat", "ncat"),
        ("/bin/nc.openbsd", "ncat"),
        ("/usr/bin/pypy3", "python"),
        ("/usr/bin/doas", "sudo"),
        ("/usr/bin/nohup", "env"),
        ("/bin/busybox", "busybox"),
        ("/usr/bin/bzip2", "bzip2"),
    ],
)
def test_blacklist_matches_families_versions_and_case(program: str, entry: str) -> None:
    assert blacklist_match(program, DEFAULT_BLACKLIST) == entry


@pytest.mark.parametrize("program", ["/bin/ls", "/usr/bin/grep", "/usr/bin/cat", "/usr/bin/sort", "/usr/bin/date"])
def test_blacklist_does_not_match_ordinary_programs(program: str) -> None:
    assert blacklist_match(program, DEFAULT_BLACKLIST) is None


def test_blacklist_follows_a_symlink_to_a_blacklisted_program(tmp_path: Path) -> None:
    target = tmp_path / "python3.12"
    target.write_text("")
    alias = tmp_path / "harmless-tool"
    alias.symlink_to(target)
    assert blacklist_match(str(alias), DEFAULT_BLACKLIST) == "python"
    assert blacklist_match(str(alias), ["ls"]) is None


def test_blacklist_entries_are_case_insensitive_and_may_be_paths() -> None:
    assert blacklist_match("/bin/rm", [" RM "]) == "RM"
    assert blacklist_match("/usr/bin/curl", ["/usr/local/bin/Curl"]) == "/usr/local/bin/Curl"


def test_multi_call_binaries_match_any_non_empty_blacklist() -> None:
    assert blacklist_match("/bin/busybox", ["rm"]) == "busybox"
    assert blacklist_match("/bin/toybox", ["dd"]) == "toybox"
    assert blacklist_match("/bin/busybox", []) is None
    assert blacklist_match("/bin/busybox", ["", " "]) is None
