"""The composition root: the one place that builds the tools, the plan defaults, the guards and the service.

``compile_tools`` runs at start-up and for ``--dry-run`` (``ConfigError`` on any mistake, before anything
serves); ``build_service`` runs once the logs, the audit trail and the private HOME exist. Nothing is
patched after it is built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from trio_exec.config import Settings
from trio_exec.errors import ConfigError
from trio_exec.guards import State
from trio_exec.paths import PathPolicy
from trio_exec.plan import PlanDefaults
from trio_exec.templates import Context, compile_tool
from trio_exec.tools import Tool
from trio_exec.tools.shell import NAME as SHELL_NAME
from trio_exec.tools.shell import ShellTool
from trio_exec.tools.template import TemplateTool

if TYPE_CHECKING:
    from trio_exec.audit import Audit
    from trio_exec.sandbox import Sandbox
    from trio_exec.server import Service


def template_context(settings: Settings) -> Context:
    """What rendering a template's values needs from the settings."""
    return Context(
        paths=PathPolicy(base_path=settings.policy.base_path, validate_paths=settings.policy.validate_paths),
        blacklist=settings.policy.blacklist,
        allow_dangerous=settings.policy.allow_dangerous,
        allow_missing_binaries=settings.policy.allow_missing_binaries,
        search_path=settings.runner.search_path,
        sensitive_keys=settings.policy.sensitive_keys,
    )


def shell_tool(settings: Settings) -> ShellTool | None:
    """``shell_execute`` when an allowlist is configured; raises ``ConfigError``."""
    s = settings
    if not (s.policy.allow_commands or s.policy.allow_patterns):
        return None
    if any(spec.name == SHELL_NAME for spec in s.tools):
        raise ConfigError(f"a template named {SHELL_NAME!r} clashes with the allowlist tool; rename it")
    return ShellTool.create(
        names=s.policy.allow_commands,
        patterns=s.policy.allow_patterns,
        base_path=s.policy.base_path or os.path.realpath(os.getcwd()),
        search_path=s.runner.search_path,
        allow_dangerous=s.policy.allow_dangerous,
        allow_missing=s.policy.allow_missing_binaries,
        max_timeout_s=s.runner.max_timeout_s,
        max_output_bytes=s.runner.max_output_bytes,
        blacklist=s.policy.blacklist,
        background=s.jobs.background,
    )


# Published with any background tool: job_tools.NAMES, named here so --dry-run imports no trio (a test checks).
JOB_TOOLS = ("job_output", "job_cancel", "job_list")


def compile_tools(settings: Settings) -> list[Tool]:
    """Every tool of the settings (templates, then ``shell_execute``); raises ``ConfigError``."""
    shell = shell_tool(settings)
    context = template_context(settings)
    templates: list[Tool] = [
        TemplateTool.create(compile_tool(spec, context), context, max_timeout_s=settings.runner.max_timeout_s)
        for spec in settings.tools
    ]
    tools = templates + ([shell] if shell is not None else [])
    if any(tool.background for tool in tools):
        clash = next((tool.name for tool in tools if tool.name in JOB_TOOLS), None)
        if clash is not None:
            raise ConfigError(f"a template named {clash!r} clashes with the job tool of that name; rename it")
    return tools


def build_service(
    settings: Settings, tools: list[Tool], audit: Audit, sandbox: Sandbox | None, *, private_home: str = ""
) -> Service:
    """The service that runs calls to ``tools``: plan defaults, guards (breaker changes audited) and all."""
    from loguru import logger  # loguru (with asyncio), trio and the MCP SDK: only when serving (--dry-run is quick)

    from trio_exec.admission import Guards
    from trio_exec.jobs import Jobs
    from trio_exec.server import Service

    def breaker_changed(tool: str, client: str, state: State) -> None:
        logger.warning("circuit of tool {} for client {} is now {}", tool, client, state.value)
        audit.record("breaker", tool=tool, client=client, state=state.value)

    s = settings
    guards = Guards(
        tools=[t.name for t in tools],
        max_concurrent=s.guards.max_concurrent,
        rate=s.guards.rate_limit_rps,
        burst=s.guards.rate_limit_burst,
        circuit_threshold=s.guards.circuit_threshold,
        circuit_timeout_s=s.guards.circuit_timeout_s,
        on_breaker_change=breaker_changed,
    )
    return Service(
        settings=s,
        tools={t.name: t for t in tools},
        defaults=PlanDefaults.create(s, sandbox, private_home=private_home),
        guards=guards,
        audit=audit,
        jobs=Jobs(s.jobs, audit),
    )
