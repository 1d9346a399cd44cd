"""What a call becomes before anything runs: the plan every tool emits and the runner executes.

PURE: no trio, no processes. ``PlanDefaults`` is built once at start-up from the settings (the working
directory, HOME, the minimal child environment, the prlimit wrapper, the caps, the sandbox); a tool's
``plan(arguments, defaults)`` starts from it and returns an ``ExecPlan``; ``runner.run(plan)`` returns a
``RunResult``. Nothing between the tool and the runner decides anything.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from trio_exec.config import Limits, Settings
from trio_exec.errors import ConfigError
from trio_exec.sandbox_view import Box

if TYPE_CHECKING:
    from trio_exec.sandbox import Sandbox

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"  # commands' PATH unless the operator passes theirs (--env-allow PATH)

# For any git a command runs (SECURITY.md, the git policy): no global configuration (HOME may be the base path,
# so ~/.gitconfig is the agent's to write), no bare repository found by searching (its configuration has no
# '.git' in its path), no hooks, no fsmonitor daemon. Configuration given this way outranks every file.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_COUNT": "3",
    "GIT_CONFIG_KEY_0": "safe.bareRepository",
    "GIT_CONFIG_VALUE_0": "explicit",
    "GIT_CONFIG_KEY_1": "core.hooksPath",
    "GIT_CONFIG_VALUE_1": "/dev/null",
    "GIT_CONFIG_KEY_2": "core.fsmonitor",
    "GIT_CONFIG_VALUE_2": "false",
    "GIT_TERMINAL_PROMPT": "0",
}


@attrs.frozen
class ExecPlan:
    """A validated command, ready to run."""

    argv: tuple[str, ...]  # the program (an absolute path) and its arguments
    cwd: str
    env: Mapping[str, str] = attrs.field(repr=False)
    stdin: bytes | None = attrs.field(default=None, repr=False)
    timeout_s: float = 30.0
    max_output_bytes: int = 1024 * 1024
    more: tuple[tuple[str, ...], ...] = ()  # further pipeline stages: stdout -> stdin
    stdin_path: str | None = None  # '<': the first stage reads this file
    stdout_path: str | None = None  # '>'/'>>': the last stage writes this file (not captured)
    append: bool = False
    sandbox: Sandbox | None = attrs.field(default=None, repr=False)  # None or off: no kernel boundary
    box: Box = attrs.field(factory=Box)  # what the sandbox lets this tool's commands reach
    wrapper: tuple[str, ...] = ()  # put in front of every stage, outside the sandbox: the prlimit wrapper
    programs: tuple[str, ...] | None = None  # a pipeline's stages as the agent named them (its result's 'stages')
    timeout_chosen: bool = False  # the client asked for less than the operator's timeout (the breaker ignores it)
    tool_timeout_s: float | None = None  # the operator's own limit for this tool (timeout_s), which a job keeps too

    @property
    def stages(self) -> tuple[tuple[str, ...], ...]:
        return (self.argv, *self.more)


@attrs.frozen
class RunResult:
    """What happened to a command that was started."""

    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    duration_s: float
    stages: tuple[tuple[int | None, int | None], ...] = ()  # (exit code, signal) per pipeline stage

    @property
    def output_limited(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated


def limits_prefix(limits: Limits, prlimit_path: str | None) -> tuple[str, ...]:
    """The ``prlimit`` wrapper that applies ``limits`` to a command (empty when none is set).

    A wrapper rather than ``preexec_fn``: that would force fork instead of vfork (milliseconds
    per spawn) and is not thread-safe. Soft and hard limits are both set, so the command
    cannot raise them again.
    """
    if not limits.any():
        return ()
    if prlimit_path is None:
        raise ConfigError("resource limits need the prlimit program (util-linux), which was not found")
    options = {
        "--as": limits.memory_bytes,
        "--cpu": limits.cpu_s,
        "--fsize": limits.fsize_bytes,
        "--nofile": limits.nofile,
        "--nproc": limits.nproc,
    }
    return (prlimit_path, *(f"{k}={v}" for k, v in options.items() if v is not None), "--")


def child_env(
    *, search_path: str, home: str, passthrough: Mapping[str, str], extra: Mapping[str, str]
) -> dict[str, str]:
    """A minimal environment: nothing of the server's leaks unless the operator listed it.

    It holds PATH, LANG, HOME and ``GIT_ENV``, then what the operator passes through or sets per tool.
    """
    env = {"PATH": search_path, "LANG": "C.UTF-8", "HOME": home, **GIT_ENV}
    env.update(passthrough)
    env.update(extra)
    return env


@attrs.frozen
class PlanDefaults:
    """What every plan starts from, decided once at start-up (the server never changes directory)."""

    cwd: str  # the base path, else the server's working directory
    home: str  # the base path, else the system's temporary directory
    private_home: str  # an empty private folder (shell_execute): no planted ~/.gitconfig reaches its commands
    env: Mapping[str, str] = attrs.field(repr=False)  # the minimal child environment, without per-tool extras
    wrapper: tuple[str, ...]  # the prlimit wrapper
    cmd_timeout_s: float  # --cmd-timeout: a tool's timeout unless it sets its own
    max_timeout_s: float
    max_output_bytes: int
    max_stdin_bytes: int
    sandbox: Sandbox | None = attrs.field(default=None, repr=False)
    sandbox_network: bool = False  # shell_execute's commands may use the network

    @classmethod
    def create(cls, settings: Settings, sandbox: Sandbox | None, *, private_home: str = "") -> PlanDefaults:
        """The defaults of ``settings`` (``ConfigError`` when limits are set without prlimit)."""
        s = settings
        home = s.policy.base_path or tempfile.gettempdir()
        return cls(
            cwd=s.policy.base_path or os.getcwd(),
            home=home,
            private_home=private_home,
            env=child_env(search_path=SAFE_PATH, home=home, passthrough=s.runner.passthrough_env, extra={}),
            wrapper=limits_prefix(s.runner.limits, s.runner.prlimit_path),
            cmd_timeout_s=s.runner.cmd_timeout_s,
            max_timeout_s=s.runner.max_timeout_s,
            max_output_bytes=s.runner.max_output_bytes,
            max_stdin_bytes=s.runner.max_stdin_bytes,
            sandbox=sandbox,
            sandbox_network=s.sandbox.network,
        )

    def timeout_s(self, tool_timeout_s: float | None) -> float:
        """The operator's timeout for a tool (its own, else ``--cmd-timeout``; never above the cap)."""
        return min(tool_timeout_s or self.cmd_timeout_s, self.max_timeout_s)
