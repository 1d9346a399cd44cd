"""shell_execute parsing, confinement, program names, ALLOW_PATTERNS and the per-program policies.

Pure tests: real temporary directories and symlinks, no processes. The end-to-end corpus runner
(tests/test_corpus.py) exercises the same cases through the server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_exec import allow_patterns
from trio_exec.allow_patterns import check_allow_pattern, pattern_refused_examples
from trio_exec.argv import MAX_STAGES, CommandPlan, Stage, is_operator_element, parse_command
from trio_exec.commands import check_plan, check_stage
from trio_exec.confinement import confine_directory, confine_target
from trio_exec.errors import Rejected
from trio_exec.programs import (
    DEFAULT_BLACKLIST,
    REFUSED_FAMILY,
    blacklist_names,
    canonical_program,
    is_refused_program,
    program_allowed,
)
from trio_exec.values import MAX_ARGV, MAX_VALUE_BYTES

CORPUS = Path(__file__).parent / "corpus" / "public_cases.json"


# --------------------------------------------------------------------------- fixtures and helpers


def _make_tree(root: Path) -> str:
    """ROOT/base (the base path, with ordinary files) and ROOT/outside (with a secret), as the corpus uses."""
    base, outside = root / "base", root / "outside"
    for folder in (base / "sub", base / "dir", outside, root / "marker"):
        folder.mkdir(parents=True, exist_ok=True)
    for name in ("f", "input", "in.txt", "file.txt", "a.txt", "b.txt", "x.tar", "a.tar", "Makefile", "dir/f.txt"):
        (base / name).write_text("b\na\n")
    (outside / "secret.txt").write_text("secret\n")
    link = base / "link.txt"
    if not link.is_symlink():
        link.symlink_to("../outside/secret.txt")
    return os.path.realpath(base)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A shared base path for tests that only read it (also usable by hypothesis tests)."""
    return _make_tree(tmp_path_factory.mktemp("tree"))


@pytest.fixture
def base(tmp_path: Path) -> str:
    """A fresh base path for tests that create symlinks and files."""
    return _make_tree(tmp_path)


def _outside(base: str) -> str:
    return os.path.join(os.path.dirname(base), "outside")


def _fill(argv: Sequence[str], base: str) -> list[str]:
    out = _outside(base)
    return [arg.replace("<OUT>", out) for arg in argv]


def _check(argv: Sequence[str], base: str, *, dangerous: bool = False, directory: str | None = None) -> None:
    check_stage(Stage(tuple(argv)), base_path=base, allow_dangerous=dangerous, directory=directory)


def _rejected(argv: Sequence[str], base: str, *, dangerous: bool = False) -> str:
    with pytest.raises(Rejected) as info:
        _check(argv, base, dangerous=dangerous)
    assert info.value.argument == "command"
    return info.value.message


def _parse_error(command: Sequence[str], base: str) -> str:
    with pytest.raises(Rejected) as info:
        parse_command(command, base_path=base)
    assert info.value.argument == "command"
    return info.value.message


# --------------------------------------------------------------------------- parsing: stages and redirections


def test_a_plain_command_is_one_stage_without_redirections(tree: str) -> None:
    plan = parse_command(["ls", "-l", "sub"], base_path=tree)
    assert plan == CommandPlan(stages=(Stage(("ls", "-l", "sub")),), stdin_path=None, stdout_path=None, append=False)


def test_a_discrete_pipe_joins_two_stages(tree: str) -> None:
    plan = parse_command(["echo", "hello\nworld", "|", "grep", "world"], base_path=tree)
    assert plan.stages == (Stage(("echo", "hello\nworld")), Stage(("grep", "world")))


def test_three_stages_keep_their_order(tree: str) -> None:
    plan = parse_command(["cat", "f", "|", "sort", "-r", "|", "uniq", "-c"], base_path=tree)
    assert [stage.argv for stage in plan.stages] == [("cat", "f"), ("sort", "-r"), ("uniq", "-c")]


def test_input_redirection_feeds_an_existing_file_inside_the_base(tree: str) -> None:
    plan = parse_command(["sort", "<", "input", "|", "uniq"], base_path=tree)
    assert plan.stdin_path == os.path.join(tree, "input")
    assert plan.stages == (Stage(("sort",)), Stage(("uniq",)))


def test_output_redirection_truncates_and_double_angle_appends(tree: str) -> None:
    plan = parse_command(["echo", "x", ">", "out.txt"], base_path=tree)
    assert (plan.stdout_path, plan.append) == (os.path.join(tree, "out.txt"), False)
    plan = parse_command(["echo", "x", ">>", "sub/log.txt"], base_path=tree)
    assert (plan.stdout_path, plan.append) == (os.path.join(tree, "sub", "log.txt"), True)


def test_both_redirections_in_one_pipeline(tree: str) -> None:
    plan = parse_command(["sort", "<", "in.txt", "|", "uniq", ">", "out.txt"], base_path=tree)
    assert plan.stdin_path == os.path.join(tree, "in.txt")
    assert plan.stdout_path == os.path.join(tree, "out.txt")


def test_redirections_may_stand_before_the_program_as_in_a_shell(tree: str) -> None:
    plan = parse_command(["<", "in.txt", "sort", "-r"], base_path=tree)
    assert plan.stages == (Stage(("sort", "-r")),)


@pytest.mark.parametrize(
    "operator",
    [";", ";;", ";&", "&&", "||", "&", "|&", "2>", "2>>", "2>&1", ">&2", ">&", "<&", "<&-", "&>", "&>>",
     "1>", "0<", ">|", "<>", "<<", "<<-", "<<<"],
)  # fmt: skip
def test_discrete_shell_operators_are_refused_with_their_index(tree: str, operator: str) -> None:
    message = _parse_error(["echo", "hello", operator, "ls"], tree)
    assert message.startswith(f"command[2] {operator!r}:")
    assert is_operator_element(operator)


@pytest.mark.parametrize(
    ("operator", "advice"),
    [(";", "one call per command"), ("&&", "exit code"), ("2>&1", "stderr is returned separately"),
     ("<<<", "'stdin' argument"), ("&", "background"), ("|&", "use '|'")],
)  # fmt: skip
def test_refused_operators_say_what_to_do_instead(tree: str, operator: str, advice: str) -> None:
    assert advice in _parse_error(["echo", "x", operator, "y"], tree)


@pytest.mark.parametrize(
    "command",
    [["echo", "a;b"], ["echo", "a|b"], ["echo", "text|", "id"], ["echo", "a && b"], ["echo", ">out"],
     ["echo", "2>&1x"], ["echo", "$(id)", "`id`"], ["find", ".", "(", "-name", "a", "-o", "-name", "b", ")"]],
)  # fmt: skip
def test_operators_inside_a_larger_element_are_data(tree: str, command: list[str]) -> None:
    assert parse_command(command, base_path=tree).stages == (Stage(tuple(command)),)


def test_empty_and_whitespace_elements_reach_the_program_unchanged(tree: str) -> None:
    command = ["printf", "%s|", "a b", "", "c"]
    assert parse_command(command, base_path=tree).stages[0].argv == tuple(command)


@pytest.mark.parametrize(
    ("command", "index", "rule"),
    [(["|", "ls"], 0, "both sides"), (["ls", "|"], 1, "both sides"), (["ls", "|", "|", "wc"], 2, "both sides"),
     (["<", "in.txt"], 1, "no program"), (["ls", ">"], 1, "file name"), (["ls", ">", "|", "wc"], 1, "file name"),
     (["cat", "<", ">", "x"], 1, "file name"), (["ls", "|", "cat", "<", "in.txt"], 3, "first stage"),
     (["ls", ">", "o", "|", "wc"], 3, "last stage"), (["cat", "<", "f", "<", "input"], 3, "only one '<'"),
     (["echo", ">", "a", ">>", "b"], 3, "only one '>'")],
)  # fmt: skip
def test_misplaced_pipes_and_redirections_are_refused_with_the_index(
    tree: str, command: list[str], index: int, rule: str
) -> None:
    message = _parse_error(command, tree)
    assert message.startswith(f"command[{index}]")
    assert rule in message


