"""Scrub secrets from what the kernel shows of this process in ``/proc/<pid>/{cmdline,environ}``.

Those files show the argument and environment blocks the process started with, whatever
``os.environ`` or ``sys.argv`` say later; any process of the same user (every command the
server runs) can read them. After startup the server overwrites, in place (as
``setproctitle`` rewrites the argument block), the *value* of every environment variable but
those of ``KEPT_ENV`` (settings were read into ``Settings`` by then; any other variable may be a
secret whatever its name) and the values of secret command-line options. Names stay, so ``ps``
and ``/proc`` still show which variables and options were set; each blanked value becomes ``*``
characters of the same length. Linux only; elsewhere (or if ``/proc`` is unreadable) this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable

# Values that stay in /proc/<pid>/environ: no secrets, and libc or OpenSSL may read them after startup
# (time zone and locale for log times, library and certificate paths). Plus every LC_* variable.
KEPT_ENV = frozenset(
    {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "USER", "LOGNAME", "PWD", "SHELL",
     "LD_LIBRARY_PATH", "OPENSSL_CONF", "SSL_CERT_FILE", "SSL_CERT_DIR"}
)  # fmt: skip


def kept_in_environ(name: str) -> bool:
    """Whether the value of ``name`` stays readable in ``/proc/<server pid>/environ``."""
    return name in KEPT_ENV or name.startswith("LC_")


_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36

# Fields of /proc/self/stat (1-based): arg_start 48, arg_end 49, env_start 50, env_end 51.
_ARG_START, _ENV_START = 48, 50


def _block(start_field: int) -> tuple[int, int] | None:
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is field 3 (state)
    start, end = int(fields[start_field - 3]), int(fields[start_field - 2])
    return (start, end) if 0 < start < end else None


def _blank(start: int, length: int) -> None:
    ctypes.memset(start, ord("*"), length)


def _scrub(block: tuple[int, int] | None, secret_at: Callable[[list[bytes], int], int | None]) -> int:
    """Overwrite entries of a NUL-separated block; ``secret_at`` says where a secret starts in one."""
    if block is None:
        return 0
    start, end = block
    entries = ctypes.string_at(start, end - start).split(b"\0")
    offset, count = start, 0
    for i, entry in enumerate(entries):
        cut = secret_at(entries, i)
        if cut is not None and cut < len(entry):
            _blank(offset + cut, len(entry) - cut)
            count += 1
        offset += len(entry) + 1
    return count


def scrub_environment(is_secret: Callable[[str], bool]) -> int:
    """Blank the values of environment variables whose name ``is_secret``; returns how many."""

    def secret_at(entries: list[bytes], i: int) -> int | None:
        name, eq, _ = entries[i].partition(b"=")
        return len(name) + 1 if eq and is_secret(name.decode(errors="replace")) else None

    return _scrub(_block(_ENV_START), secret_at)


def scrub_arguments(secret_options: Iterable[str]) -> int:
    """Blank the values of ``--option value`` / ``--option=value`` arguments; returns how many."""
    options = {o.encode() for o in secret_options}

    def secret_at(entries: list[bytes], i: int) -> int | None:
        head, eq, _ = entries[i].partition(b"=")
        if eq and head in options:
            return len(head) + 1
        if i > 0 and entries[i - 1] in options:
            return 0
        return None

    return _scrub(_block(_ARG_START), secret_at)


def set_dumpable(dumpable: bool) -> bool:
    """``prctl(PR_SET_DUMPABLE)``: a non-dumpable process's ``/proc/<pid>/{mem,environ,fd}`` are root-only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to load
        return False
    return bool(libc.prctl(_PR_SET_DUMPABLE, int(dumpable), 0, 0, 0) == 0)


def set_subreaper() -> bool:
    """``prctl(PR_SET_CHILD_SUBREAPER)``: orphans of our descendants are re-parented to us, not to init."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no C library to load
        return False
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
