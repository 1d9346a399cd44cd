"""shell_execute's path confinement: redirection targets, option paths and the ``directory`` argument.

Job (DESIGN.md §3 "The shell_execute tool"): confine ``directory``, redirection targets and the paths the
per-program policies name to the base path, before anything is opened or truncated. How this differs from the
template values' confiner (``validation._containment``), and why: ``paths.py``.

Invariants:
- Redirection targets are resolved against the base path, never against the client's ``directory``; a target
  that leaves the base (absolute elsewhere, ``..``, a symlinked directory) or that is itself a symlink is
  refused before anything is opened or truncated. The returned path has no symlink in its directory part.
- Pure: no trio, no subprocess; the OS is touched only through os.path, os.lstat and os.path.realpath.
- Every refusal is ``Rejected(message, argument="command" | "directory")``; the message names the argument,
  the rule, and what to do instead.
"""

from __future__ import annotations

import os

from trio_exec.errors import Rejected
from trio_exec.paths import (
    PathPolicy,
    PathUse,
    final_component_problem,
    is_within,
    protected_problem,
    real_base,
    special_file_kind,
)
from trio_exec.text import excerpt
from trio_exec.validation import validate_value
from trio_exec.values import Kind

__all__ = ["confine_directory", "confine_file", "confine_target"]


def _refused_path(name: str, value: str, rule: str, base: str) -> Rejected:
    return Rejected(
        f"argument {name!r} ({excerpt(value)}): {rule}; give a path inside {base} such as 'subdir/file.txt'",
        argument="command",
    )


def confine_file(value: str, *, base: str, relative_to: str, use: PathUse, name: str) -> str:
    """The absolute path ``value`` names (relative to ``relative_to``) if ``use`` of it is allowed.

    Syntax checks come from validation (NUL, controls, '..', '~', leading '-', encodings, look-alikes);
    containment is checked on the fully resolved path and on the directory part separately, so a final
    symlink cannot hide an outside parent. For READ/WRITE the final component must not be a symlink and
    must be a regular file (READ: existing; WRITE: existing or new in an existing directory). How this
    differs from the template values' confiner (``validation._containment``), and why: ``paths.py``.
    """
    try:
        validate_value(name, Kind.PATH, value, paths=PathPolicy(validate_paths=False))
    except Rejected as exc:
        raise Rejected(exc.message, argument="command") from None
    candidate = os.path.normpath(os.path.join(relative_to, value))  # join keeps an absolute value as is
    resolved = _resolve(candidate, name, value, base)
    if not is_within(resolved, base):
        raise _refused_path(name, value, f"it resolves outside the base path {base} (symlinks are followed)", base)
    if use is PathUse.INSIDE or use is PathUse.OUTPUT:
        problem = _special_problem(resolved)
        if problem is None and use is PathUse.OUTPUT:
            problem = protected_problem(resolved, base)
        if problem is not None:
            raise _refused_path(name, value, problem, base)
        return resolved
    parent, leaf = os.path.split(candidate)
    real_parent = _resolve(parent, name, value, base)
    if value.endswith("/") or candidate == base or not is_within(real_parent, base):
        raise _refused_path(name, value, "it must name a file inside the base path", base)
    if not os.path.isdir(real_parent):
        raise _refused_path(name, value, "its directory does not exist", base)
    final = os.path.join(real_parent, leaf)
    problem = final_component_problem(final, use)
    if problem is None and use is PathUse.WRITE:
        problem = protected_problem(final, base)
    if problem is not None:
        raise _refused_path(name, value, problem, base)
    return final


def _resolve(path: str, name: str, value: str, base: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError as exc:  # e.g. EACCES reading /proc/1/root: what cannot be resolved cannot be confined
        raise _refused_path(
            name, value, f"it cannot be resolved ({exc.strerror or type(exc).__name__})", base
        ) from None


def _special_problem(resolved: str) -> str | None:
    """Why a path a program reads or enters may not be used: a FIFO, socket or device would hang it."""
    if special_file_kind(resolved) is None:
        return None
    return "it is a FIFO, socket or device, not a regular file or directory (it could hang the command)"


def confine_target(target: str, base_path: str, *, reading: bool = False) -> str:
    """The absolute path of a redirection target, resolved against ``base_path`` (never the client's directory).

    Refused: paths outside the base (absolute elsewhere, ``..``, symlinked directories), a final component
    that is a symlink at all (the runner opens with O_NOFOLLOW), non-regular files, NUL and control
    characters, and (for writing) files inside ``.git`` or git's own configuration. ``reading`` (``<``)
    also requires the file to exist. Raises ``Rejected(argument="command")``.
    """
    base = real_base(base_path)
    use = PathUse.READ if reading else PathUse.WRITE
    return confine_file(target, base=base, relative_to=base, use=use, name="redirection target")


def confine_directory(directory: str | None, base_path: str) -> str:
    """The real path of the ``directory`` argument (default: the base path); an existing directory inside it."""
    base = real_base(base_path)
    if directory is None:
        return base
    validate_value("directory", Kind.PATH, directory, paths=PathPolicy(base_path=base))
    resolved = os.path.realpath(os.path.join(base, directory))
    if not os.path.isdir(resolved):
        raise Rejected(
            f"argument 'directory' ({excerpt(directory)}): it is not an existing directory; "
            f"give a directory inside {base}, or leave 'directory' out to use the base path",
            argument="directory",
        )
    return resolved