@pytest.mark.parametrize("program", ["ls -la", "ls|", "/usr/bin/python3.11", "../bin/x", "-rf", "", "a;b", "ls\n"])
def test_a_program_must_be_a_bare_name(tree: str, program: str) -> None:
    assert "bare name" in _parse_error([program, "x"], tree)


def test_the_program_of_every_stage_is_checked_for_shape(tree: str) -> None:
    assert _parse_error(["ls", "|", "/bin/sh", "-c", "id"], tree).startswith("command[2]")


@pytest.mark.parametrize("program", ["python3.12", "g++", "x86_64-linux-gnu-gcc", "_tool", "7z"])
def test_ordinary_program_names_parse(tree: str, program: str) -> None:
    assert parse_command([program], base_path=tree).stages[0].argv == (program,)


def test_size_limits_and_invalid_elements_are_refused(tree: str) -> None:
    assert "empty" in _parse_error([], tree)
    assert f"limit of {MAX_ARGV}" in _parse_error(["echo"] * (MAX_ARGV + 1), tree)
    assert "NUL" in _parse_error(["echo", "a\x00b"], tree)
    assert f"{MAX_VALUE_BYTES} bytes" in _parse_error(["echo", "x" * (MAX_VALUE_BYTES + 1)], tree)
    assert "must be a string" in _parse_error(["echo", 3], tree)  # type: ignore[list-item]
    too_many = [part for _ in range(MAX_STAGES + 1) for part in ("cat", "|")][:-1]
    assert f"more than {MAX_STAGES}" in _parse_error(too_many, tree)


# --------------------------------------------------------------------------- confinement


def test_relative_targets_resolve_against_the_base_path(base: str) -> None:
    assert confine_target("sub/new.txt", base) == os.path.join(base, "sub", "new.txt")


def test_absolute_targets_inside_the_base_are_allowed(base: str) -> None:
    assert confine_target(os.path.join(base, "f"), base) == os.path.join(base, "f")


@pytest.mark.parametrize(
    "target", ["../escape.txt", "sub/../../escape.txt", "/tmp/trio-exec-escape.txt", "/etc/passwd"]
)
def test_targets_outside_the_base_are_refused(base: str, target: str) -> None:
    with pytest.raises(Rejected) as info:
        confine_target(target, base)
    assert info.value.argument == "command"


def test_a_final_symlink_is_refused_even_when_it_points_inside(base: str) -> None:
    os.symlink("f", os.path.join(base, "inner-link"))
    for target in ("inner-link", "link.txt"):
        with pytest.raises(Rejected, match=r"symbolic link|outside"):
            confine_target(target, base)
    with pytest.raises(Rejected, match="symbolic link"):
        confine_target("inner-link", base, reading=True)


def test_a_symlinked_directory_leading_outside_is_refused(base: str) -> None:
    os.symlink(_outside(base), os.path.join(base, "out-dir"))
    with pytest.raises(Rejected, match="outside the base path"):
        confine_target("out-dir/new.txt", base)


def test_a_final_symlink_cannot_hide_a_parent_outside(base: str) -> None:
    outside = _outside(base)
    os.symlink(outside, os.path.join(base, "out-dir"))
    os.symlink(os.path.join(base, "f"), os.path.join(outside, "back"))  # resolves inside the base again
    with pytest.raises(Rejected, match="file inside the base path"):
        confine_target("out-dir/back", base)


def test_a_symlinked_directory_inside_the_base_resolves_to_the_real_directory(base: str) -> None:
    os.symlink("sub", os.path.join(base, "alias"))
    assert confine_target("alias/new.txt", base) == os.path.join(base, "sub", "new.txt")


def test_a_new_file_needs_an_existing_directory(base: str) -> None:
    assert confine_target("new.txt", base) == os.path.join(base, "new.txt")
    with pytest.raises(Rejected, match="directory does not exist"):
        confine_target("missing/new.txt", base)


def test_input_files_must_exist_and_be_regular(base: str) -> None:
    assert confine_target("input", base, reading=True) == os.path.join(base, "input")
    with pytest.raises(Rejected, match="does not exist"):
        confine_target("missing.txt", base, reading=True)
    with pytest.raises(Rejected, match="not a regular file"):
        confine_target("sub", base, reading=True)


def test_fifos_and_devices_are_refused(base: str) -> None:
    os.mkfifo(os.path.join(base, "pipe"))
    with pytest.raises(Rejected, match="not a regular file"):
        confine_target("pipe", base)
    with pytest.raises(Rejected):
        confine_target("/dev/zero", base, reading=True)


def test_a_name_the_file_system_cannot_check_is_refused_cleanly(base: str) -> None:
    with pytest.raises(Rejected, match="cannot be checked"):
        confine_target("x" * 300, base)  # ENAMETOOLONG
    with pytest.raises(Rejected, match="directory does not exist"):
        confine_target("f/child", base)  # a file used as a directory


@pytest.mark.parametrize("target", ["sub/", ".", "sub/.", "a\nb", "a\x1bb", "-x", "~/x", "%2e%2e/x", ""])
def test_malformed_targets_are_refused(base: str, target: str) -> None:
    with pytest.raises(Rejected):
        confine_target(target, base)


@pytest.mark.parametrize(
    "target", [".git/config", ".git/hooks/post-checkout", "sub/.GIT/config", ".git", ".gitconfig", ".config/git/config"]
)
def test_writing_git_configuration_is_refused(base: str, target: str) -> None:
    os.makedirs(os.path.join(base, os.path.dirname(target)), exist_ok=True)
    with pytest.raises(Rejected, match="git"):
        confine_target(target, base)


def test_reading_git_configuration_is_allowed(base: str) -> None:
    os.makedirs(os.path.join(base, ".git"))
    Path(base, ".git", "config").write_text("[core]\n")
    assert confine_target(".git/config", base, reading=True) == os.path.join(base, ".git", "config")


def test_parse_confines_targets_and_names_the_element(base: str) -> None:
    message = _parse_error(["printf", "changed", ">", "../executor-outside.txt"], base)
    assert "command[3]" in message
    assert not os.path.exists(os.path.join(os.path.dirname(base), "executor-outside.txt"))
    assert "command[2]" in _parse_error(["cat", "<", "link.txt"], base)


def test_the_directory_argument_defaults_to_the_base_path(base: str) -> None:
    assert confine_directory(None, base) == base
    assert confine_directory("sub", base) == os.path.join(base, "sub")
    assert confine_directory(os.path.join(base, "dir"), base) == os.path.join(base, "dir")


@pytest.mark.parametrize("directory", ["/", "/dev", "..", "missing", "f", "out-dir", ""])
def test_directories_outside_the_base_or_missing_are_refused(base: str, directory: str) -> None:
    os.symlink(_outside(base), os.path.join(base, "out-dir"))
    with pytest.raises(Rejected) as info:
        confine_directory(directory, base)
    assert info.value.argument == "directory"


def test_a_relative_base_path_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="absolute"):
        confine_directory(None, "relative/base")


# --------------------------------------------------------------------------- program names


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("gawk", "awk"), ("mawk", "awk"), ("nawk", "awk"), ("gfind", "find"), ("bfind", "find"), ("gtar", "tar"),
     ("bsdtar", "tar"), ("gsort", "sort"), ("python3.12", "python"), ("/usr/bin/GAWK", "awk"), ("ripgrep", "rg"),
     ("gawk-5.1.0", "awk"), ("git", "git"), ("gsed", "sed")],
)  # fmt: skip
def test_program_names_fold_to_their_policy_name(name: str, canonical: str) -> None:
    assert canonical_program(name) == canonical


@pytest.mark.parametrize(
    "name",
    ["sh", "bash", "dash", "zsh", "ksh", "fish", "busybox", "python", "python3.12", "/usr/bin/perl5.36", "ruby",
     "node", "nodejs", "lua", "php", "env", "xargs", "timeout", "nice", "nohup", "setsid", "stdbuf", "strace",
     "gdb", "sed", "gsed", "ed", "ex", "vi", "vim.basic", "less", "more", "man", "ld-linux-x86-64.so.2", "SSH"],
)  # fmt: skip
def test_the_refused_family_is_recognised_under_any_spelling(name: str) -> None:
    assert is_refused_program(name)


