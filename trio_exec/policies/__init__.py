"""Per-program policies for ``shell_execute``: each program's option grammar and the exec vectors it refuses.

Job: given a stage's canonical program name (``programs.canonical_program``) and its arguments, refuse the
arguments that make an allowlisted program run another program, load code, or write outside the base path
(DESIGN.md §3; each rule and its attack are listed in SECURITY.md, "shell_execute: per-program policies").

Invariants:
- Pure: no I/O here. Questions about paths go through ``Context.confine`` (implemented in ``commands.py``),
  which raises ``Rejected`` itself; every other refusal is a ``Refusal(index, reason)`` that
  ``commands.check_stage`` turns into ``Rejected``.
- A policy is a small table: long options (GNU unique-prefix abbreviations understood, ``--opt=value`` and
  ``--opt value``), short options (clusters, attached and separate values), whole single-dash words, and a
  ``finish`` hook for operands (awk/sed program text, make assignments, git subcommands).
- Fail closed where the grammar is uncertain: an abbreviation that could name a guarded option gets that
  option's rule; an unknown option is assumed to take no value, so whatever follows it is still checked.
  Mistakes therefore over-block (a refusal with a reason), never let an exec vector through.

Modules: ``scanner`` (the option grammar: ``Rule``, ``Policy`` and the scanner that applies them), ``awk``
(the awk lexer and policy), ``sed`` (the sed script checker and policy), ``git`` (global options,
subcommands), ``tables`` (tar, sort, split, rg, make, du/wc, sdiff, diff3, wget, zip, find). This module
holds the table ``POLICIES`` and ``check_arguments``, which also applies the rule every program shares
(``--files0-from``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from trio_exec.paths import PathUse
from trio_exec.policies.awk import AWK
from trio_exec.policies.git import check_git
from trio_exec.policies.scanner import READS_NAMES, Context, Refusal
from trio_exec.policies.sed import SED
from trio_exec.policies.tables import (
    DIFF3,
    FILES0_ONLY,
    MAKE,
    RG,
    SDIFF,
    SORT,
    SPLIT,
    WGET,
    check_find,
    check_tar,
    check_zip,
)

__all__ = ["POLICIES", "Context", "PathUse", "Refusal", "check_arguments"]


def _files0_from(args: Sequence[str]) -> None:
    """Every program: refuse --files0-from and abbreviations down to --files0 (GNU du, wc, sort)."""
    for index, element in enumerate(args, 1):
        name = element[2:].partition("=")[0].lower()
        if element.startswith("--") and len(name) >= len("files0") and "files0-from".startswith(name):
            raise Refusal(index, f"--files0-from {READS_NAMES}; give the file names as arguments")


Checker = Callable[[Sequence[str], Context], None]

POLICIES: Mapping[str, Checker] = {
    "git": check_git,
    "find": check_find,
    "awk": AWK,
    "tar": check_tar,
    "sort": SORT,
    "split": SPLIT,
    "rg": RG,
    "sed": SED,
    "make": MAKE,
    "du": FILES0_ONLY,
    "wc": FILES0_ONLY,
    "sdiff": SDIFF,
    "diff": DIFF3,  # diff3 folds to diff (version suffixes are dropped); GNU diff has no --diff-* options
    "zip": check_zip,
    "wget": WGET,
}


def check_arguments(program: str, args: Sequence[str], ctx: Context) -> None:
    """Apply the global rules and ``program``'s policy (if any) to a stage's arguments (argv[1:])."""
    _files0_from(args)
    checker = POLICIES.get(program)
    if checker is not None:
        checker(args, ctx)
