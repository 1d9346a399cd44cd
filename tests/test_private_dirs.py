"""The server's private folders (commands' HOME, Landlock scratch): held while it lives, swept after it dies."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.netserver import run_server
from trio_exec.private_dirs import private_dir, sweep

PREFIX = "trio-exec-home-"
HOLD = (
    "import sys; from trio_exec.private_dirs import private_dir\n"
    "with private_dir(sys.argv[1], sys.argv[2]) as path:\n"
    "    print(path, flush=True); sys.stdin.read()\n"
)


def test_a_private_dir_is_empty_owner_only_and_removed_at_the_end(tmp_path: Path) -> None:
    with private_dir(PREFIX, str(tmp_path)) as path:
        (Path(path) / "file").write_text("x")
        assert Path(path).name.startswith(PREFIX)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert list(tmp_path.iterdir()) == []


def test_sweep_removes_what_a_dead_server_left_and_spares_a_live_ones(tmp_path: Path) -> None:
    left = tmp_path / (PREFIX + "left")
    (left / "sub").mkdir(parents=True)
    other_kind = tmp_path / "trio-exec-scratch-keep"
    other_kind.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / (PREFIX + "link")).symlink_to(outside)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, PREFIX, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        live = Path(holder.stdout.readline().strip())
        assert live.is_dir()
        assert sweep(PREFIX, str(tmp_path)) == []  # the holder swept 'left' when it made its own
        assert not left.exists()
        assert live.is_dir()
        assert other_kind.is_dir()
        assert outside.is_dir()
    finally:
        holder.communicate("", timeout=30)
    assert not live.exists()


async def test_the_home_of_a_killed_server_is_removed_by_the_next_server(tmp_path: Path) -> None:
    env = {"TMPDIR": str(tmp_path)}
    args = ["--transport", "streamable-http", "--cmd", 'echo|"echo {message}"']
    async with run_server(*args, env=env) as killed:
        (home,) = tmp_path.glob(PREFIX + "*")
        killed.proc.kill()
        await killed.proc.wait()
    assert home.is_dir()  # SIGKILL: nothing could clean up
    async with run_server(*args, env=env):
        assert not home.exists()
        assert len(list(tmp_path.glob(PREFIX + "*"))) == 1  # its own
    assert list(tmp_path.glob(PREFIX + "*")) == []