@pytest.mark.parametrize(
    "name", ["git", "find", "awk", "gawk", "tar", "sort", "split", "rg", "make", "ls", "grep", "cat"]
)
def test_policed_and_ordinary_programs_are_not_in_the_refused_family(name: str) -> None:
    assert not is_refused_program(name)
    assert canonical_program(name) not in REFUSED_FAMILY


def test_a_refused_program_is_refused_in_any_stage_unless_dangerous_is_allowed(tree: str) -> None:
    assert "refused" in _rejected(["python3.11", "-c", "print(1)"], tree)
    plan = parse_command(["echo", "x", "|", "bash"], base_path=tree)
    with pytest.raises(Rejected, match="stage 2 of 2"):
        check_plan(plan, base_path=tree, allow_dangerous=False)
    check_plan(plan, base_path=tree, allow_dangerous=True)


def test_policies_apply_even_when_dangerous_programs_are_allowed(tree: str) -> None:
    assert "-exec" in _rejected(["find", ".", "-exec", "id", "{}", "+"], tree, dangerous=True)


def test_a_single_stage_plan_keeps_the_stage_message(tree: str) -> None:
    plan = parse_command(["find", ".", "-exec", "id", "{}", "+"], base_path=tree)
    with pytest.raises(Rejected) as info:
        check_plan(plan, base_path=tree, allow_dangerous=False)
    assert info.value.message.startswith("find argument 2")


def test_the_pinned_binarys_symlink_target_is_policed_too(base: str) -> None:
    less = Path(base).parent / "less"
    less.write_text("")
    os.symlink(less, os.path.join(base, "show"))
    with pytest.raises(Rejected, match="less is a shell"):
        check_stage(Stage(("show", "x")), base_path=base, allow_dangerous=False, program_path=f"{base}/show")
    gawk = Path(base).parent / "gawk"
    gawk.write_text("")
    os.symlink(gawk, os.path.join(base, "my-awk"))
    with pytest.raises(Rejected, match="awk policy"):
        check_stage(Stage(("my-awk", "-f", "x")), base_path=base, allow_dangerous=False, program_path=str(gawk))


def test_a_multi_call_binary_is_policed_by_its_applet_name(base: str) -> None:
    busybox = Path(base).parent / "busybox"
    busybox.write_text("")
    os.symlink(busybox, os.path.join(base, "awk"))
    stage = Stage(("awk", "{print $1}"))
    check_stage(stage, base_path=base, allow_dangerous=False, program_path=os.path.join(base, "awk"))
    plan = parse_command(["awk", 'BEGIN { system("id") }'], base_path=base)
    with pytest.raises(Rejected, match="system"):
        check_plan(plan, base_path=base, allow_dangerous=False, program_paths={"awk": os.path.join(base, "awk")})


@pytest.mark.parametrize(
    "name", ["setarch", "linux32", "linux64", "i386", "x86_64", "uname26", "logsave", "ssh-agent", "fakeroot",
             "dbus-run-session", "runcon", "rlwrap", "xvfb-run", "chronic", "ifne", "pdb3", "pdb3.11", "pydoc3",
             "flock", "ionice", "chrt", "taskset", "unshare", "nsenter", "script", "watch", "choom", "eatmydata",
             "/usr/bin/x86_64", "X86_64", "faketime", "torsocks", "cgexec", "mpirun"],
)  # fmt: skip
def test_wrappers_that_run_their_arguments_are_refused(name: str) -> None:
    assert is_refused_program(name)


@pytest.mark.parametrize("name", ["uname", "x", "i", "linux", "ls", "cat", "md5sum", "id"])
def test_names_the_wrappers_fold_onto_are_not_refused(name: str) -> None:
    assert not is_refused_program(name)


def _behaviour(argv: list[str], binary: str, base: str) -> None:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed")
    if argv[0] != binary:  # an unlisted wrapper: the binary under a name (and real path) the family does not know
        path = str(shutil.copy(path, Path(base).parent / argv[0]))
    check_stage(Stage(tuple(argv)), base_path=base, allow_dangerous=False, program_path=path,
                search_path=os.environ.get("PATH", os.defpath))  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "binary", "index", "named"),
    [(["launcher", "sh", "-c", "id"], "env", 1, "sh"), (["launcher", "-i", "FOO=1", "python3"], "env", 3, "python3"),
     (["launcher", "-w", "1", "lock", "touch", "x"], "flock", 4, "touch"), (["launcher", "sh -c id"], "env", 1, "sh"),
     (["install", "-s", "--strip-program=sh", "a", "b"], "install", 2, "sh"),
     (["install", "-s", "--strip-program", "sh", "a", "b"], "install", 3, "sh"),
     (["launcher", "/bin/sh"], "env", 1, "/bin/sh")],
)  # fmt: skip
def test_an_unlisted_program_that_can_exec_may_not_be_handed_a_program(
    argv: list[str], binary: str, index: int, named: str, base: str
) -> None:
    with pytest.raises(
        Rejected, match=rf"can run other programs and argument {index} .* names one \({re.escape(named)}\)"
    ):
        _behaviour(argv, binary, base)


@pytest.mark.parametrize(
    ("argv", "binary"),
    [(["echo", "ls"], "echo"), (["grep", "python", "f.txt"], "grep"), (["ls", "-la"], "ls"),
     (["cat", "bash.txt"], "cat"), (["wc", "-l", "a;b"], "wc"), (["cat", "sh"], "cat"),
     (["launcher", "-i", "FOO=1"], "env"), (["install", "-m", "644", "a", "b"], "install"),
     (["sort", "-k", "2", "sh"], "sort")],  # sort can exec (--compress-program) but has a policy
)  # fmt: skip
def test_the_behaviour_rule_does_not_over_block(argv: list[str], binary: str, base: str) -> None:
    _behaviour(argv, binary, base)


def test_the_behaviour_rule_is_off_with_allow_dangerous(base: str) -> None:
    path = str(shutil.copy(shutil.which("env") or "/usr/bin/env", Path(base).parent / "launcher"))
    stage = Stage(("launcher", "sh"))
    check_stage(stage, base_path=base, allow_dangerous=True, program_path=path, search_path="/usr/bin:/bin")
    with pytest.raises(Rejected, match="can run other programs"):
        check_stage(stage, base_path=base, allow_dangerous=False, program_path=path, search_path="/usr/bin:/bin")


def test_program_allowed_takes_exact_names_or_full_pattern_matches() -> None:
    patterns = [re.compile("g?awk"), re.compile(r"x86_64-\w+")]
    assert program_allowed("ls", frozenset({"ls"}), [])
    assert program_allowed("gawk", frozenset(), patterns)
    assert program_allowed("awk", frozenset(), patterns)
    assert not program_allowed("xawk", frozenset(), patterns)
    assert not program_allowed("gawkx", frozenset(), patterns)
    assert not program_allowed("ls -la", frozenset({"ls -la"}), [])
    assert not program_allowed("/bin/ls", frozenset({"/bin/ls"}), [])


# --------------------------------------------------------------------------- ALLOW_PATTERNS


