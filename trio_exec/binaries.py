"""Program names: folding (case, version suffixes), families, and the template blacklist.

Pure: the only OS access is ``os.path.realpath`` to read a program's symlink target. A program is
matched by its own basename and by its target's, each folded (``python3.12`` -> ``python``,
``MKFS.EXT4`` -> ``mkfs``) and compared with every blacklist entry and that entry's family
(``awk`` brings ``gawk``, ``mawk``, ``nawk``; ``sh`` brings every shell).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

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


# Names that do the same job as a blacklist entry; an entry brings every group it belongs to.
_FAMILIES: tuple[frozenset[str], ...] = tuple(
    frozenset(fold_program_name(name) for name in group)
    for group in (
        ("sh", "bash", "dash", "zsh", "ksh", "mksh", "pdksh", "oksh", "lksh", "ash", "csh", "tcsh", "fish",
         "yash", "posh", "rbash", "elvish", "xonsh", "nu", "pwsh", "powershell"),
        ("python", "pypy", "ipython", "bpython", "jython", "micropython"),
        ("ruby", "irb", "jruby", "truffleruby"),
        ("node", "nodejs", "deno", "bun"),
        ("lua", "luajit"),
        ("php", "php-cgi", "hhvm"),
        ("awk", "gawk", "mawk", "nawk"),
        ("sed", "gsed"),
        ("tar", "gtar", "bsdtar"),
        ("nc", "ncat", "netcat", "socat"),
        ("sudo", "su", "doas", "pkexec", "runuser", "sudoedit"),
        ("strace", "ltrace", "gdb", "lldb"),
        ("find", "gfind", "bfs"),
        ("xargs", "gxargs", "parallel"),
        ("env", "nice", "timeout", "gtimeout", "ionice", "chrt", "taskset", "nohup", "setsid", "stdbuf"),
        ("curl", "wget", "aria2c"),
        ("ssh", "slogin", "dbclient", "autossh"),
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
# Multi-call binaries contain most entries (busybox sh, busybox rm, ...): any non-empty blacklist brings them.
_MULTI_CALL = frozenset({"busybox", "toybox"})


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
    return frozenset(names | (_MULTI_CALL if entries else set()))


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
    multi_call = sorted(candidates & _MULTI_CALL)
    if entries and multi_call:
        return multi_call[0]
    return None
