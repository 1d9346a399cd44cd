"""Program names: folding, aliases, families, the refused family and the template blacklist.

Job: every question about a program *name* (DESIGN.md §3): how a name or path folds (``python3.12`` ->
``python``, ``MKFS.EXT4`` -> ``mkfs``), which policy name it has (``gawk`` -> ``awk``), whether the
template blacklist or the shell_execute refused family covers it, and whether it is a bare name at all.

Invariants:
- Pure: the only OS access is ``os.path.realpath`` to read a program's symlink target.
- A program is matched by its own basename and by its target's, each folded and compared with every
  blacklist entry and that entry's family (``awk`` brings ``gawk``, ``mawk``, ``nawk``; ``sh`` brings every
  shell).
- Each list of names is written once: the blacklist families and the refused groups are built from the
  named groups below where they list the same programs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "DEFAULT_BLACKLIST",
    "MULTI_CALL",
    "PROGRAM_NAME",
    "REFUSED_FAMILY",
    "REFUSED_GROUPS",
    "blacklist_match",
    "blacklist_names",
    "canonical_program",
    "fold_program_name",
    "is_refused_program",
    "program_allowed",
    "refused_as",
    "stage_programs",
]

DEFAULT_BLACKLIST: tuple[str, ...] = (
    "rm", "dd", "mkfs", "chmod", "chown", "sudo", "su", "curl", "wget", "sh", "bash", "dash", "zsh",
    "python", "python3", "perl", "ruby", "node", "lua", "php", "awk", "sed", "gawk", "git", "ssh", "scp",
    "rsync", "tar", "zip", "unzip", "gzip", "bzip2", "find", "xargs", "env", "nice", "timeout", "strace",
    "ltrace", "ncat", "netcat", "nc", "telnet", "ftp", "sftp", "rbash", "rsh",
)  # fmt: skip

_VERSION_SUFFIX = re.compile(r"(?:[-_]?[0-9]+)+$")


def fold_program_name(basename: str) -> str:
    """Lower-case and drop version or variant suffixes: python3.12 -> python, mkfs.ext4 -> mkfs."""
    lowered = basename.lower()
    stem = lowered.split(".", 1)[0] or lowered  # a leading dot is part of the name, not a suffix
    return _VERSION_SUFFIX.sub("", stem) or stem


# --------------------------------------------------------------------------- named groups

# Lists both the blacklist families and the refused groups use (in the refused groups' order, which
# decides the example a refused --allow-patterns entry is shown).
_SHELLS = (
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "pdksh", "oksh", "lksh", "ash", "csh", "tcsh", "fish", "yash",
    "posh", "rbash", "elvish", "xonsh", "nu", "pwsh", "powershell",
)  # fmt: skip
# Multi-call binaries contain most programs (busybox sh, busybox rm, ...); the applet is chosen by argv[0],
# not by the binary's name.
_MULTI_CALL_NAMES = ("busybox", "toybox")
_PYTHONS = ("python", "pypy", "ipython", "bpython", "jython", "micropython")
_RUBIES = ("ruby", "irb", "jruby")
_NODES = ("node", "nodejs", "deno", "bun")
_LUAS = ("lua", "luajit")
_PHPS = ("php", "php-cgi")
_SEDS = ("sed", "gsed")
_NETCATS = ("nc", "ncat", "netcat", "socat")
_AS_ANOTHER_USER = ("sudo", "su", "doas", "pkexec", "runuser")
_SSH_CLIENTS = ("slogin", "dbclient", "autossh")  # ssh itself sits among the refused wrappers
_TRACERS = ("strace", "ltrace")

MULTI_CALL: frozenset[str] = frozenset(_MULTI_CALL_NAMES)


# --------------------------------------------------------------------------- the template blacklist

# Names that do the same job as a blacklist entry; an entry brings every group it belongs to.
_FAMILIES: tuple[frozenset[str], ...] = tuple(
    frozenset(fold_program_name(name) for name in group)
    for group in (
        _SHELLS,
        _PYTHONS,
        (*_RUBIES, "truffleruby"),
        _NODES,
        _LUAS,
        (*_PHPS, "hhvm"),
        ("awk", "gawk", "mawk", "nawk"),
        _SEDS,
        ("tar", "gtar", "bsdtar"),
        _NETCATS,
        (*_AS_ANOTHER_USER, "sudoedit"),
        (*_TRACERS, "gdb", "lldb"),
        ("find", "gfind", "bfs"),
        ("xargs", "gxargs", "parallel"),
        ("env", "nice", "timeout", "gtimeout", "ionice", "chrt", "taskset", "nohup", "setsid", "stdbuf"),
        ("curl", "wget", "aria2c"),
        ("ssh", *_SSH_CLIENTS),
        ("rsh", "remsh", "rlogin", "rexec", "rcp"),
        ("ftp", "lftp", "tftp", "ncftp"),
        ("gzip", "gunzip", "pigz"),
        ("bzip2", "bunzip2", "pbzip2", "lbzip2"),
        ("rm", "shred", "unlink"),
        ("mkfs", "mke2fs", "wipefs"),
        ("chown", "chgrp"),
        ("git", "git-shell", "git-upload-pack", "git-receive-pack"),
    )
)  # fmt: skip


def _family(folded_entry: str) -> frozenset[str]:
    members = {folded_entry}
    for group in _FAMILIES:
        if folded_entry in group:
            members |= group
    return frozenset(members)


def blacklist_names(blacklist: Iterable[str]) -> frozenset[str]:
    """Every folded name the blacklist refuses: each entry and its family (busybox/toybox when non-empty)."""
    entries = [entry.strip() for entry in blacklist if entry.strip()]
    names = {name for entry in entries for name in _family(fold_program_name(os.path.basename(entry)))}
    return frozenset(names | (MULTI_CALL if entries else set()))


def blacklist_match(program_path: str, blacklist: Iterable[str]) -> str | None:
    """The blacklist entry matching the program or its symlink target, else None.

    Both basenames are folded (case, version suffixes) and compared with each folded entry and its family.
    For busybox/toybox, which contain every entry, the program's own folded name is returned.
    """
    candidates = {
        fold_program_name(os.path.basename(program_path)),
        fold_program_name(os.path.basename(os.path.realpath(program_path))),
    }
    entries = [entry.strip() for entry in blacklist if entry.strip()]
    for entry in entries:
        if candidates & _family(fold_program_name(os.path.basename(entry))):
            return entry
    multi_call = sorted(candidates & MULTI_CALL)
    if entries and multi_call:
        return multi_call[0]
    return None


# --------------------------------------------------------------------------- canonical (policy) names

# Names that do one job under another name; a policy is looked up by the canonical name.
_ALIASES: Mapping[str, str] = {
    **dict.fromkeys(("gawk", "mawk", "nawk", "original-awk", "onetrue-awk", "bwk-awk", "busybox-awk"), "awk"),
    **dict.fromkeys(("gfind", "bfind", "bfs"), "find"),
    **dict.fromkeys(("gtar", "bsdtar"), "tar"),
    "gsort": "sort",
    "gsplit": "split",
    "ripgrep": "rg",
    "gsed": "sed",
    **dict.fromkeys(("gmake", "bmake", "pmake"), "make"),
    "gdu": "du",
    "gwc": "wc",
}


def canonical_program(name: str) -> str:
    """The policy name of a program name or path: basename, folded (case, versions), aliases resolved."""
    folded = fold_program_name(os.path.basename(name))
    return _ALIASES.get(folded, folded)


def stage_programs(program: str, program_path: str | None) -> list[str]:
    """Canonical names whose policies apply: the name given, and the pinned binary's symlink target."""
    names = [canonical_program(program)]
    if program_path is not None:
        target = canonical_program(os.path.realpath(program_path))
        if target not in MULTI_CALL and target not in names:
            names.append(target)  # 'pager' -> less, 'editor' -> vim, 'awk' -> gawk
    return names


