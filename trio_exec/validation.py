"""Validating placeholder values: the entry points, and the path kind with its containment.

Job: decide, before any process exists, whether one agent-supplied value may become one argv element
(DESIGN.md §3). ``validate_value`` applies the rules of every kind (``values.py``; the path kind's are here,
as they confine the value to the base path); ``check_word_path`` confines a rendered word that holds a path
value. Program blacklisting lives in ``programs.py``; the path facts both modes share (containment,
``PathPolicy``, special files) in ``paths.py``.

Invariants:
- Pure: no trio, no subprocess. The only OS access is ``os.path.realpath`` (which ``lstat``s and
  ``readlink``s) and ``os.stat`` (special files) for path containment.
- A refusal is always ``Rejected(message, argument=name)``; the message names the argument, the rule and
  what would be accepted instead. For a sensitive argument no part of the value appears in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from trio_exec.errors import Rejected
from trio_exec.paths import PathPolicy, has_dotdot, is_within, special_file_kind
from trio_exec.text import excerpt, find_bad_char, variants_of
from trio_exec.values import (
    MAX_ARGV,
    PATH_METACHARACTERS,
    TOO_DEEP,
    Check,
    CheckContext,
    Constraint,
    Kind,
    Problem,
    check_choices,
    check_common,
    check_flag,
    check_integer,
    check_max_length,
    check_plain,
    check_regex,
    check_text,
    leading_dash,
    message,
    metacharacter,
)

__all__ = ["check_argv_length", "check_word_path", "is_sensitive", "validate_value"]


# --------------------------------------------------------------------------- path

_SYSTEM_DIRS = ("/proc", "/sys", "/dev")  # kernel interfaces: secrets (environ, mem) and devices

# Characters that look like '/' but are neither '/' nor normalised to it; refusing them keeps what a
# reviewer reads in the audit log equal to the path structure the kernel sees.
_SLASH_LOOKALIKES = frozenset("\u2044\u2215\u2216\u29f5\u29f8\u29f9")


def _path_remedy(policy: PathPolicy) -> str:
    if policy.validate_paths and policy.base_path is not None:
        return f"give a path inside {policy.base_path} such as 'subdir/file.txt'"
    return "give a path such as 'subdir/file.txt'"


def _check_path(value: str, ctx: CheckContext) -> Problem | None:
    policy = ctx.paths
    remedy = _path_remedy(policy)
    if not value:
        return Problem("an empty path is not allowed", remedy)
    if value.startswith("-"):
        return leading_dash("a path (write './-name' for a file whose name starts with '-')")
    if value.startswith("~"):
        return Problem(
            "a leading '~' is not allowed (many programs read it as a home directory)",
            "write './~name' for a file whose name starts with '~', or " + remedy,
        )
    meta = PATH_METACHARACTERS.search(value)
    if meta is not None:
        return metacharacter(meta.group(), "file names may use letters, digits, spaces, ()[]{}.,_+=@%")
    if has_dotdot(value):
        return Problem("'..' components are not allowed (they could leave the base path)", remedy)
    lookalike = next((char for char in value if char in _SLASH_LOOKALIKES), None)
    if lookalike is not None:
        return Problem(
            f"U+{ord(lookalike):04X} looks like '/' but is not a separator",
            "use the ASCII '/' between directories",
            hidden_rule="characters that look like '/' are not allowed",
        )
    variants, too_deep = variants_of(value)
    if too_deep:
        return TOO_DEEP
    for label, form in variants:
        problem = _path_variant_problem(value, form, label)
        if problem is not None:
            return problem
    if not policy.validate_paths:
        return None
    for label, form in [("", value), *variants]:
        problem = _containment(form, policy, label, remedy)
        if problem is not None:
            return problem
    return None


def _path_variant_problem(raw: str, form: str, label: str) -> Problem | None:
    """Refuse a decoded/normalised reading that is not the same path structure as the raw value."""
    plain_remedy = "send the plain path without percent-encoding or look-alike characters"
    if find_bad_char(form) is not None or PATH_METACHARACTERS.search(form) is not None:
        return Problem(f"its {label} holds control, invisible or shell metacharacters", plain_remedy)
    if "\ufffd" in form and "\ufffd" not in raw:
        return Problem(
            f"its {label} has percent-escapes that are not valid UTF-8 (overlong forms can hide '.' and '/')",
            plain_remedy,
        )
    raw_parts, form_parts = raw.split("/"), form.split("/")
    if len(raw_parts) != len(form_parts) or form.startswith("~"):
        rule = f"its {label} has a different directory structure (encoded or look-alike '/')"
        return Problem(rule, plain_remedy)
    for raw_part, form_part in zip(raw_parts, form_parts, strict=True):
        if form_part in (".", "..") and raw_part != form_part:
            return Problem(
                f"its {label} turns a name into '{form_part}' (encoded or look-alike dots)",
                plain_remedy,
            )
    return None


def _containment(
    path: str, policy: PathPolicy, label: str, remedy: str, relative_to: str | None = None
) -> Problem | None:
    """Why ``path`` (one reading of a value, relative to ``relative_to`` or the base) is not confined, or None.

    The program follows symlinks, so the resolved path must be inside the base; ``/proc``, ``/sys`` and
    ``/dev`` are refused by the lexical and the resolved form. How this differs from shell_execute's confiner
    (``confinement.confine_file``), and why: ``paths.py``.
    """
    base = policy.base_path
    reading = f"its {label}" if label else "the path"
    if base is None and relative_to is None and not os.path.isabs(path):
        return Problem(
            "relative paths need a base path, and none is set",
            "give an absolute path, or ask the operator to start trio-exec with --base-path",
        )
    start = relative_to or base
    candidate = path if start is None else os.path.join(start, path)  # join keeps an absolute path as is
    lexical = os.path.normpath(candidate)
    # realpath follows every symlink, also one followed by components that do not exist yet
    # (base/cfg -> ../outside, then 'cfg/newdir/x'), so mkdir -p style tools cannot escape either.
    try:
        resolved = os.path.realpath(candidate)
    except OSError as exc:  # e.g. EACCES reading /proc/1/root: what cannot be resolved cannot be confined
        return Problem(f"{reading} cannot be resolved ({exc.strerror or type(exc).__name__})", remedy)
    if base is not None and not is_within(resolved, base):
        return Problem(f"{reading} resolves outside the base path {base} (symlinks are followed)", remedy)
    # The lexical form matters too: /proc/self/... means the server to realpath but the child to the kernel.
    for location in (lexical, resolved):
        inside_base = base is not None and is_within(location, base)
        system = next((d for d in _SYSTEM_DIRS if is_within(location, d)), None)
        if system is not None and not inside_base:
            rule = f"{reading} is under {system} (kernel and device files)"
            return Problem(rule, f"{remedy}, not under {system}")
    if not policy.special_files:
        return _special_file(resolved, reading, remedy)
    return None


def _special_file(resolved: str, reading: str, remedy: str) -> Problem | None:
    """Refuse an existing path that is neither a regular file nor a directory (FIFO, socket, device)."""
    what = special_file_kind(resolved)
    if what is None:
        return None
    return Problem(
        f"{reading} is {what}, not a regular file or directory (reading it could hang the command)",
        f"{remedy}; the operator can allow special files for this tool with special_files = true",
    )


def check_word_path(
    name: str,
    value: str,
    word: str,
    readings: Sequence[str],
    *,
    paths: PathPolicy,
    relative_to: str | None = None,
    sensitive: bool = False,
) -> None:
    """Confine a rendered argv word that holds a path placeholder's value and other text.

    The program opens the whole word (``{file}.txt``, ``data/{file}``) or its tail after an option's ``=``
    (``--out={file}``), not the value alone; each of ``readings`` (and its decoded forms) must pass the same
    containment, system-directory and special-file rules as a lone path value. Raises ``Rejected``.
    """
    if not paths.validate_paths:
        return
    remedy = _path_remedy(paths)
    for reading in readings:
        if paths.base_path is None and relative_to is None and not os.path.isabs(reading):
            continue  # nothing to confine a relative word to; the value alone was checked (and is absolute)
        variants, _too_deep = variants_of(reading)
        for label, form in [("", reading), *variants]:
            problem = _containment(form, paths, label, remedy, relative_to)
            if problem is not None:
                rule = f"in the word {excerpt(word)} {problem.rule}"
                hidden = f"in the word it is part of, {problem.hidden_rule or problem.rule}"
                raise Rejected(
                    message(name, value, Problem(rule, problem.remedy, hidden_rule=hidden), sensitive=sensitive),
                    argument=name,
                )


_KIND_CHECKS: dict[Kind, Check | None] = {
    Kind.PLAIN: check_plain,
    Kind.PATH: _check_path,
    Kind.FLAG: check_flag,
    Kind.REGEX: check_regex,
    Kind.TEXT: check_text,
    Kind.INTEGER: check_integer,
    Kind.ENUM: None,  # membership is the constraint check
}


# --------------------------------------------------------------------------- public entry points

# Frozen, so sharing one default instance is safe.
_NO_BASE_PATH = PathPolicy()
_NO_CONSTRAINT = Constraint()


def validate_value(
    name: str,
    kind: Kind,
    value: str,
    *,
    paths: PathPolicy = _NO_BASE_PATH,
    constraint: Constraint = _NO_CONSTRAINT,
    sensitive: bool = False,
) -> None:
    """Raise ``Rejected(message, argument=name)`` on the first broken rule; return None when fine.

    Order: rules for every kind, the operator's max_length, the kind's own rules, then enum and pattern.
    """
    if kind is Kind.ENUM and constraint.enum is None:
        raise ValueError(f"placeholder {name!r} has kind 'enum' but no enum values")
    problem = check_common(value, text=kind is Kind.TEXT) or check_max_length(value, constraint)
    check = _KIND_CHECKS[kind]
    if problem is None and check is not None:
        problem = check(value, CheckContext(paths, constraint))
    if problem is None:
        problem = check_choices(value, constraint)
    if problem is not None:
        raise Rejected(message(name, value, problem, sensitive=sensitive), argument=name)


def check_argv_length(argv: Sequence[str]) -> None:
    """Refuse a rendered command line with more than MAX_ARGV elements."""
    if len(argv) > MAX_ARGV:
        raise Rejected(
            f"the command would have {len(argv)} arguments, more than the limit of {MAX_ARGV}; pass fewer",
            argument=None,
        )


def is_sensitive(name: str, sensitive_keys: Iterable[str]) -> bool:
    """True if any non-empty key occurs in ``name``, case-insensitively (``api_token`` matches ``token``)."""
    lowered = name.lower()
    return any(key.strip().lower() in lowered for key in sensitive_keys if key.strip())
