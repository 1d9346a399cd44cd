"""What ``--dry-run`` prints: the tools as the server will publish them, every protection in force, the sandbox,
and the settings that are accepted but have no effect (also logged as warnings when serving)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from trio_exec import __version__, sandbox
from trio_exec.cli.loading import Loaded, loopback
from trio_exec.cli.options import NETWORK_ONLY, OPTIONS
from trio_exec.config import Settings
from trio_exec.templates import describe
from trio_exec.tools import Tool
from trio_exec.tools.shell import NAME as SHELL_NAME
from trio_exec.tools.shell import ShellTool
from trio_exec.tools.template import TemplateTool


def rate_text(s: Settings) -> str:
    if not s.guards.rate_limit_rps:
        return "off"
    return f"{s.guards.rate_limit_rps:g}/s burst {s.guards.rate_limit_burst} per client (x4 server-wide)"


def sandbox_lines(box: sandbox.Sandbox) -> list[str]:
    """The sandbox facts of ``--dry-run`` and ``doctor``."""
    r = box.report
    lines = [f"  sandbox: {r.layer} ({r.detail})" + ("" if r.layer == "off" else ", seccomp filter " +
                                                    ("on" if r.seccomp else "OFF"))]  # fmt: skip
    if r.root:
        lines.append("  the server runs as root: commands are uid 0 outside the box (see SECURITY.md)")
    lines += [f"  note: {p}" for p in r.problems]
    return lines


def warnings_for(loaded: Loaded) -> list[str]:
    """Settings that are accepted but have no effect in this configuration."""
    s = loaded.settings
    notes = []
    if s.transport == "stdio":
        notes += [
            f"{o.long} is for network transports and is ignored on stdio"
            for o in OPTIONS
            if o.field in NETWORK_ONLY and o.field in loaded.explicit
        ]
    if (
        s.transport != "stdio"
        and s.network.insecure_no_auth
        and not s.network.auth_tokens
        and not loopback(s.network.bind)
    ):
        notes.append(
            f"--insecure-no-auth: {s.network.bind} serves without authentication; only a proxy in front that "
            "authenticates every request keeps others from running the tools"
        )
    if s.network.auth_token and "auth_token" in loaded.explicit and loaded.token_on_command_line:
        notes.append("--auth-token on the command line is visible in ps; prefer MCP_EXEC_AUTH_TOKEN")
    if (s.policy.allow_commands or s.policy.allow_patterns) and s.policy.base_path is None:
        notes.append("shell_execute without --base-path: confined to the server's working directory")
    if s.policy.base_path is None and s.policy.validate_paths and s.tools:
        notes.append("no --base-path: path arguments must be absolute and are not confined to a directory")
    if not s.policy.validate_paths:
        notes.append("--no-validate-paths: path arguments are NOT confined to the base path")
    if s.policy.allow_dangerous:
        notes.append("--allow-dangerous: blacklisted programs are allowed")
    if s.runner.limits.fsize_bytes is None:
        notes.append("prlimit (util-linux) is not installed: files commands write ('>' too) have no size cap")
    return notes


def dry_run_report(loaded: Loaded, tools: Sequence[Tool], box: sandbox.Sandbox | None = None) -> str:
    """What ``--dry-run`` prints: the tools, then every protection as it will apply (one line per setting)."""
    s = loaded.settings
    shell = next((t for t in tools if isinstance(t, ShellTool)), None)
    templates = [t.template for t in tools if isinstance(t, TemplateTool)]
    out = [f"trio-exec {__version__}: configuration is valid", f"tools ({len(tools)}):"]
    if shell is not None:
        out.append(f"  {SHELL_NAME}  (from --allow-commands / ALLOW_COMMANDS / ALLOW_PATTERNS)")
        for name in sorted(shell.allow_commands):
            out.append(f"    program {name}: {shell.pinned.get(name, '(missing; resolved at call time)')}")
        out += [f"    pattern {p.pattern!r} (resolved at call time)" for p in shell.allow_patterns]
        out.append(f"    base path (directory and redirections confined to it): {shell.base_path}")
        out.append("    per-program policies: git, find, awk, tar, sort, split, rg, sed, make, ... (SECURITY.md)")
    for t in templates:
        out.append(f"  {t.name}  (from {t.spec.source})")
        out.append(f"    program: {t.program_path or t.program + ' (missing; resolved at call time)'}")
        out.append("    " + describe(t).replace("\n", "\n    "))
        for a in t.args:
            extra = " (sensitive: never echoed or logged)" if a.sensitive else ""
            out.append(f"    placeholder {{{a.name}}}: {a.kind.value}{extra}")
        schema = next(tool for tool in tools if tool.name == t.name).input_schema()
        out.append("    input schema: " + json.dumps(schema, ensure_ascii=False))
    out.append("protections:")
    policy, guards = s.policy, s.guards
    out.append(
        f"  base path: {policy.base_path or '(none)'}; path validation: {'on' if policy.validate_paths else 'OFF'}"
    )
    out.append(
        f"  blacklist: {len(policy.blacklist)} programs; allow dangerous: {'YES' if policy.allow_dangerous else 'no'}"
    )
    out.append(f"  timeout: {s.runner.cmd_timeout_s:g}s by default, {s.runner.max_timeout_s:g}s at most")
    out.append(f"  output cap: {s.runner.max_output_bytes} bytes per stream")
    background = [t.name for t in tools if t.background]
    if background:
        j = s.jobs
        out.append(
            f"  background jobs: {', '.join(background)} (tools job_output, job_cancel, job_list); "
            f"{j.job_output_bytes} bytes kept per stream, {j.max_jobs} jobs at most ({j.max_jobs_per_client} per "
            f"client), stopped after {j.job_max_runtime_s:g}s, kept {j.job_ttl_s:g}s after their end; also as MCP "
            "tasks (2025-11-25 capabilities.tasks, 2026-07-28 extension io.modelcontextprotocol/tasks)"
        )
    else:
        out.append("  background jobs: off (no tool has background = true; --background for shell_execute)")
    lim = s.runner.limits
    applied = [
        f"{name} {value}"
        for name, value in (
            ("memory", lim.memory_bytes),
            ("cpu", lim.cpu_s),
            ("fsize", lim.fsize_bytes),
            ("nofile", lim.nofile),
            ("nproc", lim.nproc),
        )
        if value is not None
    ]
    limits_text = f"{', '.join(applied)} (via {s.runner.prlimit_path})" if applied else "none"
    out.append(f"  resource limits: {limits_text}")
    out.append(f"  child environment: PATH, LANG, HOME{''.join(', ' + n for n in s.runner.env_allow)}")
    out.append(f"  sensitive argument names: {', '.join(s.policy.sensitive_keys)}")
    workers = s.network.workers if s.transport != "stdio" else 1
    out.append(
        f"  transport: {s.transport}"
        + (f" on {s.network.bind}, {workers} workers sharing the port (kept running by a supervisor)" if workers > 1
           else "")
    )  # fmt: skip
    out.append(
        f"  guards: rate limit {rate_text(s)}, "
        f"max concurrent {guards.max_concurrent}, circuit {guards.circuit_threshold} failures / "
        f"{guards.circuit_timeout_s:g}s" + (" (each per worker)" if workers > 1 else "")
    )
    out.append(
        f"  logs: {s.log.level} as {s.log.format} on stderr; audit log: {s.log.audit_log or 'off'}"
        + (f" (rotated at {s.log.audit_rotate})" if s.log.audit_rotate else "")
    )
    if box is not None:
        out += sandbox_lines(box)
    out += [f"warning: {w}" for w in warnings_for(loaded)]
    return "\n".join(out)