@pytest.mark.parametrize(
    "pattern",
    ["git", "g?awk", "[a-z]+", r"x86_64-\w+", r"python3\.12", "(?:foo|bar)-[0-9]+", r"\d+", "a{1,3}", "^ls$",
     "(?!x)a", r"(a)\1", "(a)?(?(1)b|c)", "(?i)[A-Z]+", "a*?"],
)  # fmt: skip
def test_narrow_allow_patterns_are_accepted(pattern: str) -> None:
    assert check_allow_pattern(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [(".*", "any character"), (r"\S+", r"\S"), ("[^a]+", "any character"), ("[^ab]+", "negated"),
     ("a|/bin/sh", "'/'"), ("(?:.*/)?python[0-9.]*", "any character"), ("[!-~]+", "'!'"), (r"\s", r"\s"),
     (r"\W", r"\W"), (r"\D", r"\D"), (r"ls\ -la", "' '"), ("x;y", "';'"), ("[a-z/]", "'/'"), (r"ls\x2f", "'/'"),
     ("(a)?(?(1)b|/)", "'/'"), ("(?=/)a", "'/'"), ("(", "cannot compile"), ("", "empty"), ("[[:alpha:]]", "'['"),
     ("a{99999999999999999999}", "too large"), ("(?:" * 3000 + "a" + ")" * 3000, "too deeply nested"),
     ("[\\t]", "'\\t'"), ("x\u3000", "can match"), ("(a|b|$x)", "'x'") if False else ("ab|(c|d;)", "';'")],
)  # fmt: skip
def test_broad_allow_patterns_are_refused_with_a_reason(pattern: str, reason: str) -> None:
    problem = check_allow_pattern(pattern)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize(
    ("pattern", "examples"),
    [("[a-z0-9]+", ["sh", "python"]), ("[a-z]+", ["sh", "python"]), (r"python3\.12", ["python3.12"]),
     (r"perl5\.36", ["perl5.36"]), ("python[0-9]", ["python0"]), ("(?i)[A-Z]+", ["sh", "python"]),
     ("[A-Z][a-z]+", ["Sh", "Python"]), ("e[a-z]+", ["elvish", "expect"]), ("r[a-z]", ["rm"]),
     (r"mkfs\.ext[0-9]", ["mkfs.ext4"]), ("g?zip", ["gzip"]), ("cu[a-z]+", ["curl"])],
)  # fmt: skip
def test_patterns_matching_refused_names_are_found_with_examples(pattern: str, examples: list[str]) -> None:
    assert check_allow_pattern(pattern) is None  # syntactically narrow, but it admits refused programs
    assert pattern_refused_examples(pattern, blacklist_names(DEFAULT_BLACKLIST)) == examples


@pytest.mark.parametrize(
    "pattern", ["g?awk", "[a-z]+sum", "(md5|sha1|sha256)sum", "git", "tar", r"x86_64-\w+", r"\d+", "a{1,3}", "^ls$",
                "cat", "[ef]?grep", "sha[0-9]+sum"],
)  # fmt: skip
def test_patterns_matching_no_refused_name_pass(pattern: str) -> None:
    assert pattern_refused_examples(pattern, blacklist_names(DEFAULT_BLACKLIST)) == []


def test_blacklist_names_count_only_when_given() -> None:
    assert pattern_refused_examples("g?zip") == []  # gzip is only on the template blacklist
    assert pattern_refused_examples("g?zip", blacklist_names(["gzip"])) == ["gzip"]
    assert pattern_refused_examples("gunzip", blacklist_names(["gzip"])) == ["gunzip"]  # the family


@pytest.mark.skipif(sys.version_info < (3, 11), reason="atomic groups and possessive repeats are Python 3.11+")
def test_atomic_groups_and_possessive_repeats_are_walked() -> None:
    assert check_allow_pattern("(?>ab)+") is None
    assert check_allow_pattern("a*+") is None
    assert check_allow_pattern("(?>a/)") is not None


def test_unknown_regex_nodes_are_refused_rather_than_trusted() -> None:
    assert "does not know" in (allow_patterns._pattern_problem([("WEIRD", None)]) or "")
    assert "does not know" in (allow_patterns._pattern_problem([("IN", [("WEIRD", None)])]) or "")


def test_the_unicode_space_list_is_complete() -> None:
    spaces = {chr(code) for code in range(0x110000) if chr(code).isspace()}
    assert spaces <= allow_patterns.FORBIDDEN_PATTERN_CHARACTERS


_PATTERN_PIECES = ["a", "b", "-", "_", "7", ".", r"\S", r"\w", r"\d", "/", " ", "[a-z]", "[^a]", "[!-~]", r"\.",
                   "|", "*", "+", "?", "(", ")", "(?:", "{1,2}", ";", "[+-]"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PATTERN_PIECES), min_size=1, max_size=8).map("".join), st.data())
def test_an_accepted_pattern_never_matches_a_forbidden_character(pattern: str, data: st.DataObject) -> None:
    if check_allow_pattern(pattern) is not None:
        return
    name = data.draw(st.from_regex(pattern, fullmatch=True))
    assert not set(name) & allow_patterns.FORBIDDEN_PATTERN_CHARACTERS


@given(st.text(max_size=40))
def test_checking_a_pattern_never_raises(pattern: str) -> None:
    assert check_allow_pattern(pattern) is None or isinstance(check_allow_pattern(pattern), str)


# --------------------------------------------------------------------------- per-program policies: refused

DANGEROUS_ONLY = {"sed"}  # in the refused family: these cases run with allow_dangerous=True

