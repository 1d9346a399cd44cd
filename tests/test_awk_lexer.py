"""Where an awk '/' starts a regex: the checker must never skip code that an awk runs.

The class (issue 11, item 1): after the ')' of ``if (...)``, ``while (...)``, ``for (...)`` a statement
starts, so gawk reads ``/#/`` as a regex; after ``x++``, ``x--`` and ``length`` awks disagree (gawk
divides, mawk reads a regex). A checker that reads division there skips the rest of the line as a
'#' comment, or a '"' string, while the awk runs ``print | "cmd"``. Pure tests of the checker, plus a
differential property against the awks installed here (mawk on every Debian; gawk where present).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_exec.policies.awk import awk_program_problem


class _Ctx:
    """Output files are not under test here: every ``print > "file"`` is allowed."""

    def confine(self, *_: object) -> None:
        return None


def problem(text: str) -> str | None:
    return awk_program_problem(text, _Ctx())  # type: ignore[arg-type]


HIDDEN = [
    'BEGIN { if (1) /#/; print | "sh" }',
    'BEGIN { while (0) /#/; print | "sh" }',
    'BEGIN { for (;0;) /#/; print | "sh" }',
    'BEGIN { for (k in a) /#/; print | "sh" }',
    'BEGIN { switch (1) { case 1: /#/; print | "sh" } }',
    '{ if (($1)) /#/; print | "sh" }',
    '{ if (f(1)) /"/; print | "sh" } "',
    '{ x++ /#/; print | "sh" }',
    '{ x-- /"/; print | "sh" }',
    '{ n = length /#/; print | "sh" }',
    '{ getline /#/; print | "sh" }',
    '{ y = (x) /#/ ; print | "sh" }',
    '{ y = (x) /2/ /#/; print | "sh" }',
    '{ if (x) /[/]/; print | "sh" }',
    '{ if (x) /a\\/#/; print | "sh" }',
    "if (x) /a|b/",
    '{ if (x) \\\n /#/; print | "sh" }',
    # after x++ mawk ends /\/ at its second '/' (gawk escapes it): the rest ran as code in mawk
    'BEGIN { x = 4; x++ /\\/ 1 ; print "x" | "touch pwned" }',
    'BEGIN { x = 4; a[1]-- /\\/ 1 ; print "x" | "sh" }',
    '{ x++ /a\\/b/; print | "sh" }',
    '{ y = 3 \\ 2; print | "sh" }',
]

ACCEPTED = [
    "{ print ($1+$2)/2, $3/4 }",
    "{ avg = (s)/n; print avg/2 }",
    "{ print length($0)/2 }",
    "{ if ($1 > 0) print $1/2 }",
    "{ i++; print i/2 }",
    "{ print x++ / 2 }",
    "{ print (a) /2/ /3/ }",
    "{ if (x ~ /a|b/) print }",
    "{ if (x) /a/ }",
    "NR==1 { print $1 / 2 }",
    "{ if ($0 ~ /#/) print }",
    '/a|b/ { print "x/y" }',
    "{ while (i < 3) i++ }",
    '{ print "a\\\\b", $1 }',
    "{ s = $1 + \\\n $2; print s }",
]


@pytest.mark.parametrize("text", HIDDEN)
def test_a_slash_that_awks_read_differently_cannot_hide_a_command(text: str) -> None:
    assert problem(text) is not None


@pytest.mark.parametrize("text", ACCEPTED)
def test_ordinary_division_and_regexes_stay_allowed(text: str) -> None:
    assert problem(text) is None


def test_a_backslash_outside_strings_and_regexes_is_refused_with_a_remedy() -> None:
    assert "outside a string or regex" in (problem("{ y = 3 \\ 2 }") or "")
    assert problem("{ y = 3 + \\\n 2 }") is None  # a line continuation


def test_the_refusal_says_what_to_write_instead() -> None:
    message = problem('BEGIN { if (1) /#/; print | "sh" }') or ""
    assert "regex or division" in message
    assert "$0 ~ /re/" in message


# ---------------------------------------------------------------------------------------------- property
# Before the '/': every kind of token that can precede one. Between the slashes: the characters that
# change how the rest of the line is read. After: a command pipe that the checker must see.
_BEFORE = st.sampled_from(
    [
        "if (1)",
        "while (0)",
        "for (;0;)",
        "if (x)",
        "x++",
        "x--",
        "a[1]++",
        "i--",
        "length",
        "getline",
        "(x)",
        "x",
        "1",
        '"s"',
        "a[1]",
        "$1",
        "f(1)",
        "}",
        ";",
        "print",
        "y =",
        "x ~",
        "!",
        "(",
        ",",
    ]
)
_INSIDE = st.text(st.sampled_from(list('#"[]\\/ ab2;|)(')), max_size=6)
_AFTER = st.sampled_from(['; print "x" | "touch pwned"', ' print "x" | "touch pwned"', '\n print "x" | "touch pwned"'])
_AWKS = [a for a in ("mawk", "gawk", "original-awk", "busybox") if shutil.which(a)]


def _run_everywhere(text: str, work: Path) -> None:
    """Run ``text`` in every installed awk; none may start a command (``touch pwned``)."""
    for awk in _AWKS:
        args = [awk, text] if awk != "busybox" else ["busybox", "awk", text]
        done = subprocess.run(args, cwd=work, capture_output=True, timeout=10, stdin=subprocess.DEVNULL, check=False)
        assert not (work / "pwned").exists(), (awk, text, done.stderr)


@pytest.mark.skipif(not _AWKS, reason="no awk installed")
@settings(max_examples=400, deadline=None)
@given(st.builds(lambda b, i, a: f"BEGIN {{ x = 4; {b} /{i}/ 1 {a} }}", _BEFORE, _INSIDE, _AFTER))
def test_what_the_checker_accepts_starts_no_command_in_any_local_awk(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    # Every program has a command pipe after the '/'s: the checker must see it and refuse, unless no
    # awk reads it as code (an unterminated regex is a syntax error, so nothing runs). A refusal is
    # always safe; an acceptance is run in each awk installed here (mawk on Debian, gawk where present).
    if problem(text) is None:
        _run_everywhere(text, tmp_path_factory.mktemp("awk"))
