"""The template grammar: specs, tokens, placeholders, pinning, rendering (pure, no event loop)."""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_exec.config import ArgSpec, ToolSpec
from trio_exec.errors import ConfigError, Rejected, SpawnFailed
from trio_exec.paths import PathPolicy
from trio_exec.programs import DEFAULT_BLACKLIST
from trio_exec.templates import (
    Context,
    Placeholder,
    as_text,
    compile_tool,
    input_schema,
    parse_specs,
    render,
    text_arguments,
)
from trio_exec.values import Constraint, Kind

SEARCH = os.environ.get("PATH", os.defpath)


def ctx(**kw: object) -> Context:
    base = {
        "paths": PathPolicy(),
        "blacklist": DEFAULT_BLACKLIST,
        "allow_dangerous": False,
        "allow_missing_binaries": False,
        "search_path": SEARCH,
        "sensitive_keys": ("password", "token"),
    }
    base.update(kw)
    return Context(**base)  # type: ignore[arg-type]


def tool(template: str, name: str = "t", **kw: object) -> ToolSpec:
    return ToolSpec(name=name, template=template, source="test", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('echo|"echo {message}"', [("echo", "echo {message}")]),
        ('a|"date"; b|"uptime"', [("a", "date"), ("b", "uptime")]),
        ('a|"date";b|"uptime";', [("a", "date"), ("b", "uptime")]),
        ("a|date", [("a", "date")]),
        ("x|\"awk '{print $1; print $2}' {file}\"", [("x", "awk '{print $1; print $2}' {file}")]),
        ('q|"grep \\"a b\\" {file}"', [("q", 'grep "a b" {file}')]),
    ],
)
def test_specs_split_on_semicolons_outside_the_quoted_template(text: str, expected: list[tuple[str, str]]) -> None:
    assert parse_specs(text, "--cmd") == expected


@pytest.mark.parametrize("text", ["no-bar", 'a|"unterminated', 'a|"date" junk'])
def test_malformed_specs_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_specs(text, "--cmd")


def test_the_program_is_pinned_to_an_absolute_path() -> None:
    t = compile_tool(tool("echo {message}"), ctx())
    assert t.program_path == shutil.which("echo")
    assert os.path.isabs(t.program_path or "")
    assert [a.name for a in t.args] == ["message"]


def test_placeholders_inside_tokens_and_literal_braces_are_parsed() -> None:
    t = compile_tool(tool("echo --out={file} {{x}} pre{a}mid{b}post {a}"), ctx())
    assert t.tokens[0] == ("--out=", Placeholder("file"))
    assert t.tokens[1] == ("{x}",)
    assert t.tokens[2] == ("pre", Placeholder("a"), "mid", Placeholder("b"), "post")
    assert [a.name for a in t.args] == ["file", "a", "b"]
    assert render(t, {"file": "/tmp/o", "a": "1", "b": "two words"}, ctx()) == (
        t.program_path,
        "--out=/tmp/o",
        "{x}",
        "pre1midtwo wordspost",
        "1",
    )


def test_one_token_is_one_argv_element_whatever_the_value_holds() -> None:
    t = compile_tool(tool("echo {message}"), ctx())
    assert render(t, {"message": "hello world  again"}, ctx())[1:] == ("hello world  again",)


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{prog} x", "program"),
        ("echo {timeout}", "reserved"),
        ("echo {stdin}", "reserved"),
        ("", "empty"),
        ("echo 'unclosed", "split"),
        ("definitely-not-a-program-xyz {a}", "not installed"),
        ("rm {path}", "blacklisted"),
        ("RM_LINK {path}", "not installed"),
    ],
)
def test_bad_templates_are_config_errors(template: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        compile_tool(tool(template), ctx())


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "semi;colon", "dot.name"])
def test_tool_names_follow_mcp_rules(name: str) -> None:
    with pytest.raises(ConfigError, match="tool name"):
        compile_tool(tool("echo", name=name), ctx())


def test_args_configured_for_an_unknown_placeholder_are_an_error() -> None:
    with pytest.raises(ConfigError, match=r"args\.other"):
        compile_tool(tool("echo {a}", args={"other": ArgSpec()}), ctx())