# --------------------------------------------------------------------------- the refused family

# Programs that turn an argument, a file or stdin into code, or run another program: no per-program policy
# can make them safe, so allowlisting one needs --allow-dangerous. Folded like program names.
REFUSED_GROUPS: tuple[tuple[str, ...], ...] = (
    # shells and multi-call binaries
    (*_SHELLS, *_MULTI_CALL_NAMES, "git-shell"),
    # interpreters and REPLs with shell escapes
    (*_PYTHONS, "perl", *_RUBIES, *_NODES, *_LUAS, *_PHPS, "tclsh", "wish", "expect", "guile", "racket",
     "sbcl", "clisp", "ocaml", "R", "Rscript", "julia", "java", "jshell", "groovy", "scala", "kotlin", "dotnet",
     "osascript", "m4", "dc", "sqlite3", "mysql", "mariadb", "psql"),
    # wrappers that run the command they are given
    ("env", "xargs", "timeout", "nice", "ionice", "chrt", "taskset", "numactl", "nohup", "setsid", "stdbuf",
     "unbuffer", "time", "watch", "flock", "chroot", "unshare", "nsenter", "setpriv", "capsh", "prlimit",
     "script", "parallel", *_AS_ANOTHER_USER, "sg", "newgrp", "firejail", "bwrap",
     "systemd-run", "run-parts", "at", "batch", "crontab", "screen", "tmux", "ssh", "scp", "sftp", "rsync",
     *_NETCATS, "ld.so", "ld-linux.so.2", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
     "ld-musl-x86_64.so.1", "ld-musl-aarch64.so.1"),
    # editors (sed e/w, ed !, vi :!), pagers (less !), openers
    (*_SEDS, "ed", "red", "ex", "vi", "vim", "nvim", "gvim", "view", "vimdiff", "rvim", "emacs",
     "emacsclient", "nano", "pico", "joe", "jed", "mg", "micro", "kak", "hx", "editor", "sensible-editor",
     "less", "more", "most", "pg", "man", "info", "pager", "sensible-pager", "xdg-open", "sensible-browser",
     "x-www-browser", "www-browser"),
    # debuggers and tracers
    ("gdb", "gdbtui", "lldb", *_TRACERS, "valgrind", "perf", "catchsegv", "pdb", "bugpoint", "lli"),
    # more wrappers that run their arguments (issue 11, item 5), found by reading the NAME/SYNOPSIS/DESCRIPTION
    # of the manual (or the bounded `--help`) of every executable in /usr/bin, /usr/sbin, /bin and /sbin on a
    # Debian 12 machine for "runs COMMAND [ARG]..." / "execute a program", then the list and their
    # relatives in other packages (moreutils, util-linux, firejail, libcgroup, tor, ...)
    ("setarch", "linux32", "linux64", "i386", "x86_64", "uname26", "logsave", "ssh-agent", "fakeroot",
     "fakeroot-sysv", "fakeroot-tcp", "fakechroot", "eatmydata", "dbus-run-session", "dbus-launch", "runcon",
     "rlwrap", "xvfb-run", "xinit", "startx", "chronic", "ifne", "pydoc", "choom", "uclampset", "fstab-decode",
     "systemd-inhibit", "systemd-nspawn", "systemd-cat", "debconf", "debconf-apt-progress", *_SSH_CLIENTS,
     "torsocks", "torify", "proxychains", "proxychains4", "tsocks", "faketime", "cgexec", "mpirun",
     "mpiexec", "sem", "byobu", "dtach", "abduco", "vipe", "chpst", "runsv", "softlimit", "setuidgid",
     "envdir", "envuidgid", "daemonize", "start-stop-daemon", "su-exec", "gosu", "newgrp", "npx", "jrunscript",
     "cmake", "ninja", "scons", "ctest", "entr", "cpulimit", "trickle", "nocache", "aa-exec", "sandbox-exec",
     "schroot", "proot", "fakeroot-ng", "pseudo", "lxc-attach", "lxc-execute", "docker", "podman"),
)  # fmt: skip
# Names that fold onto harmless programs (uname26 -> uname, x86_64 -> x, i386 -> i): matched unfolded.
_REFUSED_EXACT: frozenset[str] = frozenset({"uname26", "x86_64", "i386", "linux32", "linux64"})
REFUSED_FAMILY: frozenset[str] = frozenset(
    fold_program_name(name) for group in REFUSED_GROUPS for name in group if name not in _REFUSED_EXACT
)


