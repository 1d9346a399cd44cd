"""Tests for trio_exec.validation: per-kind rules, path containment on real symlinks, the blacklist.

Every template-mode case of the public corpus (SX-*, TE-*) appears here as a unit case; the end-to-end
corpus runner lives elsewhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from trio_exec.errors import Rejected
from trio_exec.paths import PathPolicy
from trio_exec.regexes import compile_error
from trio_exec.validation import check_argv_length, is_sensitive, validate_value
from trio_exec.values import (
    MAX_ARGV,
    MAX_VALUE_BYTES,
    Constraint,
    Kind,
    _is_loader_variable,  # the filter for the benign-text property
    kind_from_name,
)

NO_BASE = PathPolicy()
NO_CONSTRAINT = Constraint()
UNCHECKED = PathPolicy(validate_paths=False)
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def rejected(
    kind: Kind, value: str, *, paths: PathPolicy = NO_BASE, constraint: Constraint = NO_CONSTRAINT
) -> Rejected:
    with pytest.raises(Rejected) as info:
        validate_value("arg", kind, value, paths=paths, constraint=constraint)
    assert info.value.argument == "arg"
    assert info.value.code == "rejected"
    return info.value


def passes(kind: Kind, value: str, *, paths: PathPolicy = NO_BASE, constraint: Constraint = NO_CONSTRAINT) -> bool:
    try:
        validate_value("arg", kind, value, paths=paths, constraint=constraint)
    except Rejected:
        return False
    return True


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """ROOT/base (the base path) next to ROOT/outside, with symlinks inside and leading out."""
    base, outside = tmp_path / "base", tmp_path / "outside"
    (base / "subdir").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    (base / "subdir" / "file.txt").write_text("inside\n")
    (base / "name with spaces.txt").write_text("spaced\n")
    (base / "link").symlink_to("../outside")
    (base / "cfg").symlink_to("../outside")
    (base / "secret_link.txt").symlink_to("../outside/secret.txt")
    (base / "inner").symlink_to("subdir")
    (base / "absolute_out").symlink_to(str(outside))
    (base / "proc_link").symlink_to("/proc/self")
    return base


def policy(base: Path) -> PathPolicy:
    return PathPolicy(base_path=os.path.realpath(base))


# --------------------------------------------------------------------------- kind_from_name


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("path", Kind.PATH),
        ("file", Kind.PATH),
        ("dir", Kind.PATH),
        ("filepath", Kind.PATH),
        ("FILE", Kind.PATH),
        ("input_path", Kind.PATH),
        ("config_file", Kind.PATH),
        ("Out_Dir", Kind.PATH),
        ("verbose_flag", Kind.FLAG),
        ("sort_opt", Kind.FLAG),
        ("regex", Kind.REGEX),
        ("pattern", Kind.REGEX),
        ("regexp", Kind.REGEX),
        ("search_pattern", Kind.REGEX),
        ("pattern_regex", Kind.REGEX),
        ("name_regexp", Kind.REGEX),
        ("message", Kind.PLAIN),
        ("opts", Kind.PLAIN),
        ("flag", Kind.PLAIN),
        ("profile", Kind.PLAIN),
        ("paths", Kind.PLAIN),
    ],
)
def test_kind_comes_from_the_placeholder_name(name: str, kind: Kind) -> None:
    assert kind_from_name(name) is kind


def test_kind_values_are_the_config_spellings() -> None:
    assert [k.value for k in Kind] == ["plain", "path", "flag", "regex", "text", "integer", "enum"]
    assert Kind("text") is Kind.TEXT


# --------------------------------------------------------------------------- every kind

ALL_KINDS = [Kind.PLAIN, Kind.PATH, Kind.FLAG, Kind.REGEX, Kind.TEXT, Kind.INTEGER]

HIDDEN_CHARACTERS = [
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\x1b[31mb", id="escape"),
    pytest.param("a\rb", id="carriage-return"),
    pytest.param("a\x7fb", id="delete"),
    pytest.param("a\x85b", id="c1-next-line"),
    pytest.param("a\x9bb", id="c1-csi"),
    pytest.param("abc\u202dxyz", id="bidi-lro"),
    pytest.param("abc\u202exyz", id="bidi-rlo"),
    pytest.param("a\u2066b", id="bidi-isolate"),
    pytest.param("a\u200eb", id="lrm"),
    pytest.param("a\u061cb", id="arabic-letter-mark"),
    pytest.param("a\u200bb", id="zero-width-space"),
    pytest.param("a\u200db", id="zero-width-joiner"),
    pytest.param("a\u2060b", id="word-joiner"),
    pytest.param("a\ufeffb", id="bom"),
    pytest.param("a\u180eb", id="mongolian-vowel-separator"),
    pytest.param("a\U000e0041b", id="tag-character"),
    pytest.param("a\u00adb", id="soft-hyphen"),
    pytest.param("a\ud800b", id="lone-surrogate"),
]


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("value", HIDDEN_CHARACTERS)
def test_every_kind_rejects_control_and_invisible_characters(kind: Kind, value: str) -> None:
    rejected(kind, value, paths=UNCHECKED)


@pytest.mark.parametrize("kind", [*ALL_KINDS, Kind.ENUM])
def test_every_kind_rejects_the_lone_end_of_options_marker(kind: Kind) -> None:
    error = rejected(kind, "--", constraint=Constraint(enum=("--", "a")))
    assert "'--'" in error.message


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_rejects_values_over_64_kib(kind: Kind) -> None:
    error = rejected(kind, "7" * (MAX_VALUE_BYTES + 1), paths=UNCHECKED)
    assert str(MAX_VALUE_BYTES) in error.message


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    assert passes(Kind.TEXT, "a" * MAX_VALUE_BYTES)
    rejected(Kind.TEXT, "é" * (MAX_VALUE_BYTES // 2 + 1))


@pytest.mark.parametrize("value", ["line one\nline two", "col\tcol"])
def test_text_allows_newline_and_tab(value: str) -> None:
    assert passes(Kind.TEXT, value)


@pytest.mark.parametrize("kind", [Kind.PLAIN, Kind.PATH, Kind.REGEX, Kind.FLAG])
@pytest.mark.parametrize("value", ["a\nb", "a\tb", "a\u2028b"])
def test_other_kinds_reject_newline_tab_and_line_separators(kind: Kind, value: str) -> None:
    rejected(kind, value, paths=UNCHECKED)


def test_text_rejects_line_separators_only_when_they_are_controls() -> None:
    assert passes(Kind.TEXT, "a\u2028b")
    rejected(Kind.TEXT, "a\rb")


# --------------------------------------------------------------------------- plain

PLAIN_ACCEPTS = [
    "hello world",
    "example.txt",
    "readme",
    "café",
    "cafe\u0301",
    "test\u0430",
    "user@example.com",
    "100%",
    "key=value",
    '"quoted"',
    "'single'",
    "2024-01-01",
    "a,b.c:d@e%f+g=h_i",
    "data..v2.txt",
    "subdir/file.txt",
    "a/./b",
    "...",
    "a~b",
    "x-y",
    "",
    "Straße 5",
    "日本語",
    "emoji 🎉",
    "rate 50%off",
    "MY_SETTING=1",
    "path_like=x",
    "a%41b",
]


@pytest.mark.parametrize("value", PLAIN_ACCEPTS)
def test_plain_accepts_ordinary_text(value: str) -> None:
    validate_value("message", Kind.PLAIN, value)


PLAIN_REJECTS = [
    pytest.param("-h", "leading '-'", id="leading-dash"),
    pytest.param("--filter=touch${IFS}x", "leading '-'", id="long-option"),
    pytest.param("cmd1 | cmd2", "'|'", id="pipe"),
    pytest.param("a;b", "';'", id="semicolon"),
    pytest.param("a&b", "'&'", id="ampersand"),
    pytest.param("$(id)", "'$'", id="command-substitution"),
    pytest.param("`id`", "'`'", id="backtick"),
    pytest.param("system('rm -rf /')", "'('", id="parenthesis"),
    pytest.param("a>b", "'>'", id="redirect-out"),
    pytest.param("a<b", "'<'", id="redirect-in"),
    pytest.param("a\\b", "'\\\\'", id="backslash"),
    pytest.param("/etc/passwd", "leading '/'", id="absolute"),
    pytest.param("~/secret", "leading '/' or '~'", id="home"),
    pytest.param("~root", "leading '/' or '~'", id="other-home"),
    pytest.param("a/../b", "'..'", id="dotdot-middle"),
    pytest.param("../x", "'..'", id="dotdot-start"),
    pytest.param("..", "'..'", id="dotdot-alone"),
    pytest.param("x/..", "'..'", id="dotdot-end"),
    pytest.param("LD_PRELOAD=/tmp/evil.so", "LD_PRELOAD", id="ld-preload"),
    pytest.param("ld_library_path=lib", "ld_library_path", id="ld-lowercase"),
    pytest.param("DYLD_INSERT_LIBRARIES=x", "DYLD_INSERT_LIBRARIES", id="dyld"),
    pytest.param("PATH=bin", "PATH", id="path"),
    pytest.param("Path=bin", "Path", id="path-mixed-case"),
    pytest.param("PYTHONPATH=lib", "PYTHONPATH", id="pythonpath"),
    pytest.param("PYTHONSTARTUP=x.py", "PYTHONSTARTUP", id="pythonstartup"),
    pytest.param("NODE_OPTIONS=--require=x", "NODE_OPTIONS", id="node-options"),
    pytest.param("BASH_ENV=x", "BASH_ENV", id="bash-env"),
    pytest.param("ENV=x", "ENV", id="env"),
    pytest.param("PERL5OPT=-Mx", "PERL5OPT", id="perl5opt"),
    pytest.param("RUBYOPT=x", "RUBYOPT", id="rubyopt"),
    pytest.param("IFS=x", "IFS", id="ifs"),
    pytest.param("GCONV_PATH=.", "GCONV_PATH", id="gconv"),
    pytest.param("GLIBC_TUNABLES=x", "GLIBC_TUNABLES", id="glibc-tunables"),
    pytest.param("GIT_SSH_COMMAND=x", "GIT_SSH_COMMAND", id="git-ssh-command"),
    pytest.param("..%2Fetc%2Fpasswd", "percent-decoded", id="encoded-slash"),
    pytest.param("%2e%2e", "percent-decoded", id="encoded-dotdot"),
    pytest.param("%2fetc", "percent-decoded", id="encoded-leading-slash"),
    pytest.param("%25252e%25252e%25252fetc", "percent-decoded", id="triple-encoded"),
    pytest.param("a%0ab", "percent-decoded", id="encoded-newline"),
    pytest.param("%7Eroot", "percent-decoded", id="encoded-tilde"),
    pytest.param("%2525252525252e", "more than 5 times", id="six-layers"),
    pytest.param("a\uff0f\u2025\uff0fb", "NFKC", id="fullwidth-and-leader-dots"),
    pytest.param("\uff0fetc", "NFKC", id="fullwidth-leading-slash"),
]


@pytest.mark.parametrize(("value", "says"), PLAIN_REJECTS)
def test_plain_rejects_options_metacharacters_paths_and_loader_variables(value: str, says: str) -> None:
    error = rejected(Kind.PLAIN, value)
    assert says in error.message


# --------------------------------------------------------------------------- path: syntax

PATH_ACCEPTS_WITHOUT_BASE = [
    "/usr/bin/test",
    "/srv/data/report (final).pdf",
    "/srv/data/name with spaces.txt",
    "/srv/data/data..v2.txt",
    "/srv/data/My%20Document.pdf",
    "/srv/data/café.txt",
    "/srv/data/cafe\u0301.txt",
    "/srv/data/[draft]{1}.md",
    "/srv/data/100%",
    "/srv/./data/",
    "//srv/data",
    "/",
]


@pytest.mark.parametrize("value", PATH_ACCEPTS_WITHOUT_BASE)
def test_path_accepts_absolute_paths_when_no_base_path_is_set(value: str) -> None:
    validate_value("path", Kind.PATH, value)


PATH_SYNTAX_REJECTS = [
    pytest.param("", "empty", id="empty"),
    pytest.param("-rf", "leading '-'", id="leading-dash"),
    pytest.param("~/secret", "leading '~'", id="home"),
    pytest.param("..\\..\\windows\\win.ini", "'\\\\'", id="backslash"),
    pytest.param("file;rm -rf /", "';'", id="semicolon"),
    pytest.param("a|b", "'|'", id="pipe"),
    pytest.param("$(id)", "'$'", id="dollar"),
    pytest.param("a&b", "'&'", id="ampersand"),
    pytest.param("a`b", "'`'", id="backtick"),
    pytest.param("a>b", "'>'", id="redirect"),
    pytest.param("../etc/passwd", "'..'", id="dotdot"),
    pytest.param("a/../../b", "'..'", id="dotdot-middle"),
    pytest.param("a/..", "'..'", id="dotdot-end"),
    pytest.param("..%2Fetc%2Fpasswd", "percent-decoded", id="raw-dotdot-encoded-slash"),
    pytest.param("%2e%2e/etc/passwd", "percent-decoded", id="encoded-dotdot"),
    pytest.param("%2e%2e%2fetc%2fpasswd", "percent-decoded", id="encoded-dotdot-and-slash"),
    pytest.param("%25252e%25252e%25252fetc%25252fpasswd", "percent-decoded", id="triple-encoded"),
    pytest.param("sub%2Fsecret", "directory structure", id="encoded-slash-only"),
    pytest.param("a%00b", "percent-decoded", id="encoded-nul"),
    pytest.param("a%0Ab", "percent-decoded", id="encoded-newline"),
    pytest.param("a%3Bb", "percent-decoded", id="encoded-semicolon"),
    pytest.param("%c0%ae%c0%ae/x", "not valid UTF-8", id="overlong-utf8-dots"),
    pytest.param("%7E/x", "percent-decoded", id="encoded-tilde"),
    pytest.param("%2525252525252e", "more than 5 times", id="six-layers"),
    pytest.param("a\uff0fb", "NFKC", id="fullwidth-solidus"),
    pytest.param("\u2025/etc", "NFKC", id="two-dot-leader"),
    pytest.param("\u2024\u2024/etc", "NFKC", id="one-dot-leaders"),
    pytest.param("\uff0e\uff0e/etc", "NFKC", id="fullwidth-full-stops"),
    pytest.param("\ufe52\ufe52/etc", "NFKC", id="small-full-stops"),
    pytest.param("a/\u2024/b", "NFKC", id="one-dot-leader-component"),
    pytest.param("%EF%BC%8Fetc", "percent-decoded", id="encoded-fullwidth-solidus"),
    pytest.param("a\uff1bb", "NFKC", id="fullwidth-semicolon"),
    pytest.param("a\uff3cb", "NFKC", id="fullwidth-backslash"),
    pytest.param("a\u2215b", "looks like '/'", id="division-slash"),
    pytest.param("a\u2044b", "looks like '/'", id="fraction-slash"),
]


@pytest.mark.parametrize(("value", "says"), PATH_SYNTAX_REJECTS)
def test_path_rejects_syntax_that_could_leave_the_base_path(value: str, says: str) -> None:
    error = rejected(Kind.PATH, value, paths=UNCHECKED)
    assert says in error.message


@pytest.mark.parametrize("value", ["/proc/self/environ", "/proc", "/sys/kernel", "/dev/mem", "//proc/1/mem"])
def test_path_rejects_proc_sys_and_dev_without_a_base_path(value: str) -> None:
    error = rejected(Kind.PATH, value)
    assert "kernel and device files" in error.message


def test_path_rejects_relative_paths_without_a_base_path_and_names_the_remedy() -> None:
    error = rejected(Kind.PATH, "subdir/file.txt")
    assert "--base-path" in error.message


def test_path_checks_stay_on_with_no_validate_paths_but_containment_is_off() -> None:
    assert passes(Kind.PATH, "subdir/file.txt", paths=UNCHECKED)
    assert passes(Kind.PATH, "/proc/self/environ", paths=UNCHECKED)
    rejected(Kind.PATH, "../etc/passwd", paths=UNCHECKED)
    rejected(Kind.PATH, "a;b", paths=UNCHECKED)


def test_path_policy_requires_an_absolute_base_path() -> None:
    with pytest.raises(ValueError, match="absolute"):
        PathPolicy(base_path="relative/base")


# --------------------------------------------------------------------------- path: containment


@pytest.mark.parametrize(
    "value",
    [
        "subdir/file.txt",
        "data..v2.txt",
        "report (final).pdf",
        "name with spaces.txt",
        "inner/file.txt",
        "new/dir/not/yet/there",
        ".",
        "./-starts-with-dash",
        "./~tilde",
        "subdir/",
    ],
)
def test_path_accepts_relative_paths_inside_the_base_path(tree: Path, value: str) -> None:
    validate_value("path", Kind.PATH, value, paths=policy(tree))


def test_path_accepts_absolute_paths_that_resolve_inside_the_base_path(tree: Path) -> None:
    validate_value("path", Kind.PATH, str(tree / "subdir" / "file.txt"), paths=policy(tree))
    validate_value("path", Kind.PATH, str(tree), paths=policy(tree))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("link/secret.txt", id="symlinked-dir"),
        pytest.param("secret_link.txt", id="symlinked-file"),
        pytest.param("link", id="the-link-itself"),
        pytest.param("absolute_out/secret.txt", id="absolute-symlink-target"),
        pytest.param("cfg/newdir/x", id="symlink-then-missing-components"),
        pytest.param("link/new/deeper/file", id="symlink-then-deep-missing-components"),
        pytest.param("proc_link/environ", id="symlink-to-proc"),
    ],
)
def test_path_rejects_symlink_escapes(tree: Path, value: str) -> None:
    error = rejected(Kind.PATH, value, paths=policy(tree))
    assert "outside the base path" in error.message


def test_path_rejects_symlink_escape_through_missing_components(tree: Path) -> None:
    # SX-H-027: base/cfg -> ../outside; mkdir -p cfg/newdir/x would create outside/newdir.
    error = rejected(Kind.PATH, "cfg/newdir/x", paths=policy(tree))
    assert str(os.path.realpath(tree)) in error.message


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("/etc/passwd", id="absolute-outside"),
        pytest.param("/proc/self/environ", id="proc"),
        pytest.param("/dev/null", id="dev"),
    ],
)
def test_path_rejects_absolute_paths_outside_the_base_path(tree: Path, value: str) -> None:
    rejected(Kind.PATH, value, paths=policy(tree))


def test_path_rejects_an_absolute_dotdot_escape_from_the_base_path(tree: Path) -> None:
    # TE-H-029: <BASE>/../outside/secret.txt
    rejected(Kind.PATH, f"{tree}/../outside/secret.txt", paths=policy(tree))


def test_path_rejects_a_sibling_directory_sharing_the_base_path_prefix(tree: Path) -> None:
    sibling = tree.parent / (tree.name + "-other")
    sibling.mkdir()
    rejected(Kind.PATH, str(sibling), paths=policy(tree))


def test_path_rejects_proc_even_when_the_server_would_resolve_it_inside(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /proc/self means the server to realpath but the child to the kernel.
    monkeypatch.chdir(tree)
    assert os.path.realpath("/proc/self/cwd") == os.path.realpath(tree)
    error = rejected(Kind.PATH, "/proc/self/cwd/subdir/file.txt", paths=policy(tree))
    assert "/proc" in error.message


def test_path_allows_a_system_directory_only_when_it_is_the_base_path() -> None:
    validate_value("path", Kind.PATH, "null", paths=PathPolicy(base_path="/dev", special_files=True))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("link%2Fsecret.txt", id="encoded-slash-into-symlink"),
        pytest.param("%2e%2e/outside/secret.txt", id="encoded-dotdot"),
        pytest.param("%25252e%25252e%25252foutside", id="triple-encoded"),
        pytest.param("link\uff0fsecret.txt", id="fullwidth-solidus-into-symlink"),
        pytest.param("\u2025/outside/secret.txt", id="two-dot-leader"),
        pytest.param("\uff4c\uff49\uff4e\uff4b/secret.txt", id="fullwidth-letters-spelling-the-link"),
    ],
)
def test_path_rejects_encoded_and_look_alike_escapes_inside_a_base(tree: Path, value: str) -> None:
    rejected(Kind.PATH, value, paths=policy(tree))


def test_path_outside_message_does_not_reveal_the_symlink_target(tree: Path) -> None:
    error = rejected(Kind.PATH, "link/secret.txt", paths=policy(tree))
    assert "outside/secret" not in error.message


# --------------------------------------------------------------------------- flag

FLAG_ACCEPTS = [
    "-h",
    "-1",
    "-la",
    "-lh",
    "-n5",
    "-R",
    "-F",
    "-C",
    "-V",
    "--verbose",
    "--color=auto",
    "--no-color",
    "--max-count=5",
    "--exclude=*.pyc",
    "--format=%H",
    "--lines=-5",
    "--date=2024-01-01",
    "--include=src/app.py",
    "--pretty",
    "--recursive",
    "--dereference",
    "--files-with-matches",
    "--fixed-strings",
]


@pytest.mark.parametrize("value", FLAG_ACCEPTS)
def test_flag_accepts_ordinary_flags(value: str) -> None:
    validate_value("verbose_flag", Kind.FLAG, value)


FLAG_REJECTS = [
    pytest.param("-x", "-x", id="x"),
    pytest.param("-e", "-e", id="e"),
    pytest.param("-c", "-c", id="c"),
    pytest.param("-o", "-o", id="o"),
    pytest.param("-v", "-v", id="v"),
    pytest.param("-f", "-f", id="f"),
    pytest.param("-i", "-i", id="i"),
    pytest.param("-I", "-I", id="tar-I"),
    pytest.param("-E", "-E", id="gawk-E"),
    pytest.param("-lx", "-x", id="cluster-with-x"),
    pytest.param("-la1e", "-e", id="cluster-with-e"),
    pytest.param("-o/tmp/x", "letters and digits", id="attached-output"),
    pytest.param("-ofile", "-o", id="attached-output-name"),
    pytest.param("-delete", "-delete", id="find-delete"),
    pytest.param("-exec", "-exec", id="find-exec"),
    pytest.param("-execdir", "-execdir", id="find-execdir"),
    pytest.param("-ok", "-ok", id="find-ok"),
    pytest.param("-okdir", "-okdir", id="find-okdir"),
    pytest.param("-fprint", "-fprint", id="find-fprint"),
    pytest.param("-fprintf", "-fprintf", id="find-fprintf"),
    pytest.param("-javaagent:/tmp/evil.jar", "-javaagent", id="java-agent"),
    pytest.param("-agentlib:jdwp=x", "-agentlib", id="java-agentlib"),
    pytest.param("-XX:+UnlockDiagnosticVMOptions", "-XX", id="java-xx"),
    pytest.param("--exec=sh", "--exec", id="exec"),
    pytest.param("--exec", "--exec", id="exec-bare"),
    pytest.param("--EXEC=sh", "--EXEC", id="exec-upper"),
    pytest.param("--eval=1", "--eval", id="eval"),
    pytest.param("--output=/tmp/x", "--output", id="output"),
    pytest.param("--outp=x", "abbreviates --output", id="output-abbreviated"),
    pytest.param("--use-compress-program=sh", "--use-compress-program", id="tar-compress"),
    pytest.param("--use-compress-prog=sh", "abbreviates --use-compress-program", id="tar-compress-abbrev"),
    pytest.param("--compress-program=sh", "--compress-program", id="sort-compress"),
    pytest.param("--checkpoint-action=exec=sh", "--checkpoint-action", id="tar-checkpoint"),
    pytest.param("--to-command=sh", "--to-command", id="tar-to-command"),
    pytest.param("--upload-pack=x", "--upload-pack", id="git-upload-pack"),
    pytest.param("--receive-pack=x", "--receive-pack", id="git-receive-pack"),
    pytest.param("--exec-path=x", "--exec-path", id="git-exec-path"),
    pytest.param("--config=x", "--config", id="config"),
    pytest.param("--pre=x", "--pre", id="rg-pre"),
    pytest.param("--filter=x", "--filter", id="split-filter"),
    pytest.param("--files0-from=x", "--files0-from", id="files0-from"),
    pytest.param("--files", "abbreviates --files", id="files-abbreviates-files0-from"),
    pytest.param("--rsh-command=x", "--rsh-command", id="tar-rsh"),
    pytest.param("--info-script=x", "--info-script", id="tar-info-script"),
    pytest.param("--new-volume-script=x", "--new-volume-script", id="tar-new-volume"),
    pytest.param("--command=x", "--command", id="command"),
    pytest.param("--rcfile=x", "--rcfile", id="bash-rcfile"),
    pytest.param("--init-file=x", "--init-file", id="bash-init-file"),
    pytest.param("--require=x", "--require", id="node-require"),
    pytest.param("--import=x", "--import", id="node-import"),
    pytest.param("--load=x", "--load", id="load"),
    pytest.param("--post-file=x", "--post-file", id="wget-post-file"),
    pytest.param("--output-document=x", "--output-document", id="wget-output-document"),
    pytest.param("--delete", "--delete", id="rsync-delete"),
    pytest.param("--remove-files", "--remove-files", id="tar-remove-files"),
    pytest.param("--in-place", "--in-place", id="sed-in-place"),
    pytest.param("--", "'--'", id="end-of-options"),
    pytest.param("-", "letters and digits", id="lone-dash"),
    pytest.param("---x", "long flag name", id="three-dashes"),
    pytest.param("--=x", "long flag name", id="empty-long-name"),
    pytest.param("verbose", "must start with '-'", id="no-dash"),
    pytest.param("", "must start with '-'", id="empty"),
    pytest.param("-l;id", "letters and digits", id="short-metacharacter"),
    pytest.param("--color=$(id)", "flag value", id="value-metacharacter"),
    pytest.param("--color=a b", "flag value", id="value-space"),
    pytest.param("--name=/etc/passwd", "absolute path", id="value-absolute"),
    pytest.param("--name=../x", "'..'", id="value-dotdot"),
    pytest.param("--name=%2e%2e", "'..'", id="value-encoded-dotdot"),
    pytest.param("--long;x", "long flag name", id="long-metacharacter"),
]


@pytest.mark.parametrize(("value", "says"), FLAG_REJECTS)
def test_flag_rejects_dangerous_or_misshapen_flags(value: str, says: str) -> None:
    error = rejected(Kind.FLAG, value)
    assert says in error.message


# --------------------------------------------------------------------------- regex

REGEX_ACCEPTS = [".*", "[a-z]+", "(foo|bar)", "error|warning", "^start$", r"\d{3}-\d{4}", "a..b", r"\.\./", "[[a]"]


@pytest.mark.parametrize("value", REGEX_ACCEPTS)
def test_regex_accepts_ordinary_patterns(value: str) -> None:
    validate_value("pattern", Kind.REGEX, value)


REGEX_REJECTS = [
    pytest.param("-e", "leading '-'", id="leading-dash"),
    pytest.param("-exec rm", "leading '-'", id="exec"),
    pytest.param("a;b", "';'", id="semicolon"),
    pytest.param("a&b", "'&'", id="ampersand"),
    pytest.param("a`id`", "'`'", id="backtick"),
    pytest.param("a<b", "'<'", id="angle"),
    pytest.param("a\nb", "control", id="newline"),
    pytest.param("../etc", "'../'", id="traversal"),
    pytest.param("(unclosed", "cannot compile", id="unbalanced"),
    pytest.param("a{99999999999}", "cannot compile", id="huge-repeat"),
    pytest.param("(" * 2000 + ")" * 2000, "cannot compile", id="deep-nesting"),
]


@pytest.mark.parametrize(("value", "says"), REGEX_REJECTS)
def test_regex_rejects_leading_dash_metacharacters_traversal_and_bad_patterns(value: str, says: str) -> None:
    error = rejected(Kind.REGEX, value)
    assert says in error.message


def test_compile_error_reports_why_a_config_pattern_does_not_compile() -> None:
    assert compile_error("[a-z]+") is None
    reason = compile_error("(")
    assert reason is not None
    assert "missing )" in reason


# --------------------------------------------------------------------------- text, integer, enum


@pytest.mark.parametrize("value", ["a; b | c $(d) `e` <f> & g \\ h", "(parens)", "~/x", "../x", "line\nline"])
def test_text_accepts_any_printable_text(value: str) -> None:
    validate_value("body", Kind.TEXT, value)


def test_text_rejects_a_leading_dash() -> None:
    rejected(Kind.TEXT, "-rf")


@pytest.mark.parametrize("value", ["0", "42", "-7", "+3", "007"])
def test_integer_accepts_signed_decimal_integers(value: str) -> None:
    validate_value("count", Kind.INTEGER, value)


@pytest.mark.parametrize("value", ["", " 1", "1 ", "0x10", "1_000", "1.5", "١٢", "--1", "1e3", "9" * 101])
def test_integer_rejects_anything_but_decimal_digits(value: str) -> None:
    error = rejected(Kind.INTEGER, value)
    assert "integer" in error.message


@pytest.mark.parametrize(
    ("value", "low", "high", "ok"),
    [("5", 1, 10, True), ("1", 1, 10, True), ("10", 1, 10, True), ("0", 1, 10, False), ("11", 1, 10, False),
     ("-5", None, 0, True), ("5", None, 0, False), ("5", 6, None, False)],
)  # fmt: skip
def test_integer_respects_minimum_and_maximum(value: str, low: int | None, high: int | None, ok: bool) -> None:
    assert passes(Kind.INTEGER, value, constraint=Constraint(minimum=low, maximum=high)) is ok


def test_enum_accepts_only_listed_values_and_lists_them() -> None:
    choices = Constraint(enum=("json", "text"))
    validate_value("format", Kind.ENUM, "json", constraint=choices)
    error = rejected(Kind.ENUM, "JSON", constraint=choices)
    assert "'json', 'text'" in error.message


def test_enum_message_shortens_long_lists() -> None:
    error = rejected(Kind.ENUM, "z", constraint=Constraint(enum=tuple(f"v{i}" for i in range(30))))
    assert "'v9', ..." in error.message
    assert "v10" not in error.message


def test_enum_kind_without_values_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="enum"):
        validate_value("format", Kind.ENUM, "json")


# --------------------------------------------------------------------------- operator constraints


def test_constraints_apply_to_any_kind() -> None:
    assert passes(Kind.PLAIN, "abc", constraint=Constraint(max_length=3))
    rejected(Kind.PLAIN, "abcd", constraint=Constraint(max_length=3))
    rejected(Kind.FLAG, "-la", constraint=Constraint(enum=("-h",)))
    assert passes(Kind.TEXT, "abc123", constraint=Constraint(pattern="[a-z]+[0-9]+"))
    error = rejected(Kind.TEXT, "abc123x", constraint=Constraint(pattern="[a-z]+[0-9]+"))
    assert "[a-z]+[0-9]+" in error.message


def test_an_enum_constraint_does_not_switch_off_the_kind_rules() -> None:
    rejected(Kind.PLAIN, "-rf", constraint=Constraint(enum=("-rf",)))


def test_the_pattern_constraint_must_match_the_whole_value() -> None:
    rejected(Kind.PLAIN, "abc;", constraint=Constraint(pattern="abc"))
    rejected(Kind.PLAIN, "xabc", constraint=Constraint(pattern="abc"))


# --------------------------------------------------------------------------- messages

SECRET_REJECTS = [
    pytest.param(Kind.PLAIN, "hunter2;drop", "hunter2", id="plain-metacharacter"),
    pytest.param(Kind.PLAIN, "LD_PRELOAD=hunter2", "LD_PRELOAD", id="plain-loader-variable"),
    pytest.param(Kind.PLAIN, "hunter2\x1b", "hunter2", id="control"),
    pytest.param(Kind.PLAIN, "hunter2\u202e", "U+202E", id="bidi"),
    pytest.param(Kind.FLAG, "--exec=hunter2", "--exec", id="flag-long"),
    pytest.param(Kind.FLAG, "-hunter", "-e", id="flag-short"),
    pytest.param(Kind.FLAG, "-javaagent:hunter2", "javaagent", id="flag-java"),
    pytest.param(Kind.REGEX, "(hunter2", "hunter2", id="regex-compile"),
    pytest.param(Kind.REGEX, "\\qhunter", "\\q", id="regex-bad-escape"),
    pytest.param(Kind.INTEGER, "123456789", "123456789", id="integer-range"),
    pytest.param(Kind.PATH, "a\u2215hunter2", "2215", id="path-look-alike"),
]


@pytest.mark.parametrize(("kind", "value", "part"), SECRET_REJECTS)
def test_messages_for_sensitive_arguments_never_contain_the_value(kind: Kind, value: str, part: str) -> None:
    constraint = Constraint(maximum=10)
    with pytest.raises(Rejected) as info:
        validate_value("api_token", kind, value, sensitive=True, constraint=constraint, paths=UNCHECKED)
    assert "api_token" in info.value.message
    assert part not in info.value.message
    assert value not in info.value.message
    assert "value not shown" in info.value.message
    with pytest.raises(Rejected) as shown:
        validate_value("api_token", kind, value, constraint=constraint, paths=UNCHECKED)
    assert part in shown.value.message


def test_messages_name_the_argument_the_rule_and_a_remedy() -> None:
    with pytest.raises(Rejected) as info:
        validate_value("path", Kind.PATH, "../etc/passwd", paths=PathPolicy(base_path="/srv/work"))
    assert info.value.message == (
        "argument 'path' ('../etc/passwd'): '..' components are not allowed (they could leave the base "
        "path); give a path inside /srv/work such as 'subdir/file.txt'"
    )
    assert info.value.argument == "path"


def test_messages_quote_a_short_escaped_excerpt_of_the_value() -> None:
    error = rejected(Kind.PLAIN, "x" * 500 + ";")
    assert "(501 characters)" in error.message
    assert "x" * 41 not in error.message
    error = rejected(Kind.PLAIN, "a\x1b[31m\u202eb")
    assert error.message.isprintable()
    assert "\\x1b" in error.message


def test_argv_longer_than_the_limit_is_rejected() -> None:
    check_argv_length(["x"] * MAX_ARGV)
    with pytest.raises(Rejected) as info:
        check_argv_length(["x"] * (MAX_ARGV + 1))
    assert info.value.argument is None
    assert str(MAX_ARGV) in info.value.message


@pytest.mark.parametrize(
    ("name", "keys", "expected"),
    [
        ("api_token", ["token"], True),
        ("API_TOKEN", ["token"], True),
        ("password", ["PASS"], True),
        ("user", ["token", "secret"], False),
        ("user", ["", "  "], False),
        ("user", [], False),
    ],
)
def test_sensitive_names_match_keys_as_case_insensitive_substrings(name: str, keys: list[str], expected: bool) -> None:
    assert is_sensitive(name, keys) is expected


# --------------------------------------------------------------------------- public corpus (template mode)

CORPUS_WITHOUT_FIXTURES = [
    pytest.param(Kind.PATH, "../etc/passwd", False, id="SX-H-001"),
    pytest.param(Kind.PATH, "file\x00.txt", False, id="SX-H-003"),
    pytest.param(Kind.PATH, "..%2Fetc%2Fpasswd", False, id="SX-H-005"),
    pytest.param(Kind.PATH, "%25252e%25252e%25252fetc%25252fpasswd", False, id="SX-H-007"),
    pytest.param(Kind.PATH, "file.txt\nrm -rf /", False, id="SX-H-009"),
    pytest.param(Kind.PATH, "file;rm -rf /", False, id="SX-H-011"),
    pytest.param(Kind.PATH, "..\\..\\windows\\win.ini", False, id="SX-H-014"),
    pytest.param(Kind.PATH, "/tmp/a\u200bb", False, id="SX-H-016"),
    pytest.param(Kind.PATH, "/tmp/\x1b[31mred", False, id="SX-H-018"),
    pytest.param(Kind.PATH, "/tmp/$(id)", False, id="SX-H-019"),
    pytest.param(Kind.PATH, "/tmp/a|b", False, id="SX-H-021"),
    pytest.param(Kind.PLAIN, "--", False, id="SX-H-028"),
    pytest.param(Kind.PLAIN, "-h", False, id="SX-H-030"),
    pytest.param(Kind.PLAIN, "a" * 65537, False, id="SX-H-032"),
    pytest.param(Kind.PLAIN, "system('rm -rf /')", False, id="SX-H-034"),
    pytest.param(Kind.PLAIN, "cmd1 | cmd2", False, id="SX-H-037"),
    pytest.param(Kind.PLAIN, "$(id)", False, id="SX-H-039"),
    pytest.param(Kind.PLAIN, "LD_PRELOAD=/tmp/evil.so", False, id="SX-H-041"),
    pytest.param(Kind.REGEX, "-exec rm", False, id="SX-H-044"),
    pytest.param(Kind.REGEX, "../etc", False, id="SX-H-046"),
    pytest.param(Kind.FLAG, "-x", False, id="SX-H-049"),
    pytest.param(Kind.FLAG, "--exec=sh", False, id="SX-H-051"),
    pytest.param(Kind.FLAG, "--use-compress-program=sh", False, id="SX-H-054"),
    pytest.param(Kind.FLAG, "--output=/tmp/x", False, id="SX-H-056"),
    pytest.param(Kind.PLAIN, "--filter=touch${IFS}/tmp/marker/SX-H-059", False, id="SX-H-059"),
    pytest.param(Kind.PLAIN, "--pre=/tmp/marker/evil.sh", False, id="SX-H-061"),
    pytest.param(Kind.PLAIN, "-javaagent:/tmp/marker/evil.jar", False, id="SX-H-063"),
    pytest.param(Kind.PLAIN, "hello world", True, id="SX-B-127"),
    pytest.param(Kind.PLAIN, "readme", True, id="SX-B-129"),
    pytest.param(Kind.PLAIN, "test\u0430", True, id="SX-B-131"),
    pytest.param(Kind.PLAIN, "café", True, id="SX-B-134"),
    pytest.param(Kind.PLAIN, "user@example.com", True, id="SX-B-136"),
    pytest.param(Kind.FLAG, "-h", True, id="SX-B-139"),
    pytest.param(Kind.PATH, "/usr/bin/test", True, id="SX-B-142"),
    pytest.param(Kind.REGEX, ".*", True, id="SX-B-145"),
    pytest.param(Kind.FLAG, "--verbose", True, id="TE-B-001"),
    pytest.param(Kind.REGEX, "error|warning", True, id="TE-B-003"),
    pytest.param(Kind.PLAIN, '"quoted"', True, id="TE-B-006"),
    pytest.param(Kind.PLAIN, "~/secret", False, id="TE-H-008"),
    pytest.param(Kind.PLAIN, "a/../b", False, id="TE-H-010"),
    pytest.param(Kind.PLAIN, "NODE_OPTIONS=--require=x", False, id="TE-H-012"),
    pytest.param(Kind.PLAIN, "PYTHONPATH=lib", False, id="TE-H-014"),
    pytest.param(Kind.PLAIN, "abc\u202dxyz", False, id="TE-H-016"),
    pytest.param(Kind.FLAG, "--", False, id="TE-H-018"),
    pytest.param(Kind.FLAG, "--pre=x", False, id="TE-H-020"),
    pytest.param(Kind.FLAG, "-e", False, id="TE-H-022"),
    pytest.param(Kind.REGEX, "-e", False, id="TE-H-025"),
    pytest.param(Kind.REGEX, "a`id`", False, id="TE-H-027"),
]


@pytest.mark.parametrize(("kind", "value", "allowed"), CORPUS_WITHOUT_FIXTURES)
def test_corpus_template_cases_without_a_base_path(kind: Kind, value: str, allowed: bool) -> None:
    assert passes(kind, value) is allowed


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        pytest.param("/etc/passwd", False, id="SX-H-025"),
        pytest.param("cfg/newdir/x", False, id="SX-H-027"),
        pytest.param("name with spaces.txt", True, id="TE-B-004"),
        pytest.param("<BASE>/../outside/secret.txt", False, id="TE-H-029"),
        pytest.param("link/secret.txt", False, id="TE-H-031"),
    ],
)
def test_corpus_template_cases_with_a_base_path(tree: Path, value: str, allowed: bool) -> None:
    value = value.replace("<BASE>", str(tree))
    assert passes(Kind.PATH, value, paths=policy(tree)) is allowed


# --------------------------------------------------------------------------- properties

ANY_VALUE = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("-/.~%2eF\x00\x01\x1b\n\t\x7f\x85\u202e\u200b ab="), max_size=20),
    st.builds(lambda tail: "-" + tail, st.text(max_size=10)),
)


@pytest.mark.parametrize("kind", [Kind.PLAIN, Kind.PATH, Kind.REGEX, Kind.TEXT])
@PROPERTY_SETTINGS
@given(value=ANY_VALUE)
def test_values_that_pass_never_start_with_a_dash_nor_hold_controls(kind: Kind, value: str) -> None:
    if not passes(kind, value, paths=UNCHECKED):
        return
    assert not value.startswith("-")
    assert "\x00" not in value
    allowed = "\n\t" if kind is Kind.TEXT else ""
    assert not any((ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F) and c not in allowed for c in value), (
        "control character passed"
    )
    assert "\u202e" not in value
    assert "\u200b" not in value


@PROPERTY_SETTINGS
@given(value=ANY_VALUE)
def test_integers_that_pass_are_plain_decimal_numbers(value: str) -> None:
    if not passes(Kind.INTEGER, value):
        return
    assert re.fullmatch(r"[+-]?[0-9]+", value)


@PROPERTY_SETTINGS
@given(value=st.one_of(ANY_VALUE, st.from_regex(r"--?[a-zA-Z0-9=_-]{0,8}", fullmatch=True)))
def test_flags_that_pass_are_shaped_like_flags_and_hold_no_dangerous_short_option(value: str) -> None:
    if not passes(Kind.FLAG, value):
        return
    assert re.fullmatch(r"-[A-Za-z0-9]+|--[A-Za-z0-9][A-Za-z0-9_-]*(=.*)?", value, flags=re.DOTALL)
    if not value.startswith("--"):
        assert not set(value[1:]) & set("ecxovfiEI")
    assert value.split("=")[0].lower() not in {"--exec", "--output", "--eval", "--pre", "--filter"}


# Benign plain text: letters, digits, spaces and .,:@%+=_ (no '/', '-', '~' or metacharacters).
# Filtered out, because they are refused on purpose and tested above: the lone component '..',
# percent-escapes that decode to something (percent-encoded traversal is its own rule), and
# NAME=value for a loader/interpreter variable such as 'env=' or 'path=' (the module's own table).
BENIGN_PLAIN = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,:@%+=_"), max_size=30)


@PROPERTY_SETTINGS
@given(value=BENIGN_PLAIN)
def test_plain_never_refuses_benign_text(value: str) -> None:
    assume(value != "..")
    assume(unquote(value) == value)
    assignment = re.match(r"([A-Za-z_][A-Za-z0-9_]*)=", value)
    assume(assignment is None or not _is_loader_variable(assignment.group(1)))
    validate_value("message", Kind.PLAIN, value)


@pytest.fixture(scope="module")
def symlink_base(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A base with real symlinks: some stay inside, some lead out; plus a sibling 'outside'."""
    root = tmp_path_factory.mktemp("containment")
    base, outside = root / "base", root / "outside"
    (base / "a" / "b").mkdir(parents=True)
    (outside / "a").mkdir(parents=True)
    (base / "link").symlink_to("../outside")
    (base / "a" / "link").symlink_to("..")  # inside: base/a/link -> base
    (base / "b").symlink_to("a/b")
    (base / "a" / "b" / "link").symlink_to("../../../outside/a")
    (base / "ef").symlink_to(str(outside))
    (base / "loop").symlink_to("loop")
    return os.path.realpath(base)