REFUSED: list[tuple[str, ...]] = [
    # every program: --files0-from
    ("wc", "--files0-from=list"), ("wc", "--f=list"), ("du", "--files0-from=-"), ("cat", "--files0-from=x"),
    ("grep", "--files0=x", "y"), ("sort", "--files0-f=x"),
    # find
    ("find", ".", "-exec", "sh", "-c", "id", ";"), ("find", ".", "-execdir", "rm", "{}", "+"),
    ("find", ".", "-ok", "x", ";"), ("find", ".", "-okdir", "x", ";"), ("find", ".", "-fprint", "<OUT>/x"),
    ("find", ".", "-fprint0", "x"), ("find", ".", "-fprintf", "<OUT>/x", "pwned"), ("find", ".", "-fls", "x"),
    ("find", "-files0-from", "list"), ("find", "/", "-delete"), ("find", "-L", ".", "-delete"),
    ("find", ".", "-follow", "-delete"), ("find", "-D", "stat", "-O2", "<OUT>", "-delete"),
    ("gfind", ".", "-exec", "id", ";"),
    # awk program text
    ("awk", 'BEGIN { system("id") }'), ("awk", 'BEGIN { system\t("id") }'), ("awk", 'BEGIN{system \\\n("id")}'),
    ("awk", "BEGIN { x = system; }"), ("awk", '{ print | "sh" }'), ("awk", 'BEGIN { "id" | getline x }'),
    ("awk", 'BEGIN { print "x" |& "sh" }'), ("gawk", '@include "library.awk"'), ("gawk", '@load "fork"'),
    ("gawk", '@ include "x"'), ("gawk", 'BEGIN { f = "system"; @f("id") }'), ("awk", '{ print > "<OUT>/x" }'),
    ("awk", "{ print > $2 }"), ("awk", '{ print $1 > "a" "b" }'), ("awk", '{ printf("%s", $1) > "<OUT>/x" }'),
    ("awk", '{ print a,\n b > "<OUT>/x" }'), ("awk", '{ print > "a\\/b" }'), ("awk", '{ print >> "../up" }'),
    ("awk", "{ print x / 2 | \"sh\" }"), ("awk", '$0 ~ /[/]#/ { print | "sh" }'), ("awk", '/[]/]#/ { print | "sh" }'),
    ("awk", '/[[:alpha:]/]#/ { print | "sh" }'), ("awk", '/[^]/]#/ { print | "sh" }'), ("awk", "$0 ~ /[/]/ { print }"),
    ("awk", "{ x++ / 2 | \"sh\" }"), ("awk", '$0 ~ /a/ { print | "sh" }'),
    # awk options
    ("awk", "-f", "prog.awk"), ("gawk", "--file=/dev/stdin"), ("gawk", "--fi=x"), ("awk", "-E", "x"),
    ("mawk", "--exec", "x"), ("awk", "-W", "fi=x"), ("awk", "-Wexec", "x"), ("mawk", "-W", "exec", "x"),
    ("mawk", "-W", "version,exec", "x"), ("awk", "-W", "file", "x"), ("awk", "-i", "lib"), ("gawk", "--include=lib"),
    ("gawk", "-l", "fork"), ("gawk", "--load", "fork"), ("gawk", "-D"), ("gawk", "--debug"),
    ("gawk", "-e", 'BEGIN{system("id")}'), ("gawk", '--source=BEGIN{system("id")}'),
    ("gawk", "-W", 'source=BEGIN{system("id")}'), ("gawk", "-o<OUT>/x", "{print}"),
    ("gawk", "--pretty-print=<OUT>/x", "{print}"), ("gawk", "-p<OUT>/x", "1"), ("gawk", "--profile=<OUT>/x", "1"),
    ("gawk", "-d<OUT>/x", "1"), ("gawk", "--dump-variables=<OUT>/x", "1"),
    ("awk", "-W", "dump-variables=<OUT>/x", "1"), ("awk", "{print}", "-f", "x"),
    # tar
    ("tar", "cIf", "helper", "a.tar"), ("tar", "-I/bin/sh", "-cf", "x.tar", "f"),
    ("tar", "--to", "helper", "-xf", "x.tar"), ("tar", "--to-command=sh", "-xf", "x.tar"),
    ("tar", "-cf", "x.tar", "--checkpoint=1", "--checkpoint-action=exec=sh", "f"),
    ("tar", "--check=exec=sh", "-cf", "x.tar", "f"), ("tar", "--use-compress-program=sh", "-cf", "x.tar", "f"),
    ("tar", "--use=sh", "-cf", "x.tar"), ("tar", "--rsh-command=/bin/sh", "-tf", "h:x"), ("tar", "--rmt-command=x"),
    ("tar", "--info-script=x"), ("tar", "-F", "x"), ("tar", "--new-volume-script=x"), ("tar", "-xPf", "a.tar"),
    ("tar", "--absolute-names", "-xf", "a.tar"), ("tar", "-cf", "host:x.tar", "f"),
    ("tar", "-xf", "a.tar", "-C", "<OUT>"), ("tar", "-cf", "<OUT>/a.tar", "f"), ("tar", "cf", "<OUT>/a.tar", "f"),
    ("tar", "-g", "<OUT>/snap", "-cf", "a.tar", "f"), ("tar", "--index-file=<OUT>/i", "-cf", "a.tar"),
    ("tar", "--directory", "/", "-xf", "a.tar"), ("bsdtar", "-I", "x"),
    ("tar", "-cf", "a.tar", "-T", "list"), ("tar", "cTf", "list", "a.tar"), ("tar", "--files-from=list", "-cf", "a"),
    ("tar", "--files-f", "l", "-cf", "a"), ("tar", "--files=l"), ("tar", "-cT-", "-f", "a.tar"), ("tar", "-cvTl"),
    ("tar", "-cH", "--use-compress-program=sh", "-f", "a.tar", "f"), ("tar", "-cH", "-Ish", "-f", "a.tar", "f"),
    ("tar", "-cHIsh", "-f", "a.tar"), ("tar", "-b", "--to-command=sh", "-xf", "a.tar"),
    ("tar", "-f", "--", "--to-command=sh"), ("tar", "-C", "sub", "--check=exec=sh", "-cf", "a", "f"),
    ("bsdtar", "-cH", "--use-compress-program=sh", "-f", "a.tar", "f"), ("bsdtar", "-cHT", "list", "-f", "a"),
    # sort
    ("sort", "--compress-program=sh", "f"), ("sort", "--co=sh", "f"), ("sort", "--files0-from=list"),
    ("sort", "-o", "<OUT>/x", "f"), ("sort", "-ro<OUT>/x", "f"), ("sort", "--output=<OUT>/x"),
    ("sort", "--out", "<OUT>/x"), ("sort", "-o", ".git/config", "f"),
    # split
    ("split", "--filter=sh", "in.txt"), ("split", "--fi=sh", "in.txt"), ("split", "in.txt", "<OUT>/part"),
    # rg
    ("rg", "--pre=cat", "x"), ("rg", "--pre", "cat", "x"), ("rg", "--pr=x", "y"), ("rg", "--hostname-bin=x", "y"),
    # sed (allow_dangerous)
    ("sed", "1e touch x", "input"), ("sed", "s/a/b/e", "f"), ("sed", "s/a/b/w out", "f"), ("sed", "w out", "f"),
    ("sed", "/x/W out", "f"), ("sed", "-i", "s/a/b/", "f"), ("sed", "-i.bak", "s/a/b/", "f"),
    ("sed", "-ni", "p", "f"), ("sed", "--in-place", "p", "f"), ("sed", "--in=.bak", "p"), ("sed", "-f", "script"),
    ("sed", "--file=x"), ("sed", "-e", "p", "-e", "e id"), ("sed", "$!{e id\n}"), ("sed", "s/x/y/;e"),
    ("sed", "1~2e date"), ("sed", "\\,x,e id"), ("sed", "/a/,/b/e id"), ("sed", "k"), ("sed", "s/unterminated"),
    ("sed", "/unterminated"), ("sed", "y/ab/"), ("sed", "s"), ("sed", "1"), ("sed", "\\"), ("sed", "s\\a\\b\\"),
    ("sed", "/a\n/p"), ("gsed", "s/a/b/gw out"), ("sed", "s/[/]/#/;e id"), ("sed", "/[/]#/e id"),
    ("sed", "s/[]/]/x/e"), ("sed", "s/[[:punct:]/]/#/;e id"), ("sed", "\\,[,]#,e id"), ("sed", "s/a/[/]/;e id"),
    # make
    ("make", "-f", "<OUT>/evil.mk"), ("make", "--file=<OUT>/x"), ("make", "--makefile", "<OUT>/x"),
    ("make", "-f", "-"), ("make", "-C", "<OUT>"), ("make", "--directory=<OUT>"), ("make", "--eval=x"),
    ("make", "-E", "x"), ("make", "X!=id"), ("make", "SHELL=/bin/sh"), ("make", "MAKEFLAGS=-f/x"),
    ("make", "CC=sh -c id;"), ("make", "X=$(shell id)"), ("make", ".SHELLFLAGS=-c"), ("make", "SHELL:=/bin/sh"),
    ("make", "CC=python3", "x"), ("make", "CFLAGS=-O2 -g", "all"), ("make", "-r", "CC=sh"), ("make", "-R", "LDLIBS=x"),
    ("make", "LINK.c=sh"), ("make", "COMPILE.c=sh"), ("make", "YACC=sh"), ("make", "CO=sh"), ("make", "GET=sh"),
    ("make", "AS=sh"), ("make", "TARGET_ARCH=-x"), ("make", "MYFLAGS=-c"), ("make", "PATH=."), ("make", "LD_PRELOAD=x"),
    ("make", "override CC=sh"), ("make", "export X=1"), ("make", "CC :=sh"), ("make", "CC+=x"), ("make", "CC?=x"),
    ("gmake", "--e=x"),
    # git
    ("git", "-c", "core.fsmonitor=touch x", "status"), ("git", "-ccore.pager=sh", "log"),
    ("git", "--config-env=core.pager=X", "log"), ("git", "--co=x", "status"), ("git", "--exec-path=/tmp", "status"),
    ("git", "--git-dir=evil", "status"), ("git", "--git-dir", "evil", "status"), ("git", "-C", "<OUT>", "status"),
    ("git", "--work-tree=<OUT>", "status"), ("git", "--upload-pack=sh", "fetch"),
    ("git", "fetch", "--upload-pack=sh", "origin"), ("git", "fetch", "--upload-p=sh"),
    ("git", "pull", "--upload-pack", "sh"), ("git", "push", "--receive-pack=sh"), ("git", "push", "--e=x"),
    ("git", "push", "--exec=x"), ("git", "archive", "--exec=x", "--remote=r", "HEAD"),
    ("git", "clone", "ext::sh -c id", "d"), ("git", "remote", "add", "o", "EXT::sh"),
    ("git", "config", "alias.pwn", "!sh"), ("git", "config", "--get", "user.name"), ("git", "CONFIG", "x"),
    ("git", "grep", "--op=P"), ("git", "grep", "-O", "x"), ("git", "grep", "-Oless", "x"),
    ("git", "grep", "-nO", "x"), ("git", "grep", "--open-files-in-pager=less", "x"), ("git", "bisect", "run", "P"),
    ("git", "send-email", "--sendmail-cmd=<OUT>/helper"), ("git", "send-email", "--smtp-server=/bin/sh"),
    ("git", "send-email", "--to-cmd=x"), ("git", "send-email", "--sm=x"),
    ("git", "difftool", "--no-index", "-y", "--extcmd=touch x", "a.txt", "b.txt"), ("git", "difftool", "-x", "x"),
    ("git", "mergetool"), ("git", "submodule", "foreach", "id"), ("git", "submodule", "--quiet", "foreach", "id"),
    ("git", "rebase", "-x", "id", "HEAD~1"), ("git", "rebase", "--exec=id"), ("git", "rebase", "-ix", "id"),
    ("git", "filter-branch", "--tree-filter", "id"), ("git", "clone", "-c", "x=y", "r"),
    ("git", "clone", "--config=x=y"), ("git", "clone", "--template=t", "r"), ("git", "init", "--template=t"),
    ("git", "clone", "-u", "sh", "r"), ("git", "clone", "--upload-pack", "sh", "r"),
    ("git", "ls-remote", "-u", "sh", "r"), ("git", "daemon"), ("git", "instaweb"), ("git", "web--browse", "x"),
    ("git", "shell", "-c", "x"), ("git", "submodule--helper", "foreach"), ("git", "remote-ext", "o", "sh -c id"),
    ("git", "help", "-w", "log"), ("git", "help", "--web", "log"), ("git", "log", "--output=<OUT>/x"),
    ("git", "diff", "--output", "<OUT>/x"), ("git", "format-patch", "-o", "<OUT>", "HEAD~1"),
    ("git", "archive", "-o", "<OUT>/a.tar", "HEAD"), ("git", "clone", "--separate-git-dir=<OUT>/g", "r"),
    ("git", "log", "--output=.git/config"), ("git", "pwn"), ("git", "-C", "sub", "st"), ("git", "--bare", "log"),
    ("git", "--ba", "log"), ("git", "init", "--separate-git-dir", "g", "w"), ("git", "init", "<OUT>/r"),
    ("git", "init", "--bare", "-q", "<OUT>"), ("git", "init", ".git/x"), ("git", "clone", "r", "<OUT>/c"),
    ("git", "clone", "-b", "main", "--", "r", "<OUT>"), ("git", "worktree", "add", "<OUT>/w"),
    ("git", "worktree", "add", "-b", "x", "<OUT>/w", "HEAD"), ("git", "worktree", "move", "w", "<OUT>/w"),
    ("git", "bundle", "create", "<OUT>/b", "--all"), ("git", "bundle", "create", ".git/config", "HEAD"),
    ("git", "checkout-index", "--prefix=<OUT>/", "-a"), ("git", "checkout-index", "--prefix", ".git/", "-a"),
    ("git", "checkout-index", "--pre=<OUT>/x-", "-a"), ("git", "pack-objects", "<OUT>/p"),
    ("git", "credential-store", "--file=<OUT>/c", "store"), ("git", "credential-cache", "store"),
    ("git", "fast-export", "--export-marks=<OUT>/m", "HEAD"), ("git", "fast-import", "--export-marks=<OUT>/m"),
    ("git", "index-pack", "-o", "<OUT>/i", "p.pack"), ("git", "mailsplit", "-o<OUT>", "mbox"),
    ("git", "mailinfo", "<OUT>/msg", "patch"), ("git", "merge-file", "<OUT>/x", "b", "c"),
    ("git", "bugreport", "-o", "<OUT>"), ("git", "diagnose", "--output-directory=<OUT>"),
    ("git", "commit-graph", "write", "--object-dir", "<OUT>"), ("git", "upload-pack", "<OUT>"),
    ("git", "apply", "--unsafe-paths", "p.diff"), ("git", "merge-index", "sh", "-a"),
    ("git", "for-each-repo", "--config=x", "gc"),
    ("git", "maintenance", "start"), ("git", "maintenance", "register"), ("git", "hook", "run", "pre-commit"),
    ("git", "fsmonitor--daemon", "start"), ("git", "help", "-i", "log"), ("git", "help", "--man", "log"),
    # zip, sdiff, diff3
    ("zip", "-TT", "sh -c id", "-T", "a.zip", "f"), ("zip", "-qTT=x"), ("zip", "--unzip-command=x"),
    ("zip", "--unz=x"), ("sdiff", "--diff-program=sh", "a", "b"), ("sdiff", "-o", "<OUT>/m", "a", "b"),
    ("diff3", "--diff-prog=sh", "a", "b", "c"), ("wget", "--use-askpass=sh", "https://example.com"),
    ("wget", "-e", "use_askpass=sh", "u"), ("wget", "--exe=x", "u"),
]  # fmt: skip


