"""The runner with real processes: groups, caps, stdin, environment, timeouts, cancellation."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.conftest import assert_gone, sleeper
from trio_exec.errors import SpawnFailed
from trio_exec.plan import GIT_ENV, ExecPlan, child_env
from trio_exec.runner import run

PY = sys.executable


def plan(*argv: str, **kw: object) -> ExecPlan:
    env = child_env(search_path="/usr/bin:/bin", home="/tmp", passthrough={}, extra={})
    return ExecPlan(argv=(PY, *argv) if argv and argv[0] == "-c" else argv, cwd="/tmp", env=env, **kw)  # type: ignore[arg-type]


async def test_output_and_exit_code_are_kept() -> None:
    result = await run(plan("-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"))
    assert (result.exit_code, result.signal) == (3, None)
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    assert not result.timed_out
    assert not result.output_limited


async def test_background_children_are_killed_when_the_command_exits() -> None:
    marker = f"trio-exec-test-{uuid.uuid4().hex}"
    with trio.fail_after(10):
        result = await run(plan("/bin/sh", "-c", f"{sleeper(marker)} & echo $!", timeout_s=60))
    assert result.exit_code == 0
    assert int(result.stdout) > 0  # the background process was started
    assert_gone(marker)


async def test_a_timeout_kills_the_whole_process_group_on_trios_clock(autojump_clock: trio.testing.MockClock) -> None:
    marker = f"trio-exec-test-{uuid.uuid4().hex}"
    script = f"{sleeper(marker)} & {sleeper(marker)}; echo never"
    result = await run(plan("/bin/sh", "-c", script, timeout_s=5))
    assert result.timed_out
    assert result.stdout == b""
    assert result.signal is not None
    assert_gone(marker)


async def test_a_real_timeout_stops_a_command_that_ignores_sigterm() -> None:
    marker = f"trio-exec-test-{uuid.uuid4().hex}"
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"print('{marker}', flush=True); time.sleep(300)"
    )
    with trio.fail_after(10):
        result = await run(plan("-c", code, timeout_s=0.5))
    assert result.timed_out
    assert result.signal == 9  # SIGTERM was ignored, SIGKILL after the grace
    assert result.stdout == f"{marker}\n".encode()
    assert_gone(marker)


async def test_cancellation_kills_the_whole_process_group() -> None:
    marker = f"trio-exec-test-{uuid.uuid4().hex}"
    with trio.fail_after(10):
        with trio.move_on_after(0.5):
            await run(plan("/bin/sh", "-c", f"{sleeper(marker)} & {sleeper(marker)}", timeout_s=60))
    assert_gone(marker)


async def test_output_over_the_cap_is_truncated_and_the_command_stopped() -> None:
    code = "import sys\nwhile True: sys.stdout.write('x' * 65536)"
    with trio.fail_after(20):
        result = await run(plan("-c", code, max_output_bytes=100_000))
    assert result.stdout_truncated
    assert not result.stderr_truncated
    assert len(result.stdout) == 100_000
    assert result.output_limited
    assert result.signal == 9


async def test_large_stdin_is_written_while_output_is_read() -> None:
    data = os.urandom(4 * 1024 * 1024) * 2  # 8 MiB: far past any pipe buffer in both directions
    with trio.fail_after(30):
        result = await run(plan("/bin/cat", stdin=data, max_output_bytes=len(data)))
    assert result.exit_code == 0
    assert result.stdout == data


async def test_a_command_that_ignores_stdin_does_not_break_the_call() -> None:
    with trio.fail_after(10):
        result = await run(plan("/bin/true", stdin=b"x" * (1 << 20)))
    assert result.exit_code == 0


async def test_stdin_is_dev_null_by_default() -> None:
    with trio.fail_after(10):
        result = await run(plan("/bin/cat"))
    assert (result.exit_code, result.stdout) == (0, b"")


async def test_the_child_environment_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = uuid.uuid4().hex
    monkeypatch.setenv("TRIO_EXEC_TEST_SECRET", secret)
    result = await run(plan("/usr/bin/env"))
    lines = sorted(result.stdout.decode().splitlines())
    assert lines == sorted(
        ["HOME=/tmp", "LANG=C.UTF-8", "PATH=/usr/bin:/bin", *(f"{k}={v}" for k, v in GIT_ENV.items())]
    )
    assert secret.encode() not in result.stdout


def test_passthrough_and_tool_env_add_to_the_minimal_environment() -> None:
    env = child_env(search_path="/bin", home="/h", passthrough={"TZ": "UTC"}, extra={"LC_ALL": "C"})
    assert env == {"PATH": "/bin", "LANG": "C.UTF-8", "HOME": "/h", **GIT_ENV, "TZ": "UTC", "LC_ALL": "C"}


async def test_a_program_that_cannot_start_is_a_spawn_failure() -> None:
    with pytest.raises(SpawnFailed, match="cannot start"):
        await run(plan("/nonexistent/program"))


async def test_death_by_signal_is_reported_as_a_signal() -> None:
    result = await run(plan("-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"))
    assert (result.exit_code, result.signal, result.timed_out) == (None, 11, False)


async def test_a_pipeline_runs_its_stages_concurrently_in_one_group() -> None:
    with trio.fail_after(10):  # yes never ends by itself: only a concurrent head lets it finish
        result = await run(plan("/usr/bin/yes", more=(("/usr/bin/head", "-n", "1"),)))
    assert result.stdout == b"y\n"
    assert result.stages[1] == (0, None)
    assert result.stages[0] == (None, signal.SIGPIPE)  # yes died writing to the finished head


async def test_pipeline_stages_report_their_own_exit_codes(tmp_path: Path) -> None:
    result = await run(plan("/bin/false", more=(("/bin/cat",), ("/usr/bin/wc", "-c"))))
    assert [code for code, _ in result.stages] == [1, 0, 0]
    assert result.exit_code == 0  # as a shell reports it: the last stage's
    assert result.stdout.strip() == b"0"


async def test_redirections_read_and_write_files(tmp_path: Path) -> None:
    source, target = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("b\na\n")
    await run(plan("/usr/bin/sort", stdin_path=str(source), stdout_path=str(target)))
    assert target.read_text() == "a\nb\n"
    await run(plan("/bin/echo", "more", stdout_path=str(target), append=True))
    assert target.read_text() == "a\nb\nmore\n"


async def test_a_redirection_never_follows_a_final_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (tmp_path / "link.txt").symlink_to(victim)
    with pytest.raises(OSError, match=r"symbolic links|Too many levels"):
        await run(plan("/bin/echo", "x", stdout_path=str(tmp_path / "link.txt")))
    assert victim.read_text() == "keep me\n"


async def test_a_stage_that_cannot_start_stops_the_ones_already_started() -> None:
    with pytest.raises(SpawnFailed, match="nonexistent"):
        await run(plan("/usr/bin/yes", more=(("/nonexistent/program",),)))