PATH_TOKENS = st.sampled_from(
    [".", "/", "a", "b", "link", "%", "2", "e", "f", "F", "\\", "..", "loop", "ef", " ", "~",
     "\uff0f", "\u2024", "\u2025", "\uff0e", "\u2215", "\uff4c\uff49\uff4e\uff4b", "%2f", "%2e", "%25"]
)  # fmt: skip
# Components built from the tokens and joined with '/', so that walks through the symlinks are common.
PATH_VALUES = st.builds(
    lambda absolute, parts: ("/" if absolute else "") + "/".join(parts),
    st.booleans(),
    st.lists(
        st.one_of(
            st.sampled_from(["a", "b", "link", "loop", "ef", ".", ""]),
            st.lists(PATH_TOKENS, min_size=1, max_size=3).map("".join),
        ),
        max_size=6,
    ),
)


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=PATH_VALUES)
def test_paths_that_pass_always_resolve_inside_the_base_path(symlink_base: str, value: str) -> None:
    if not passes(Kind.PATH, value, paths=PathPolicy(base_path=symlink_base)):
        return
    resolved = os.path.realpath(os.path.join(symlink_base, value))
    assert os.path.commonpath([resolved, symlink_base]) == symlink_base
    assert ".." not in value.split("/")


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(alphabet=st.sampled_from("abcxyzABC0123456789 ()_.+=@,"), min_size=1, max_size=20).filter(
        lambda n: n not in {".", ".."}
    )
)
def test_path_accepts_benign_file_names_inside_the_base_path(name: str) -> None:
    validate_value("file", Kind.PATH, f"subdir/{name}", paths=PathPolicy(base_path="/srv/work"))