@pytest.mark.parametrize("argv", REFUSED, ids=lambda argv: " ".join(argv)[:60])
def test_exec_vectors_are_refused(tree: str, argv: tuple[str, ...]) -> None:
    _rejected(_fill(argv, tree), tree, dangerous=canonical_program(argv[0]) in DANGEROUS_ONLY)


@pytest.mark.parametrize(
    ("argv", "words"),
    [(("git", "--co=x", "status"), ["--co", "--config"]), (("git", "push", "--e=x"), ["--exec"]),
     (("tar", "--to", "x"), ["--to-command"]), (("awk", "-W", "fi=x"), ["--file"]), (("tar", "cIf", "h", "a"), ["-I"]),
     (("find", ".", "-fprint0", "x"), ["-fprint0"]), (("git", "grep", "--op=P"), ["--open-files-in-pager"]),
     (("sort", "-ro<OUT>/x", "f"), ["sort -o", "outside the base path"]),
     (("gawk", "-f", "x"), ["awk policy", "argument 1"])],
)  # fmt: skip
def test_refusals_name_the_option_the_program_reads(tree: str, argv: tuple[str, ...], words: list[str]) -> None:
    message = _rejected(_fill(argv, tree), tree)
    for word in words:
        assert word in message


def test_sed_is_refused_as_a_family_member_without_the_dangerous_flag(tree: str) -> None:
    assert "refused" in _rejected(["sed", "p", "f"], tree)


# --------------------------------------------------------------------------- per-program policies: benign look-alikes

