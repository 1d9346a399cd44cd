"""Path vocabulary both modes share: containment, the base path, special files, and what a path's use allows.

Job: the facts about a path that template values (``validation.py``) and shell_execute (``confinement.py``)
both rely on, written once. Each mode keeps its own confiner, because they confine different things:

- ``validation._containment`` (a template placeholder's value, or the argv word holding it): the program
  opens the path itself and follows symlinks, so the *resolved* path must be inside the base. The base is
  optional (without one only absolute paths pass); a path under ``/proc``, ``/sys`` or ``/dev`` is refused
  by its lexical and its resolved form; a final symlink is fine when its target is inside; the path need not
  exist; special files are refused unless the tool sets ``special_files``. Nothing is returned.
- ``confinement.confine_file`` (shell_execute's redirection targets and option paths): the base is always set.
  The runner opens a redirection itself with ``O_NOFOLLOW``, so for READ/WRITE the directory part is resolved
  on its own, the final component may not be a symlink and must be a regular file (READ: an existing one),
  and writing into ``.git`` or git's configuration is refused. It returns the path to open, with no symlink in
  its directory part.

Invariants:
- Pure: the OS is touched only through ``os.path``, ``os.stat``, ``os.lstat`` and ``os.path.realpath``.
- Containment compares whole components: ``/srv/workshop`` is not inside ``/srv/work``.
"""

from __future__ import annotations

import enum
import os
import re
import stat

import attrs

__all__ = [
    "PathPolicy",
    "PathUse",
    "final_component_problem",
    "has_dotdot",
    "is_within",
    "protected_problem",
    "real_base",
    "special_file_kind",
]


class PathUse(enum.Enum):
    """What a program does with a path it receives in an option value or an operand."""

    INSIDE = "inside"  # reads or changes into it: must resolve inside the base path
    READ = "read"  # opens an existing regular file (the '<' redirection)
    WRITE = "write"  # creates or truncates it: inside, not a symlink, not git's configuration
    OUTPUT = "output"  # a directory it creates files in: inside, not git's configuration


def is_within(path: str, root: str) -> bool:
    """True if ``path`` is ``root`` or below it (both absolute and normalised)."""
    # commonpath compares whole components: /srv/workshop is not inside /srv/work.
    return os.path.commonpath([path, root]) == root


_SEPARATORS = re.compile(r"[/\\]")


def has_dotdot(value: str) -> bool:
    """True if ``..`` is a whole path component ('a/../b', '../x', '..'), not part of a name ('a..b')."""
    return ".." in _SEPARATORS.split(value)


def real_base(base_path: str) -> str:
    """The real path of shell_execute's base path (resolved on every call); it must be absolute."""
    if not os.path.isabs(base_path):
        raise ValueError(f"base_path must be absolute, got {base_path!r}")
    return os.path.realpath(base_path)


def _require_absolute(_instance: object, _attribute: object, value: str | None) -> None:
    # A relative base would make containment depend on the server's working directory.
    if value is not None and not os.path.isabs(value):
        raise ValueError(f"base_path must be an absolute real path, got {value!r}")


@attrs.frozen
class PathPolicy:
    """How path values are confined.

    ``base_path`` is an absolute path the caller already passed through ``os.path.realpath`` (unlike
    ``real_base``, which resolves shell_execute's base itself).
    ``validate_paths=False`` (``--no-validate-paths``) turns off containment, the ``/proc``/``/sys``/``/dev``
    refusal, the special-file refusal and the "relative paths need a base path" rule; the syntax checks stay.
    ``special_files`` (a tool's ``special_files = true``) accepts FIFOs, sockets and devices inside the base;
    otherwise an existing path must be a regular file or a directory (a FIFO would hang the command).
    """

    base_path: str | None = attrs.field(default=None, validator=_require_absolute)
    validate_paths: bool = True
    special_files: bool = False


def special_file_kind(resolved: str) -> str | None:
    """What an existing ``resolved`` is when it is neither a regular file nor a directory, else None.

    ``'a FIFO'``, ``'a socket'`` or ``'a device or special file'``: reading one could hang the command.
    A path that does not exist (yet) is None: the program creates it or fails on its own.
    """
    try:
        mode = os.stat(resolved).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device or special file"


def final_component_problem(final: str, use: PathUse) -> str | None:
    """Why the runner may not open ``final`` for ``use`` (READ or WRITE) with O_NOFOLLOW, or None."""
    try:
        mode = os.lstat(final).st_mode
    except FileNotFoundError:
        return "the file does not exist" if use is PathUse.READ else None
    except OSError as exc:
        return f"it cannot be checked ({exc.strerror})"
    if stat.S_ISLNK(mode):
        return "it is a symbolic link (links are not followed for redirections and output files); name the real file"
    if not stat.S_ISREG(mode):
        return "it is not a regular file (a directory, FIFO or device)"
    return None


def protected_problem(final: str, base: str) -> str | None:
    """Why a program may not write ``final`` (inside ``base``), or None.

    Writing here would let the next git command run programs: .git/config and hooks name them, and
    $HOME/.gitconfig does too when HOME is the base path.
    """
    parts = [part.lower() for part in os.path.relpath(final, base).split(os.sep)]
    if ".git" in parts:
        return "is inside .git (git runs programs named in .git/config and .git/hooks)"
    if parts[-1] == ".gitconfig" or parts[:2] == [".config", "git"]:
        return "is git configuration (it can name programs git runs)"
    return None
