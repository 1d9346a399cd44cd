"""ALLOW_PATTERNS: which regular expressions may admit program names to shell_execute.

Job (SECURITY.md "Allowed programs"): at startup, refuse an ``--allow-patterns`` entry that could match a
path separator, whitespace, a control character or a shell metacharacter (``check_allow_pattern`` walks the
parsed pattern), and, unless ``--allow-dangerous``, one that fully matches a refused-family or unpoliced
blacklist name in any spelling that folds to it (``pattern_refused_examples``).

Invariants:
- Pure: no I/O; the names come from ``programs.py``, the policed programs from the ``policies`` package.
- A sample of spellings, not a proof: the refused family is checked again on every call.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from trio_exec.policies import POLICIES
from trio_exec.programs import REFUSED_FAMILY, REFUSED_GROUPS, canonical_program, fold_program_name, is_refused_program
from trio_exec.regexes import CANNOT_COMPILE, TOO_COMPLEX, compile_error, compile_regex

__all__ = ["FORBIDDEN_PATTERN_CHARACTERS", "check_allow_pattern", "pattern_refused_examples"]

# A pattern may match nothing that could turn a name into a path, several words or shell syntax.
_SHELL_METACHARACTERS = "|&;<>()$`\\\"'*?[]{}~#!"
_UNICODE_SPACES = (
    "\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
FORBIDDEN_PATTERN_CHARACTERS: frozenset[str] = frozenset(
    "/" + _SHELL_METACHARACTERS + _UNICODE_SPACES + "".join(map(chr, [*range(0x21), *range(0x7F, 0xA0)]))
)
_FORBIDDEN_CODES = sorted(map(ord, FORBIDDEN_PATTERN_CHARACTERS))


def _sre_parser() -> Any:
    # The stdlib regex parser (sre_parse; re._parser since 3.11) gives the exact set of characters each part
    # of a pattern can match. Its tree format is the same on 3.10-3.13; unknown node types are refused.
    return importlib.import_module("re._parser" if sys.version_info >= (3, 11) else "sre_parse")


def check_allow_pattern(pattern: str) -> str | None:
    """None if ``pattern`` is a safe ALLOW_PATTERNS entry, else the reason it is refused at startup.

    It must compile with ``re`` and must not be able to match a path separator, whitespace, a control
    character or a shell metacharacter: '.', '\\S', '\\W', '\\D', '\\s', negated classes and ranges or
    literals covering one of those are refused. Which names it matches is ``pattern_refused_examples``'s
    job (startup refuses a pattern matching a refused name; the refused family is also checked on every call).
    """
    if not pattern:
        return "the pattern is empty"
    error = compile_error(pattern)
    if error is not None:  # re's own message is quoted as what re says; TOO_COMPLEX speaks for itself
        return error if error == TOO_COMPLEX else f"{CANNOT_COMPILE}: {error}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FutureWarning about possible future set syntax is not an error
        tree = _sre_parser().parse(pattern)  # re just parsed it from a deeper stack: this cannot fail
    return _pattern_problem(tree)


# Spellings tried for every refused name: names are folded (case, version and '.suffix' dropped), so a
# pattern matching 'python3', 'perl5.36' or 'PYTHON' admits the family as surely as one matching 'python'.
_SUFFIXES = ("", *"0123456789", "3.12", "5.36", "2.7", "3.12.1", "-3", "_3", "-5.36", ".1", ".real", ".so", ".ext4")


def pattern_refused_examples(pattern: str, blacklist_names: Iterable[str] = (), *, limit: int = 2) -> list[str]:
    """Up to ``limit`` names ``pattern`` fully matches that are refused, from different groups (else []).

    Refused: the refused family, and the (folded) ``blacklist_names`` that have no per-program policy here
    (``awk``, ``git``, ``tar`` ... are policed on every call, so a pattern may admit them). Every spelling
    tried folds to a refused name: the name as listed, folded, in upper case and capitalised, each with
    the version suffixes above. ``pattern`` must have passed ``check_allow_pattern``.
    """
    compiled = compile_regex(pattern)
    blacklisted = frozenset(name for name in blacklist_names if canonical_program(name) not in POLICIES)
    refused = REFUSED_FAMILY | blacklisted
    groups = (*REFUSED_GROUPS, tuple(sorted(blacklisted)))
    examples: list[str] = []
    for group in groups:
        spellings = (name for name in _spellings(group) if compiled.fullmatch(name))
        hit = next((name for name in spellings if canonical_program(name) in refused or is_refused_program(name)), None)
        if hit is not None and hit not in examples:
            examples.append(hit)
            if len(examples) == limit:
                break
    return examples


def _spellings(group: Iterable[str]) -> Iterator[str]:
    for suffix in _SUFFIXES:
        for name in group:
            for base in dict.fromkeys((name, fold_program_name(name), name.upper(), name.capitalize())):
                yield base + suffix


def _pattern_problem(items: Iterable[tuple[Any, Any]]) -> str | None:
    for op, av in items:
        kind = str(op)
        if kind in ("ANY", "NOT_LITERAL"):
            return "it can match any character ('.' or a negated character), including '/' and spaces"
        if kind == "LITERAL":
            problem = _codes_problem(av, av)
        elif kind == "IN":
            problem = _class_problem(av)
        elif kind in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            problem = _pattern_problem(av[2])
        elif kind == "SUBPATTERN":
            problem = _pattern_problem(av[3])
        elif kind == "ATOMIC_GROUP":
            problem = _pattern_problem(av)
        elif kind in ("ASSERT", "ASSERT_NOT"):
            problem = _pattern_problem(av[1])
        elif kind == "BRANCH":
            problem = next(filter(None, (_pattern_problem(branch) for branch in av[1])), None)
        elif kind == "GROUPREF_EXISTS":
            problem = _pattern_problem(av[1]) or (_pattern_problem(av[2]) if av[2] is not None else None)
        elif kind in ("AT", "GROUPREF"):
            problem = None  # anchors match no character; a backreference repeats what its group matched
        else:
            problem = f"it uses a regular-expression feature this check does not know ({kind})"
        if problem is not None:
            return problem
    return None


def _class_problem(members: Iterable[tuple[Any, Any]]) -> str | None:
    for op, av in members:
        kind = str(op)
        if kind == "NEGATE":
            return "a negated class ('[^...]') matches '/', spaces and shell characters"
        problem = (
            _codes_problem(av, av)
            if kind == "LITERAL"
            else _codes_problem(*av)
            if kind.startswith("RANGE")
            else _category_problem(str(av))
            if kind == "CATEGORY"
            else f"it uses a character-class feature this check does not know ({kind})"
        )
        if problem is not None:
            return problem
    return None


def _codes_problem(low: int, high: int) -> str | None:
    code = next((code for code in _FORBIDDEN_CODES if low <= code <= high), None)
    if code is None:
        return None
    return f"it can match {chr(code)!r}, a path separator, space, control or shell character"


def _category_problem(category: str) -> str | None:
    if category in ("CATEGORY_DIGIT", "CATEGORY_WORD"):
        return None  # \d and \w: digits, letters and '_'
    return "it uses '\\s', '\\S', '\\W' or '\\D', which match '/', spaces or shell characters"