ALLOWED: list[tuple[str, ...]] = [
    ("git", "log", "--oneline"), ("git", "status", "--short"), ("git", "commit", "-m", "fix: parser; add tests"),
    ("git", "grep", "-e", "-O", "data"), ("git", "-C", "sub", "log"), ("git", "--exec-path"),
    ("git", "--no-pager", "log", "-p"), ("git", "diff", "--output=out.diff"), ("git", "commit", "-c", "HEAD"),
    ("git", "fetch", "-u", "origin"), ("git", "log", "--", "--upload-pack=x"),
    ("git", "log", "--end-of-options", "--exec"), ("git", "rebase", "-i", "HEAD~2"), ("git", "bisect", "start"),
    ("git", "submodule", "update", "--init"), ("git", "help", "log"), ("git",),
    ("git", "format-patch", "-o", "patches", "HEAD~1"), ("git", "clone", "https://example.com/r.git", "r"),
    ("git", "init", "-q", "repo"), ("git", "init", "--bare", "b.git"), ("git", "clone", "r", "sub/copy"),
    ("git", "worktree", "add", "-b", "topic", "wt"), ("git", "worktree", "list"),
    ("git", "bundle", "create", "b", "HEAD"),
    ("git", "bundle", "create", "-", "HEAD"), ("git", "checkout-index", "--prefix=copy/", "-a"),
    ("git", "maintenance", "run"), ("git", "merge-file", "-p", "a", "b", "c"),
    ("git", "send-email", "--smtp-server", "smtp.example.com", "x.patch"), ("git", "send-email", "--smtp-server=mail"),
    ("git", "version"), ("git", "--version"), ("git", "--help"),
    ("tar", "-xf", "a.tar", "-Csub/Images"), ("tar", "-cf", "a.tar", "--exclude=-I", "f"),
    ("tar", "-cvzf", "a.tgz", "f"), ("tar", "-X", "ex.txt", "-cf", "a.tar", "f"), ("tar", "tf", "a.tar"),
    ("tar", "--exclude-from=ex", "-cf", "a.tar", "f"),
    ("tar", "-cf", "a.tar", "--format=posix", "-H", "pax", "f"), ("bsdtar", "-cf", "a.tar", "f"),
    ("git", "--namespace", "x", "log"), ("git", "show", "--stat", "HEAD"),
    ("git", "grep", "-n", "-e", "x", "--", "*.py"), ("find", ".", "-name", "*.py"),
    ("find", ".", "-name", "*.pyc", "-delete"), ("find", "sub", "-type", "f", "-print0"),
    ("find", ".", "-printf", "%p -exec\n"),
    ("find", "-H", "-O2", "-D", "stat", "sub", "dir", "(", "-name", "x", ")", "-delete"),
    ("awk", "{print $1; print $2}"), ("awk", "-F,", "{ print $1 }"), ("awk", "{ n++; } END { print n }", "file.txt"),
    ("awk", "/error|warning/ { c++ } END { print c }"), ("awk", '{ print "a|b" }'), ("awk", '$1 == "x" || $2 > 3'),
    ("awk", '{ print $1 > "out.txt" }'), ("awk", '{ print $1 >> "sub/out.txt" }'),
    ("awk", '{ print "oops" > "/dev/stderr" }'), ("awk", "{ print ($1 > 5) }"),
    ("awk", "{ x = $1 / 2; y = $2 / 3; print x, y }"), ("awk", "{ a[$1]++ } END { for (k in a) print k }"),
    ("awk", 'BEGIN { while ((getline line < "file.txt") > 0) n++; print n }'), ("awk", "-v", "x=1", "BEGIN{print x}"),
    ("awk", "-safe", "{print}"), ("awk", "-W", "version"), ("gawk", "-e", "BEGIN{print 1}"),
    ("gawk", '@namespace "x"; BEGIN{print 1}'), ("gawk", "$0 ~ @/ab+/ {print}"), ("gawk", "-o", "{print}"),
    ("gawk", "-pprof.out", "{print}"), ("awk", '{ print $1 }\n{ print $2 > "o.txt" }'),
    ("awk", '{print 1 > "o.txt"; print 2}'), ("awk", "NR % 2 == 0 { print } # every other line"),
    ("awk", "{ print a,\n b }"), ("awk", '{ print "filesystem(s)" }'), ("awk", "{ print $1 }", "file.txt", "-"),
    ("awk", "--", "{ print }"), ("awk", "BEGIN { x = 1.5e3; print x }"), ("awk", "{ print x++ }"),
    ("awk", "{ s = \"a\\\"b\"; print s }"), ("awk", '{ print "x'), ("awk", "{ print }\\\n"),
    ("awk", "/[|]/ { print }"), ("awk", "{ print 1 } /b"),
    ("awk", "{ print > \"x.txt\" }\n"), ("tar", "tf", "x.tar"),
    ("tar", "-cf", "out.tar", "--exclude=-Ihelper", "dir"), ("tar", "-xf", "a.tar", "-C", "sub"),
    ("tar", "-czf", "out.tgz", "sub"), ("tar", "--to-stdout", "-xf", "a.tar"), ("tar", "cf", "-", "sub"),
    ("tar", "cf"), ("tar", "-cf", "./host:x.tar", "sub"), ("tar", "--checkpoint=10", "-cf", "a.tar", "sub"),
    ("tar", "--file", "a.tar", "-t"), ("sort", "-o", "out.txt", "in.txt"), ("sort", "-S1T", "input"),
    ("sort", "-k2,2", "-t,", "f"), ("sort", "--output=sub/o.txt", "f"), ("sort", "-rn", "f"), ("sort", "--r", "f"),
    ("sort", "--check=quiet", "f"), ("split", "-l", "2", "in.txt", "sub/part_"), ("split", "in.txt"),
    ("rg", "pattern"), ("rg", "--pre-glob", "*.gz", "x"), ("rg", "-e", "--pre=x", "."), ("sed", "s/e/w/g", "f"),
    ("sed", "-n", "/x/p", "f"), ("sed", "a hello w world", "f"), ("sed", "$!N;s/\\n/ /", "f"),
    ("sed", "-E", "s/(a|b)+/X/g"), ("sed", "/start/,/end/{s/a/b/;p}"), ("sed", ":a;N;$!ba;s/\\n/,/g"),
    ("sed", "y/abc/xyz/"), ("sed", "1~3d"), ("sed", "0,/x/s//y/"), ("sed", "s|/|\\||g"), ("sed", "r other.txt"),
    ("sed", "#n\np"), ("sed", "s/a/b/2g"), ("sed", "5q"), ("sed", "l 40"), ("sed", "s/[/]/X/"), ("sed", "/[/]/p"),
    ("sed", "y/[/]/"), ("sed", "\\%x%d"), ("sed", "/x/I,+2 !d"), ("sed", "-e", "s/a/b/", "-e", "p"), ("sed",),
    ("make",), ("make", "-j4", "all"), ("make", "-f", "Makefile", "all"), ("make", "V=1", "all"),
    ("make", "-C", "sub"), ("make", "PREFIX=/usr/local", "install"), ("zip", "-r", "a.zip", "sub"),
    ("wget", "-q", "-O", "-", "https://example.com"), ("zip", "-T", "a.zip"), ("sdiff", "a.txt", "b.txt"),
    ("diff3", "a", "b", "c"), ("grep", "--file=patterns.txt", "x"), ("wc", "-l", "f"),
    ("printf", "%s|", "a b", "", "c"), ("echo", "text|", "id"),
]  # fmt: skip


@pytest.mark.parametrize("argv", ALLOWED, ids=lambda argv: " ".join(argv)[:60])
def test_ordinary_uses_are_not_over_blocked(tree: str, argv: tuple[str, ...]) -> None:
    _check(argv, tree, dangerous=canonical_program(argv[0]) in DANGEROUS_ONLY)


def test_option_paths_resolve_against_the_stage_directory(tree: str) -> None:
    sub = os.path.join(tree, "sub")
    _check(["sort", "-o", "out.txt", "../f"], tree, directory=sub)
    with pytest.raises(Rejected, match="outside the base path"):
        _check(["sort", "-o", os.path.join(_outside(tree), "x"), "f"], tree, directory=sub)
    with pytest.raises(Rejected):
        _check(["sort", "-o", "../out.txt", "f"], tree, directory=sub)  # '..' is refused even inside


# --------------------------------------------------------------------------- properties

_PROGRAMS = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True).filter(lambda name: not is_refused_program(name))
_DATA = st.text(st.characters(blacklist_characters="\x00"), max_size=20).filter(
    lambda arg: not is_operator_element(arg)
)


@given(_PROGRAMS, st.lists(_DATA, max_size=10))
def test_an_argv_without_operators_is_exactly_one_stage(tree: str, program: str, args: list[str]) -> None:
    plan = parse_command([program, *args], base_path=tree)
    assert plan == CommandPlan(stages=(Stage((program, *args)),), stdin_path=None, stdout_path=None, append=False)


_ELEMENTS = st.one_of(
    st.sampled_from(["|", "<", ">", ">>", ";", "&&", "2>", "..", "/", "/etc/passwd", "link.txt", "sub", "f", "ls"]),
    st.text(max_size=12),
)


@given(st.lists(_ELEMENTS, max_size=12))
def test_parsing_raises_nothing_but_rejected(tree: str, command: list[str]) -> None:
    try:
        plan = parse_command(command, base_path=tree)
    except Rejected as exc:
        argument = exc.argument
    else:
        argument = "command" if plan.stages else "no stages"
    assert argument == "command"


_ARGS = st.lists(
    st.one_of(
        st.sampled_from(
            ["-", "--", "-o", "-e", "-W", "-f", "-C", "x=y", "'", '"', "/", "\\", "|", "@", "$", "{", "}", "\n"]
        ),
        st.text(st.sampled_from("-=/.;|&@$\"'\\{}()<>[]#:,! \naeiostwxyzCEIOPW0123456789"), max_size=16),
    ),
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["git", "find", "awk", "tar", "sort", "split", "rg", "sed", "make", "zip", "wc", "sdiff"]), _ARGS
)
def test_policies_raise_nothing_but_rejected(tree: str, program: str, args: list[str]) -> None:
    try:
        _check([program, *args], tree, dangerous=True)
    except Rejected as exc:
        argument = exc.argument
    else:
        argument = "command"
    assert argument == "command"