def test_a_blacklisted_program_is_allowed_with_allow_dangerous() -> None:
    t = compile_tool(tool("rm {path}"), ctx(allow_dangerous=True))
    assert t.program_path == shutil.which("rm")


def test_a_symlink_to_a_blacklisted_program_is_refused(tmp_path: os.PathLike[str]) -> None:
    link = os.path.join(tmp_path, "innocent")
    os.symlink(shutil.which("rm") or "/bin/rm", link)
    with pytest.raises(ConfigError, match="blacklisted"):
        compile_tool(tool(f"{link} {{path}}"), ctx())


def test_a_missing_program_is_resolved_at_call_time_when_allowed() -> None:
    t = compile_tool(tool("definitely-not-a-program-xyz {a}"), ctx(allow_missing_binaries=True))
    assert t.program_path is None
    with pytest.raises(SpawnFailed, match="not installed"):
        render(t, {"a": "x"}, ctx(allow_missing_binaries=True))


def test_a_missing_program_that_appears_later_is_still_blacklist_checked(tmp_path: os.PathLike[str]) -> None:
    c = ctx(allow_missing_binaries=True, search_path=str(tmp_path))
    t = compile_tool(tool("bash -c {a}"), c)
    os.symlink(shutil.which("bash") or "/bin/bash", os.path.join(tmp_path, "bash"))
    with pytest.raises(SpawnFailed, match="blacklisted"):
        render(t, {"a": "x"}, c)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("echo {1bad}", "{1bad} is not a placeholder"),
        ("echo {my-arg}", "{my-arg} is not a placeholder"),
        ("echo --x={message", "{message has no closing '}'"),
        ("echo {message", "{message has no closing '}'"),
        ("echo message}", "message} has no opening '{'"),
    ],
)
def test_a_placeholder_typo_is_a_startup_error_not_literal_text(template: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="literal braces") as caught:
        compile_tool(tool(template), ctx())
    assert problem in caught.value.message


@pytest.mark.parametrize(
    "template",
    [
        "echo '{print $1}'",
        "echo {} x",
        "echo {{1bad}} {{x",
        "echo '{ a }'",
        "echo a{b}c",
        "echo '[0-9]{3}'",
        "echo 'x{2,5}'",
    ],
)
def test_braces_that_are_no_placeholder_attempt_stay_literal(template: str) -> None:
    compile_tool(tool(template), ctx())


def test_input_schema_lists_placeholders_defaults_and_constraints() -> None:
    spec = tool(
        "echo {a} {n} {e}",
        args={
            "a": ArgSpec(default="x", constraint=Constraint(max_length=5, pattern="[a-z]+")),
            "n": ArgSpec(kind=Kind.INTEGER, constraint=Constraint(minimum=1, maximum=9)),
            "e": ArgSpec(kind=Kind.ENUM, constraint=Constraint(enum=("one", "two"))),
        },
        stdin=True,
    )
    schema = input_schema(compile_tool(spec, ctx()), max_timeout_s=300, stdin=True)
    assert schema["required"] == ["n", "e"]
    text = {"type": "string", "maxLength": 5, "pattern": "^(?:[a-z]+)$"}
    assert schema["properties"]["a"] == {
        "anyOf": [text, {"type": "number"}, {"type": "boolean"}],  # a plain value: numbers and booleans become text
        "description": schema["properties"]["a"]["description"],
        "default": "x",
    }
    assert schema["properties"]["n"]["type"] == "integer"
    assert schema["properties"]["n"]["minimum"] == 1
    assert schema["properties"]["e"]["enum"] == ["one", "two"]
    assert schema["properties"]["timeout"]["maximum"] == 300
    assert schema["properties"]["stdin"]["type"] == "string"
    strict = input_schema(compile_tool(spec, ctx()), max_timeout_s=300, stdin=True, published=False)
    assert strict["properties"]["a"] == {
        **text,
        "description": schema["properties"]["a"]["description"],
        "default": "x",
    }


