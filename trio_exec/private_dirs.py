"""The server's private folders under the temporary directory (the commands' HOME, Landlock's scratch root).

Each folder is locked (``flock`` on the folder itself) for as long as the server that made it lives; the
kernel drops the lock when that process dies, SIGKILL included. Every server sweeps, before it makes its
own, the unlocked folders of its kind that belong to its user: what a killed server left behind is removed
by the next one to start, and a folder still locked is never touched, whatever its name or age.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator

_PENDING = ".trio-exec-new-"  # not yet locked: never swept (the window is one rename long)


def sweep(prefix: str, root: str | None = None) -> list[str]:
    """Remove this user's folders named ``prefix*`` that no live process holds; returns their paths."""
    root = root or tempfile.gettempdir()
    removed = []
    with contextlib.suppress(OSError), os.scandir(root) as entries:
        for entry in entries:
            if not entry.name.startswith(prefix):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid != os.geteuid() or not entry.is_dir(follow_symlinks=False):
                    continue
                fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError (an OSError): still in use
                    shutil.rmtree(entry.path, ignore_errors=True)  # never follows symlinks out of it
                    removed.append(entry.path)
                finally:
                    os.close(fd)
    return removed


def _claim(prefix: str, root: str | None) -> tuple[str, int]:
    sweep(prefix, root)
    pending = tempfile.mkdtemp(prefix=_PENDING, dir=root)
    fd = os.open(pending, os.O_RDONLY | os.O_DIRECTORY)  # not inherited by commands (O_CLOEXEC by default)
    fcntl.flock(fd, fcntl.LOCK_EX)
    path = os.path.join(os.path.dirname(pending), prefix + os.path.basename(pending)[len(_PENDING) :])
    os.rename(pending, path)
    return path, fd


def _release(path: str, fd: int) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.close(fd)


@contextlib.contextmanager
def private_dir(prefix: str, root: str | None = None) -> Iterator[str]:
    """A new empty folder (mode 0700) held for the ``with`` block, removed at its end."""
    path, fd = _claim(prefix, root)
    try:
        yield path
    finally:
        _release(path, fd)


def private_dir_for_process(prefix: str, root: str | None = None) -> str:
    """A new empty folder (mode 0700) held until the process exits."""
    path, fd = _claim(prefix, root)
    atexit.register(_release, path, fd)
    return path