# --------------------------------------------------------------------------- corpus: allowlist mode at unit level


def _allowlist_verdict(
    command: list[str], directory: str | None, allow: str, patterns: str, base: str
) -> str:  # the decisions the server makes before spawning, in its order
    names = frozenset(name.strip() for name in allow.split(",") if name.strip())
    pattern_texts = [text.strip() for text in patterns.split(",") if text.strip()]
    try:
        if any(check_allow_pattern(text) or pattern_refused_examples(text, blacklist_names(DEFAULT_BLACKLIST))
               for text in pattern_texts) or any(map(is_refused_program, names)):  # fmt: skip
            return "reject"  # a startup refusal
        compiled = [re.compile(text) for text in pattern_texts]
        cwd = confine_directory(directory, base)
        plan = parse_command(command, base_path=base)
        for stage in plan.stages:
            if not program_allowed(stage.argv[0], names, compiled):
                return "reject"
            check_stage(stage, base_path=base, allow_dangerous=False, directory=cwd)
    except Rejected:
        return "reject"
    return "allow"


# id: (ALLOW_COMMANDS, ALLOW_PATTERNS, command, directory, expected); <BASE>/<MARKER>/... as in the corpus.
CORPUS_CASES: dict[str, tuple[str, str, list[str], str, str]] = {
    "MS-H-069": ("find", "", ["find", ".", "-exec", "sh", "-c", "id", ";"], "<BASE>", "reject"),
    "MS-H-071": ("find", "", ["find", ".", "-fprintf", "<MARKER>/MS-H-071", "pwned"], "<BASE>", "reject"),
    "MS-H-073": ("", "(?:.*/)?python[0-9.]*", ["/usr/bin/python3.11", "-c", "print(1)"], "<BASE>", "reject"),
    "MS-H-075": ("awk", "", ["awk", 'BEGIN { system\t("id") }'], "<BASE>", "reject"),
    "MS-H-078": ("gawk", "", ["gawk", "--file=/dev/stdin"], "<BASE>", "reject"),
    "MS-H-080": ("gawk", "", ["gawk", '@include "library.awk"'], "<BASE>", "reject"),
    "MS-H-082": ("tar", "", ["tar", "-I/bin/sh", "-cf", "x.tar", "file"], "<BASE>", "reject"),
    "MS-H-084": ("tar", "", ["tar", "--to", "helper", "-xf", "x.tar"], "<BASE>", "reject"),
    "MS-H-087": ("env", "", ["env"], "<BASE>", "reject"),
    "MS-H-089": ("sed", "", ["sed", "1e touch <MARKER>/MS-H-089", "input"], "<BASE>", "reject"),
    "MS-H-091": ("git", "", ["git", "-c", "core.fsmonitor=touch <MARKER>/MS-H-091", "status"], "<BASE>", "reject"),
    "MS-H-093": ("git", "", ["git", "--upload-pack=sh", "fetch"], "<BASE>", "reject"),
    "MS-H-096": ("git", "", ["git", "config", "alias.pwn", "!sh -c id"], "<BASE>", "reject"),
    "MS-H-098": ("git", "", ["git", "grep", "--op=P"], "<BASE>", "reject"),
    "MS-H-100": ("git", "", ["git", "bisect", "run", "P"], "<BASE>", "reject"),
    "MS-H-102": ("git", "", ["git", "send-email", "--sendmail-cmd=<MARKER>/helper"], "<BASE>", "reject"),
    "MS-H-105": ("sort", "", ["sort", "-ro<MARKER>/MS-H-105", "input"], "<BASE>", "reject"),
    "MS-H-107": ("ls", "", ["ls -la"], "<BASE>", "reject"),
    "MS-H-109": ("echo,ls", "", ["ls|", "hello"], "<BASE>", "reject"),
    "MS-H-111": ("echo,ls", "", ["echo", "hello", ";", "ls"], "<BASE>", "reject"),
    "MS-H-114": ("printf", "", ["printf", "changed", ">", "../executor-outside.txt"], "<BASE>", "reject"),
    "MS-H-116": ("cat", "", ["cat", "<", "link.txt"], "<BASE>", "reject"),
    "MS-H-118": ("split", "", ["split", "--filter=touch <MARKER>/MS-H-118", "in.txt"], "<BASE>", "reject"),
    "MS-H-120": (
        "git", "", ["git", "difftool", "--no-index", "-y", "--extcmd=touch <MARKER>/MS-H-120", "a.txt", "b.txt"],
        "<BASE>", "reject",
    ),
    "MS-H-122": ("echo", "", ["echo", "x", ">", "<MARKER_REL>/MS-H-122"], "/", "reject"),
    "MS-H-124": ("cat", "", ["cat", "<", "zero"], "/dev", "reject"),
    "MS-B-148": ("echo", "", ["echo", "text|", "id"], "<BASE>", "allow"),
    "MS-B-150": ("echo,grep", "", ["echo", "hello\nworld", "|", "grep", "world"], "<BASE>", "allow"),
    "MS-B-152": ("git", "", ["git", "status", "--short"], "<BASE>", "allow"),
    "MS-B-154": ("git", "", ["git", "grep", "-e", "-O", "data"], "<BASE>", "allow"),
    "MS-B-156": ("sort", "", ["sort", "-S1T", "input"], "<BASE>", "allow"),
    "MS-B-159": ("tar", "", ["tar", "-cf", "out.tar", "--exclude=-Ihelper", "dir"], "<BASE>", "allow"),
    "MS-B-161": ("awk", "", ["awk", "-F,", "{ print $1 }"], "<BASE>", "allow"),
    "MS-B-163": ("awk", "", ["awk", "{ n++; } END { print n }", "file.txt"], "<BASE>", "allow"),
    "MS-B-165": ("printf", "", ["printf", "[%s]", "", "x"], "<BASE>", "allow"),
    "TE-B-040": ("printf", "", ["printf", "%s|", "a b", "", "c"], "<BASE>", "allow"),
    "TE-H-042": ("echo", "", ["cat", "file.txt"], "<BASE>", "reject"),
}  # fmt: skip


def _placeholders(base: str) -> dict[str, str]:
    root = os.path.dirname(base)
    marker = os.path.join(root, "marker")
    return {
        "<BASE>": base,
        "<ROOT>": root,
        "<OUTSIDE>": _outside(base),
        "<MARKER_REL>": marker.lstrip("/"),
        "<MARKER>": marker,
    }


def _substitute(text: str, base: str) -> str:
    for placeholder, value in _placeholders(base).items():
        text = text.replace(placeholder, value)
    return text


def _corpus_allowlist_cases() -> Iterator[dict[str, object]]:
    for case in json.loads(CORPUS.read_text())["cases"]:
        if case["mode"] == "allowlist":
            yield case


def test_the_corpus_table_matches_every_allowlist_case_of_the_corpus() -> None:
    cases = {str(case["id"]): case for case in _corpus_allowlist_cases()}
    assert set(cases) == set(CORPUS_CASES)
    for case_id, (allow, patterns, command, directory, expected) in CORPUS_CASES.items():
        case = cases[case_id]
        env = case.get("server_env") or {}
        arguments = case["arguments"]
        assert isinstance(env, dict)
        assert isinstance(arguments, dict)
        assert (env.get("ALLOW_COMMANDS", ""), env.get("ALLOW_PATTERNS", "")) == (allow, patterns), case_id
        assert (arguments["command"], arguments["directory"], case["expected"]) == (command, directory, expected)


@pytest.mark.parametrize("case_id", sorted(CORPUS_CASES))
def test_allowlist_corpus_cases_get_their_verdict_before_anything_runs(base: str, case_id: str) -> None:
    allow, patterns, command, directory, expected = CORPUS_CASES[case_id]
    filled = [_substitute(element, base) for element in command]
    assert _allowlist_verdict(filled, _substitute(directory, base), allow, patterns, base) == expected
    assert os.listdir(os.path.join(os.path.dirname(base), "marker")) == []
