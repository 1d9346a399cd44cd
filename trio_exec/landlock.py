"""The Landlock layer: the fallback where user namespaces are refused (Docker's default profile, Ubuntu).

Landlock (ABI >= 4), applied by the child between fork and exec, allows the same paths as the
bubblewrap view (read-only system and program prefixes, the base path, the call's own ``TMPDIR``),
refuses TCP connect and bind unless the tool has the network, scopes signals and abstract sockets to
the command's own domain (ABI >= 6); the child also drops every capability, sets ``no_new_privs`` and
loads the same seccomp filter. Two stacked rulesets: one per tool, built once; one per call, a few
rules, for its ``TMPDIR``. What it cannot do (no PID namespace, no private ``/tmp`` or ``/proc``, no
UDP control, names stay visible) is in SECURITY.md; the runner kills a call's orphans instead.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trio_exec.sandbox_view import Box, Prepared, program_prefixes, within

if TYPE_CHECKING:
    from trio_exec.sandbox import Sandbox

LANDLOCK_MIN_ABI = 4  # TCP connect/bind rules
_DEVICES_RW = ("/dev/null", "/dev/zero", "/dev/full")
_DEVICES_RO = ("/dev/random", "/dev/urandom")
_PR_SET_PDEATHSIG, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 1, 22, 2
_PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class ChildCalls:
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


def _allow(ruleset: Any, grants: Mapping[str, Any]) -> None:
    from landlockpy import AccessFS

    on_files = AccessFS.EXECUTE | AccessFS.WRITE_FILE | AccessFS.READ_FILE | AccessFS.TRUNCATE
    for path, access in grants.items():
        if os.path.isdir(path):
            ruleset.allow_path(path, access)
        elif os.path.exists(path):  # a file: only the rights that apply to files are valid
            ruleset.allow_path(path, access & on_files)


@functools.lru_cache(maxsize=64)
def _static_ruleset(box_: Sandbox, prefixes: tuple[str, ...], cwd: str, home: str, box: Box) -> Any:
    """The part of a command's rules that does not change from call to call (built once, kept open).

    Every per-call folder lives under ``box_.scratch_root``, writable here; the per-call layer narrows
    writes there to the call's own folder.
    """
    from landlockpy import AccessFS, AccessNet, Ruleset, Scope

    read = AccessFS.READ_FILE | AccessFS.READ_DIR | AccessFS.EXECUTE
    write = ~AccessFS.NONE & ~AccessFS.MAKE_CHAR & ~AccessFS.MAKE_BLOCK & ~AccessFS.IOCTL_DEV
    ruleset = Ruleset(
        handled_net=AccessNet.NONE if box.network else AccessNet.BIND_TCP | AccessNet.CONNECT_TCP,
        scoped=Scope.SIGNAL | Scope.ABSTRACT_UNIX_SOCKET,
    )
    grants: dict[str, AccessFS] = {}
    for path in (*box_.readable, *prefixes, *box_.ro, *box.ro, home):
        grants[path] = read
    for path in _DEVICES_RO:
        grants[path] = AccessFS.READ_FILE
    for path in _DEVICES_RW:
        grants[path] = AccessFS.READ_FILE | AccessFS.WRITE_FILE | AccessFS.TRUNCATE
    grants[box_.base] = write if box.writable else read
    if not within(cwd, box_.base):
        grants[cwd] = write if box.writable else read
    for path in (*box_.rw, *box.rw, box_.scratch_root):
        grants[path] = write
    _allow(ruleset, grants)
    return ruleset


def landlock_prepare(box_: Sandbox, argv: Sequence[str], *, cwd: str, home: str, box: Box) -> Prepared:
    """Two Landlock layers for this command; the child restricts itself to both just before exec.

    The first (cached per tool) says what may be read, written and connected to; the second (a few
    rules, per call) lets writes reach only the writable paths and this call's own ``TMPDIR``, not the
    folders of other calls.
    """
    from landlockpy import AccessFS, AccessNet, Ruleset

    static = _static_ruleset(box_, program_prefixes(argv[0]), cwd, home, box)
    writes = ~(AccessFS.READ_FILE | AccessFS.READ_DIR | AccessFS.EXECUTE | AccessFS.IOCTL_DEV)
    scratch = tempfile.mkdtemp(prefix="call-", dir=box_.scratch_root)  # the command's private TMPDIR
    own = Ruleset(handled_fs=writes, handled_net=AccessNet.NONE)
    try:
        grants = dict.fromkeys(_DEVICES_RW, AccessFS.WRITE_FILE | AccessFS.TRUNCATE)
        shown = writes & ~AccessFS.MAKE_CHAR & ~AccessFS.MAKE_BLOCK
        if box.writable:
            grants[box_.base] = shown
            grants[cwd] = shown
        for path in (*box_.rw, *box.rw, scratch):
            grants[path] = shown
        _allow(own, grants)
    except BaseException:
        own.close()
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
        static.restrict()  # also sets no_new_privs
        own.restrict()
        if calls.has_filter and calls.libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(calls.prog), 0, 0):
            os._exit(1)

    return Prepared(
        argv=tuple(argv), preexec_fn=restrict, env={"TMPDIR": scratch}, close=[own.close], scratch=[scratch]
    )