def test_numbers_and_booleans_are_accepted_as_text_where_text_is_taken() -> None:
    spec = tool(
        "echo {message} {regex} {verbose_flag} {file_path} {n} {e}",
        args={
            "n": ArgSpec(kind=Kind.INTEGER),
            "e": ArgSpec(kind=Kind.ENUM, constraint=Constraint(enum=("1", "2"))),
        },
    )
    t = compile_tool(spec, ctx())
    schema = input_schema(t, max_timeout_s=300, stdin=False)["properties"]
    types = {name: [branch["type"] for branch in prop.get("anyOf", [prop])] for name, prop in schema.items()}
    assert types["message"] == ["string", "number", "boolean"]
    assert types["regex"] == types["verbose_flag"] == ["string", "number"]
    assert all(isinstance(prop.get("type", ""), str) for prop in schema.values())  # single types: portable
    assert schema["file_path"]["type"] == "string"  # a path is text, and a number is no path
    assert schema["e"]["type"] == "string"  # the listed values are the exact spellings
    given_ = {"message": 42, "regex": 2.0, "verbose_flag": -1, "file_path": 7, "n": 3, "e": 1, "other": 5}
    assert text_arguments(t, given_) == {**given_, "message": "42", "regex": "2", "verbose_flag": "-1"}
    assert text_arguments(t, {"message": True, "regex": False}) == {"message": "true", "regex": False}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2, "2"),
        (2.0, "2"),
        (-0.0, "0"),
        (0.5, "0.5"),
        (1e20, "1e+20"),
        (2.0**53, "9007199254740992.0"),
        (-7, "-7"),
        (1.5e-7, "1.5e-07"),
    ],
)
def test_a_number_becomes_its_canonical_text(value: float, text: str) -> None:
    assert as_text(value) == text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**100, "2", None, [1], {"a": 1}, True])
def test_what_is_not_a_finite_json_number_is_left_for_the_checks(value: object) -> None:
    assert as_text(value) is None  # NaN and huge integers are refused later with their own message


@given(st.integers(min_value=-(10**99), max_value=10**99))
def test_an_integer_reads_back_from_its_text(n: int) -> None:
    text = as_text(n)
    assert text is not None
    assert int(text) == n
    assert "." not in text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_reads_back_from_its_text_and_a_whole_one_has_no_point(f: float) -> None:
    text = as_text(f)
    assert text is not None
    assert float(text) == f
    if f.is_integer() and abs(f) < 2**53:
        assert text == str(int(f))


def test_defaults_fill_missing_arguments_when_rendering() -> None:
    t = compile_tool(tool("echo {a}", args={"a": ArgSpec(default="fallback")}), ctx())
    assert render(t, {}, ctx())[1:] == ("fallback",)


def test_a_value_that_would_start_an_option_is_rejected_even_for_integers() -> None:
    t = compile_tool(tool("echo {n} --n={n}", args={"n": ArgSpec(kind=Kind.INTEGER)}), ctx())
    assert render(t, {"n": 5}, ctx())[1:] == ("5", "--n=5")
    with pytest.raises(Rejected) as caught:
        render(t, {"n": -5}, ctx())
    assert caught.value.argument == "n"
    assert "leading '-'" in caught.value.message


def test_relative_paths_keep_their_meaning_when_a_tool_runs_elsewhere(tmp_path: os.PathLike[str]) -> None:
    base = os.path.realpath(tmp_path)
    c = ctx(paths=PathPolicy(base_path=base))
    t = compile_tool(tool("cat {path}", cwd="/"), c)
    # validated as BASE/etc/passwd, so it must not reach cat as "etc/passwd" run from /
    assert render(t, {"path": "etc/passwd"}, c)[1:] == (os.path.join(base, "etc/passwd"),)
    same = compile_tool(tool("cat {path}"), c)
    assert render(same, {"path": "notes.txt"}, c)[1:] == ("notes.txt",)


def test_a_tool_cwd_must_be_an_existing_absolute_directory() -> None:
    for cwd in ("relative/dir", "/nonexistent-dir-xyz"):
        with pytest.raises(ConfigError, match="cwd"):
            compile_tool(tool("date", cwd=cwd), ctx())