def is_refused_program(name: str) -> bool:
    """True if ``name`` (a name or a path) folds to a shell, interpreter, wrapper, editor, pager or debugger."""
    return canonical_program(name) in REFUSED_FAMILY or os.path.basename(name).lower() in _REFUSED_EXACT


def refused_as(program: str, program_path: str | None) -> str | None:
    """The refused-family name a stage's program is refused as (for the message), else None.

    Checked: the canonical names of ``stage_programs`` (the name given and the pinned binary's target),
    then the unfolded basenames of the name and the target against the exact names.
    """
    names = stage_programs(program, program_path)
    spelled = [program] if program_path is None else [program, os.path.realpath(program_path)]
    exact = (os.path.basename(name).lower() for name in spelled if os.path.basename(name).lower() in _REFUSED_EXACT)
    return next((name for name in names if name in REFUSED_FAMILY), None) or next(exact, None)


# --------------------------------------------------------------------------- bare names

PROGRAM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def program_allowed(name: str, allow_commands: frozenset[str], allow_patterns: Sequence[re.Pattern[str]]) -> bool:
    """True if the bare name ``name`` is in the allowlist or fully matches an allowed pattern."""
    if PROGRAM_NAME.fullmatch(name) is None:
        return False
    return name in allow_commands or any(pattern.fullmatch(name) for pattern in allow_patterns)
