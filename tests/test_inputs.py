"""Unit tests of the input hardening: word containment, special files, non-finite numbers, stdin and file caps."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loguru import logger

from trio_exec import cli, commands
from trio_exec.argv import parse_command
from trio_exec.audit import audited_arguments, setup_logging
from trio_exec.config import ArgSpec, ToolSpec, split_config
from trio_exec.errors import ConfigError, InvalidArguments, Rejected
from trio_exec.paths import PathPolicy
from trio_exec.templates import Context, compile_tool, input_schema, render
from trio_exec.tools.arguments import check_finite, encode_stdin
from trio_exec.validation import check_word_path, validate_value
from trio_exec.values import MIN_TIMEOUT_S, Kind


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """base/ with ok.txt, link.txt -> ../outside/secret.txt, data/x, xlink -> ../outside, and outside/secret.txt."""
    base, outside = tmp_path / "base", tmp_path / "outside"
    (base / "data").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (base / "ok.txt").write_text("ok")
    (base / "data" / "x").write_text("x")
    (base / "link.txt").symlink_to("../outside/secret.txt")
    (base / "xlink").symlink_to("../outside")
    os.mkfifo(base / "fifo")
    return base


def ctx(base: Path | None) -> Context:
    return Context(
        paths=PathPolicy(base_path=str(base) if base else None),
        blacklist=(),
        allow_dangerous=False,
        allow_missing_binaries=False,
        search_path="/usr/bin:/bin",
        sensitive_keys=("password",),
    )


def run(template: str, args: dict[str, Any], base: Path | None, **spec: Any) -> tuple[str, ...]:
    c = ctx(base)
    return render(compile_tool(ToolSpec(name="t", template=template, source="test", **spec), c), args, c)


# --------------------------------------------------------------------------- item 7: word containment


@pytest.mark.parametrize(
    ("template", "args"),
    [
        pytest.param("cat {file}.txt", {"file": "link"}, id="suffix-makes-a-symlink-name"),
        pytest.param("cat {dir}{name}", {"dir": ".", "name": "."}, id="two-dots-make-dotdot"),
        pytest.param("cat {dir}{name}/secret.txt", {"dir": "x", "name": "link"}, id="prefix-joins-a-symlink-name"),
        pytest.param("cat data/{file}/../../link.txt", {"file": "x"}, id="literal-dotdot-after-value"),
        pytest.param("cat --out=x{file}/secret.txt", {"file": "link"}, id="option-value-tail"),
        pytest.param("cat pre:x{file}/secret.txt", {"file": "link"}, id="colon-tail"),
    ],
)
def test_a_path_value_is_confined_as_the_whole_word(tree: Path, template: str, args: dict[str, Any]) -> None:
    with pytest.raises(Rejected, match=r"in the word .* resolves outside the base path") as caught:
        run(template, args, tree)
    assert caught.value.argument in args


@pytest.mark.parametrize(
    ("template", "args", "word"),
    [
        pytest.param("cat {file}.txt", {"file": "ok"}, "ok.txt", id="suffix"),
        pytest.param("cat data/{file}", {"file": "x"}, "data/x", id="prefix"),
        pytest.param("cat --out={file}", {"file": "data/x"}, "--out=data/x", id="option"),
        pytest.param("cat {dir}{name}", {"dir": "data/", "name": "x"}, "data/x", id="path-and-plain"),
    ],
)
def test_ordinary_words_with_a_path_value_still_render(
    tree: Path, template: str, args: dict[str, Any], word: str
) -> None:
    assert run(template, args, tree)[1] == word


def test_two_path_placeholders_in_one_word_are_a_startup_error(tree: Path) -> None:
    with pytest.raises(ConfigError, match=r"joins the path placeholders \{dir\} and \{file\}"):
        compile_tool(ToolSpec(name="t", template="cat {dir}{file}", source="test"), ctx(tree))
    # Apart, or with one given another kind, they are fine.
    compile_tool(ToolSpec(name="t", template="cat {dir} {file}", source="test"), ctx(tree))


def test_a_sensitive_value_is_not_shown_in_a_word_refusal(tree: Path) -> None:
    (tree / "hunter2.txt").symlink_to("../outside/secret.txt")
    with pytest.raises(Rejected) as caught:
        run("cat {password_file}.txt", {"password_file": "hunter2"}, tree)
    assert "hunter2" not in caught.value.message
    assert "resolves outside the base path" in caught.value.message


def test_without_a_base_path_an_option_word_with_an_absolute_value_renders() -> None:
    assert run("cat --out={file}", {"file": "/tmp/o"}, None)[1] == "--out=/tmp/o"


def test_no_validate_paths_skips_word_containment(tree: Path) -> None:
    check_word_path("f", "link", "link.txt", ["link.txt"], paths=PathPolicy(base_path=str(tree), validate_paths=False))


def test_a_huge_integer_is_rejected_not_crashed_on(tree: Path) -> None:
    spec = ToolSpec(name="t", template="echo {n}", source="test", args={"n": ArgSpec(kind=Kind.INTEGER)})
    c = ctx(tree)
    with pytest.raises(Rejected, match="too large"):
        render(compile_tool(spec, c), {"n": 10**5000}, c)


# --------------------------------------------------------------------------- item 10: unresolvable paths


def _unreadable_link() -> bool:
    try:
        os.path.realpath("/proc/1/root/x")
    except OSError:
        return True
    return False


@pytest.mark.skipif(not _unreadable_link(), reason="realpath of /proc/1/root works here (not root, or no ptrace gate)")
def test_a_path_that_cannot_be_resolved_is_rejected(tree: Path) -> None:
    (tree / "procroot").symlink_to("/proc/1/root")
    with pytest.raises(Rejected, match=r"cannot be resolved \(Permission denied\)"):
        run("cat {file}", {"file": "procroot/etc/passwd"}, tree)
    with pytest.raises(Rejected, match=r"cannot be resolved"):
        parse_command(["cat", "<", "procroot/etc/passwd"], base_path=str(tree))
    with pytest.raises(Rejected, match=r"cannot be resolved"):
        parse_command(["cat", ">", "procroot/x"], base_path=str(tree))


# --------------------------------------------------------------------------- item 11: special files


def test_fifos_and_sockets_are_refused_for_path_placeholders(tree: Path) -> None:
    with pytest.raises(Rejected, match="is a FIFO"):
        run("cat {file}", {"file": "fifo"}, tree)
    os.mkfifo(tree / "fi.d")
    with pytest.raises(Rejected, match="is a FIFO"):
        run("cat {file}.d", {"file": "fi"}, tree)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tree / "sock"))
        with pytest.raises(Rejected, match="is a socket"):
            run("cat {file}", {"file": "sock"}, tree)


def test_devices_are_refused_even_inside_the_base(tmp_path: Path) -> None:
    with pytest.raises(Rejected, match="device"):
        validate_value("file", Kind.PATH, "null", paths=PathPolicy(base_path="/dev"))


def test_a_tool_can_opt_in_to_special_files(tree: Path, tmp_path: Path) -> None:
    assert run("cat {file}", {"file": "fifo"}, tree, special_files=True)[1] == "fifo"
    _, tools = split_config({"tools": {"t": {"template": "cat {file}", "special_files": True}}}, "c.toml")
    assert tools[0].special_files is True
    with pytest.raises(ConfigError, match="special_files"):
        split_config({"tools": {"t": {"template": "cat {file}", "special_files": "yes"}}}, "c.toml")


def test_regular_files_directories_and_new_names_are_fine(tree: Path) -> None:
    for value in ("ok.txt", "data", "data/new-file"):
        validate_value("file", Kind.PATH, value, paths=PathPolicy(base_path=str(tree)))


def test_shell_path_options_refuse_fifos(tree: Path) -> None:
    plan = parse_command(["tar", "-C", "fifo", "-cf", "out.tar", "ok.txt"], base_path=str(tree))
    with pytest.raises(Rejected, match="FIFO, socket or device"):
        commands.check_plan(plan, base_path=str(tree), allow_dangerous=False, directory=str(tree))


@pytest.mark.parametrize("command", [["cat", "<", "fifo"], ["cat", "ok.txt", ">", "fifo"], ["cat", ">>", "fifo"]])
def test_shell_redirections_refuse_fifos(tree: Path, command: list[str]) -> None:
    with pytest.raises(Rejected, match="not a regular file"):
        parse_command(command, base_path=str(tree))


@pytest.mark.parametrize("operator", [">", ">>", "<"])
def test_dev_null_is_the_one_redirection_target_outside_the_base(tree: Path, operator: str) -> None:
    plan = parse_command(["cat", operator, "/dev/null"], base_path=str(tree))
    assert (plan.stdin_path if operator == "<" else plan.stdout_path) == "/dev/null"


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null/", "//dev/null", "/dev/./null", "/dev/full", "/dev/tty"])
def test_other_device_spellings_stay_refused(tree: Path, target: str) -> None:
    with pytest.raises(Rejected):
        parse_command(["cat", ">", target], base_path=str(tree))


# --------------------------------------------------------------------------- item 9: non-finite numbers


@pytest.mark.parametrize(
    ("arguments", "where"),
    [
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"n": -math.inf}, "n"),
        ({"command": ["ls", {"x": [1.0, math.nan]}]}, r"command\[1\]\.x\[1\]"),
    ],
)
def test_non_finite_numbers_are_refused_anywhere(arguments: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidArguments, match=f"{where} is NaN or infinite"):
        check_finite(arguments)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=5), lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=3), kids, max_size=3), max_leaves=10))  # fmt: skip
def test_finite_json_values_pass(value: Any) -> None:
    check_finite({"a": value})


def test_the_audit_copy_of_the_arguments_is_strict_json() -> None:
    shown = audited_arguments({"timeout": math.nan, "x": [math.inf], "password": "p"}, ("password",))
    assert json.loads(json.dumps(shown, allow_nan=False)) == {"timeout": "nan", "x": ["inf"], "password": "[REDACTED]"}


def test_the_audit_copy_of_a_long_stdin_keeps_its_start_and_size() -> None:
    shown = audited_arguments({"stdin": "y" * 10_000}, ())
    assert shown["stdin"] == "y" * 256 + "[... 10000 characters]"
    assert audited_arguments({"stdin": "short"}, ()) == {"stdin": "short"}


def test_the_timeout_floor_is_published(tree: Path) -> None:
    t = compile_tool(ToolSpec(name="t", template="cat {file}", source="test"), ctx(tree))
    assert input_schema(t, max_timeout_s=300, stdin=False)["properties"]["timeout"]["minimum"] == MIN_TIMEOUT_S


# --------------------------------------------------------------------------- item 12: bounded inputs


def test_stdin_up_to_the_limit_is_encoded_once() -> None:
    assert encode_stdin("abc", 3) == b"abc"
    assert encode_stdin(None, 3) is None
    assert encode_stdin("\u00e9", 2) == b"\xc3\xa9"


@pytest.mark.parametrize("stdin", ["abcd", "\u00e9\u00e9", "\U0001f600"])
def test_stdin_over_the_limit_is_rejected(stdin: str) -> None:
    with pytest.raises(Rejected, match=r"more than the limit of 3 bytes \(--max-stdin-bytes\)") as caught:
        encode_stdin(stdin, 3)
    assert caught.value.argument == "stdin"


def _load(*argv: str, env: dict[str, str] | None = None) -> cli.Loaded:
    return cli.load_settings(["--cmd", 'e|"echo hi"', *argv], {"PATH": os.environ["PATH"], **(env or {})})


def test_max_stdin_bytes_has_a_flag_an_environment_variable_and_a_default() -> None:
    assert _load().settings.runner.max_stdin_bytes == 16 * 1024 * 1024
    assert _load("--max-stdin-bytes", "1M").settings.runner.max_stdin_bytes == 1024 * 1024
    assert _load(env={"MCP_EXEC_MAX_STDIN_BYTES": "4096"}).settings.runner.max_stdin_bytes == 4096
    assert "--max-stdin-bytes <bytes>" in cli.usage()
    assert "MCP_EXEC_MAX_STDIN_BYTES" in cli.usage()


def test_limit_fsize_defaults_to_64_times_the_output_cap() -> None:
    assert _load().settings.runner.limits.fsize_bytes == 64 * 1024 * 1024
    assert _load("--max-output-bytes", "1000").settings.runner.limits.fsize_bytes == 64_000
    assert _load("--limit-fsize", "5M").settings.runner.limits.fsize_bytes == 5 * 1024 * 1024
    assert "--max-output-bytes x 64" in cli.usage()


def test_without_prlimit_the_default_file_cap_is_off_and_said_so(tmp_path: Path) -> None:
    loaded = cli.load_settings(["--cmd", 'e|"/bin/echo hi"', "--allow-missing-binaries"], {"PATH": str(tmp_path)})
    assert loaded.settings.runner.limits.fsize_bytes is None
    assert any("no size cap" in note for note in cli.warnings_for(loaded))
    with pytest.raises(ConfigError, match="prlimit"):
        cli.load_settings(["--cmd", 'e|"/bin/echo hi"', "--limit-fsize", "1M"], {"PATH": str(tmp_path)})


# --------------------------------------------------------------------------- item 10: tracebacks


def test_logged_tracebacks_carry_no_local_values(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info")

    def fails(password: str) -> None:
        raise RuntimeError("boom")

    secret = "-".join(["hunter2", "local", "value"])  # not spelled in the source the traceback quotes
    try:
        fails(secret)
    except RuntimeError:
        logger.exception("caught")
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err
    assert secret not in err
