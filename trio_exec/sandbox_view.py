"""What a sandboxed command may see: the host paths of its view, decided from the settings (pure).

No namespaces and no processes here, only ``stat``/``readlink`` of the host: which system folders a
command needs, which entries of ``/etc`` are secrets (the class: what other users could not read),
the install prefix a pinned program needs, the per-tool ``Box``, and ``Prepared`` (how one process
starts in a layer, and what to release after). Both kernel layers (``sandbox`` for bubblewrap,
``landlock``) build from these.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from collections.abc import Callable, Iterable

import attrs

from trio_exec.elfsyms import shebang

# The system runtime every program needs, read-only. Merged-/usr systems have the top-level names
# as symlinks into /usr: they are recreated as the same symlinks.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Hidden whatever their mode says (they are also unreadable to other users on every sane host).
ETC_SECRETS = ("shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssl/private")


@attrs.frozen
class Box:
    """What one tool's commands may reach beyond the default view (tool config / shell_execute options)."""

    network: bool = False
    writable: bool = True
    ro: tuple[str, ...] = ()
    rw: tuple[str, ...] = ()


@attrs.define
class Prepared:
    """One process's start in the box; ``spawned`` after Popen, ``finished`` when the call is over."""

    argv: tuple[str, ...]
    pass_fds: tuple[int, ...] = ()
    preexec_fn: Callable[[], None] | None = None
    env: dict[str, str] = attrs.field(factory=dict)
    close: list[Callable[[], None]] = attrs.field(factory=list)  # the parent's copies, once the child runs
    scratch: list[str] = attrs.field(factory=list)  # per-call folders, removed when the call ends

    def spawned(self) -> None:
        for close in self.close:
            close()
        self.close.clear()

    def finished(self) -> None:
        self.spawned()
        for folder in self.scratch:
            shutil.rmtree(folder, ignore_errors=True)  # never follows symlinks out of it
        self.scratch.clear()


def within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def depth(path: str) -> tuple[int, str]:
    return (path.rstrip("/").count("/"), path)


_SYSTEM_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/etc/")


@functools.lru_cache(maxsize=256)
def program_prefixes(program: str) -> tuple[str, ...]:
    """Read-only folders a program outside the system view needs: its install prefix (and its target's).

    ``/opt/tool/bin/tool`` -> ``/opt/tool``; a venv's ``python`` -> the venv and the interpreter's own
    prefix; a script -> also its ``#!`` interpreter's. Never a home folder or a top-level folder as a
    whole: there, only the program's own folder.
    """
    found: list[str] = []
    for path in dict.fromkeys((os.path.abspath(program), os.path.realpath(program))):
        if path.startswith(_SYSTEM_PREFIXES) or not os.path.isabs(path):
            continue
        folder = os.path.dirname(path)
        parent = os.path.dirname(folder)
        if os.path.basename(folder) in ("bin", "sbin") and not _too_broad(parent):
            folder = parent
        if not _too_broad(folder):
            found.append(folder)
    interpreter = shebang(os.path.realpath(program))
    if interpreter and interpreter.startswith("/") and interpreter != program:
        found += program_prefixes(interpreter)
    return tuple(dict.fromkeys(found))


def _too_broad(folder: str) -> bool:
    parts = [p for p in folder.split("/") if p]
    return len(parts) < 2 or folder in ("/root",) or (parts[0] == "home" and len(parts) == 2)


def hidden_in_etc(root: str = "/etc") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Files and folders under ``root`` that an ordinary user of the host could not read.

    The class, not a list: whatever is not world-readable (``shadow``, ``sudoers``, ssh host keys,
    TLS private keys, an application's credentials) is shown as unreadable or empty; the names in
    ``ETC_SECRETS`` are hidden whatever their mode.
    """
    files: list[str] = []
    dirs: list[str] = []
    for name in ETC_SECRETS:
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            dirs.append(path)
        elif os.path.lexists(path):
            files.append(path)
    for top, subdirs, names in os.walk(root, followlinks=False):
        if any(within(top, d) for d in dirs):
            subdirs[:] = []
            continue
        for name in list(subdirs):
            path = os.path.join(top, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) and mode & 0o005 != 0o005:
                dirs.append(path)
                subdirs.remove(name)
        for name in names:
            path = os.path.join(top, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and not mode & stat.S_IROTH and path not in files:
                files.append(path)
    return tuple(dict.fromkeys(files)), tuple(dict.fromkeys(dirs))


def etc_links_outside(root: str = "/etc") -> tuple[str, ...]:
    """World-readable files that symlinks directly in ``root`` point to outside the view.

    ``/etc/resolv.conf`` is often a link into ``/run``; without its target a tool with the network
    could not resolve names.
    """
    found = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if not os.path.islink(path):
            continue
        target = os.path.realpath(path)
        if target.startswith((*_SYSTEM_PREFIXES, "/proc/")):
            continue
        try:
            st = os.stat(target)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IROTH:
            found.append(target)
    return tuple(found)


def system_view(root: str = "/") -> tuple[str, ...]:
    """bwrap arguments for the read-only system runtime and ``/etc``."""
    args: list[str] = []
    for path in SYSTEM_DIRS:
        host = os.path.join(root, path.lstrip("/"))
        if os.path.islink(host):
            args += ["--symlink", os.readlink(host), path]
        elif os.path.isdir(host):
            args += ["--ro-bind", path, path]
    args += ["--ro-bind", "/etc", "/etc"]
    for target in etc_links_outside():
        args += ["--ro-bind", target, target]
    return tuple(args)


def readable_etc(hidden: Iterable[str], root: str = "/etc") -> tuple[str, ...]:
    """``root``'s entries as the largest subtrees that hold nothing of ``hidden`` (for an allow-list layer)."""
    secret = {h for h in hidden if within(h, root)}
    if not secret:  # one rule for all of it (an unprivileged server: nothing in /etc needs hiding)
        return (root,)
    found: list[str] = []

    def visit(folder: str) -> None:
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if path in secret:
                continue
            if any(h.startswith(path + "/") for h in secret):
                if os.path.isdir(path) and not os.path.islink(path):
                    visit(path)
                continue
            if os.path.islink(path):  # a rule applies to the target: only world-readable ones, outside /proc
                target = os.path.realpath(path)
                try:
                    mode = os.stat(target).st_mode
                except OSError:
                    continue
                if target.startswith("/proc/") or not mode & stat.S_IROTH or target in secret:
                    continue
            found.append(path)

    visit(root)
    return tuple(found)


def system_paths() -> tuple[str, ...]:
    return tuple(p for p in SYSTEM_DIRS if os.path.isdir(p) and not os.path.islink(p))
