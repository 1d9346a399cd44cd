"""Command line: docopt-ng usage text, environment and config-file merge, ``--dry-run``.

The only module that reads ``os.environ``. Precedence: CLI flag > ``MCP_EXEC_*`` environment
variable > ``[server]`` table of the config file > default. One table (``OPTIONS``) is the
single source of the usage text, the environment names, the config keys and the defaults.
Every configuration error is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import math
import os
import shutil
import socket
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import docopt

from trio_exec import __version__, compose, memory, procfs, sandbox
from trio_exec.config import Limits, Settings, ToolSpec, check_paths, did_you_mean, load_toml, split_config
from trio_exec.errors import ConfigError
from trio_exec.programs import DEFAULT_BLACKLIST
from trio_exec.templates import describe, parse_specs
from trio_exec.tools import Tool
from trio_exec.tools.shell import NAME as SHELL_NAME
from trio_exec.tools.shell import ShellTool
from trio_exec.tools.template import TemplateTool

DEFAULT_SENSITIVE_KEYS = ("password", "token", "secret", "key", "auth", "credential")
LOG_LEVELS = ("info", "debug", "trace", "warn", "error")
TRANSPORTS = ("stdio", "streamable-http", "websocket")
NETWORK_ONLY = (
    "bind", "auth_token", "auth_token_file", "stateful", "session_idle_timeout_s", "max_sessions", "allowed_hosts",
    "allowed_origins", "forwarded_allow_ips", "root_path", "certfile", "keyfile", "backlog", "write_timeout_s",
    "insecure_no_auth", "cors_origins",
)  # fmt: skip
LOG_FORMATS = ("text", "json")
FSIZE_PER_OUTPUT = 64  # default --limit-fsize: this many times --max-output-bytes


def _bool(text: Any, what: str) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{what} must be true or false, not {text!r}")


def _number(kind: type[int] | type[float], *, minimum: float = 0, strict: bool = True) -> Callable[[Any, str], Any]:
    def convert(text: Any, what: str) -> Any:
        if isinstance(text, bool):
            raise ConfigError(f"{what} must be a number")
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise ConfigError(f"{what} must be {'an integer' if kind is int else 'a number'}, not {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
            raise ConfigError(f"{what} must be {bound}, not {text!r}")
        return value

    return convert


_SIZE_SUFFIXES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _size(text: Any, what: str) -> int:
    """A byte count: an integer with an optional K, M, G or T suffix (powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        raw = str(text).strip().lower().removesuffix("b").removesuffix("i")
        suffix = raw[-1:] if raw[-1:] in _SIZE_SUFFIXES else ""
        number = raw[: len(raw) - len(suffix)]
        if not number.isdigit():
            raise ConfigError(f"{what} must be a size such as 512M or 1048576, not {text!r}")
        value = int(number) * _SIZE_SUFFIXES[suffix]
    if value < 1:
        raise ConfigError(f"{what} must be at least 1 byte")
    return value


def _names(text: Any, what: str) -> tuple[str, ...]:
    items = text if isinstance(text, list) else str(text).split(",")
    return tuple(str(x).strip() for x in items if str(x).strip())


def _paths(text: Any, what: str) -> tuple[str, ...]:
    """Absolute paths that exist: a list (repeated flag, config) or one ':'-separated string (environment)."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(":")
    return check_paths([str(p) for p in items if str(p)], what)


def _choice(choices: Sequence[str]) -> Callable[[Any, str], str]:
    def convert(text: Any, what: str) -> str:
        value = str(text).strip().lower()
        if value not in choices:
            raise ConfigError(f"{what} must be one of {', '.join(choices)}, not {text!r}")
        return value

    return convert


def _text(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise ConfigError(f"{what} must be a string")
    return text


@attrs.frozen
class Opt:
    """One option: its flag, short form, environment variable, default and help."""

    long: str
    field: str
    env: str
    help: str
    convert: Callable[[Any, str], Any] = _text
    short: str | None = None
    metavar: str | None = None  # None: a boolean flag
    default: Any = None
    shown_default: str | None = None
    repeat: bool = False  # may be given several times on the command line


NETWORK_RATE_LIMIT_RPS = 10.0  # the default where several clients may share the server

OPTIONS: tuple[Opt, ...] = (
    Opt(
        "--cmd",
        "tools",
        "MCP_EXEC_COMMANDS",
        'Define a tool NAME|"TEMPLATE" (repeatable; ";" separates several).',
        short="-c",
        metavar="<spec>",
        repeat=True,
    ),
    Opt(
        "--config",
        "config_path",
        "MCP_EXEC_CONFIG",
        "TOML file with [server] options and [tools.NAME] tables.",
        metavar="<file>",
    ),
    Opt(
        "--blacklist",
        "blacklist",
        "MCP_EXEC_DANGEROUS",
        "Comma-separated programs refused as template programs.",
        convert=_names,
        short="-B",
        metavar="<names>",
        default=DEFAULT_BLACKLIST,
        shown_default="mcp-secure-exec's 47 names (see README)",
    ),
    Opt(
        "--allow-dangerous",
        "allow_dangerous",
        "MCP_EXEC_ALLOW_DANGEROUS",
        "Allow blacklisted programs. USE WITH CAUTION.",
        convert=_bool,
        short="-D",
        default=False,
    ),
    Opt(
        "--no-validate-paths",
        "no_validate_paths",
        "MCP_EXEC_NO_VALIDATE_PATHS",
        "Turn off base-path containment of path arguments.",
        convert=_bool,
        default=False,
    ),
    Opt(
        "--allow-missing-binaries",
        "allow_missing_binaries",
        "MCP_EXEC_ALLOW_MISSING_BINARIES",
        "Start even if a template's program is missing (resolved at call time).",
        convert=_bool,
        default=False,
    ),
    Opt(
        "--base-path",
        "base_path",
        "MCP_EXEC_BASE_PATH",
        "Confine path arguments to this directory; also the commands' working directory.",
        metavar="<dir>",
    ),
    Opt(
        "--sensitive-keys",
        "sensitive_keys",
        "MCP_EXEC_SENSITIVE_KEYS",
        "Argument names (substrings) whose values are never echoed or logged.",
        convert=_names,
        metavar="<names>",
        default=DEFAULT_SENSITIVE_KEYS,
        shown_default=",".join(DEFAULT_SENSITIVE_KEYS),
    ),
    Opt(
        "--cmd-timeout",
        "cmd_timeout_s",
        "MCP_EXEC_CMD_TIMEOUT_SECS",
        "Default seconds before a command is stopped.",
        convert=_number(float),
        metavar="<secs>",
        default=30.0,
        shown_default="30",
    ),
    Opt(
        "--max-timeout",
        "max_timeout_s",
        "MCP_EXEC_MAX_TIMEOUT_SECS",
        "Upper bound of the per-call 'timeout' argument.",
        convert=_number(float),
        metavar="<secs>",
        default=300.0,
        shown_default="300",
    ),
    Opt(
        "--max-output-bytes",
        "max_output_bytes",
        "MCP_EXEC_MAX_OUTPUT_BYTES",
        "Cap on stdout and on stderr of one command; past it the command is stopped.",
        convert=_number(int),
        metavar="<n>",
        default=1024 * 1024,
        shown_default="1048576",
    ),
    Opt(
        "--max-stdin-bytes",
        "max_stdin_bytes",
        "MCP_EXEC_MAX_STDIN_BYTES",
        "Largest 'stdin' argument of one call (UTF-8 bytes), e.g. 8M; larger calls are rejected.",
        convert=_size,
        metavar="<bytes>",
        default=16 * 1024 * 1024,
        shown_default="16M",
    ),
    Opt(
        "--env-allow",
        "env_allow",
        "MCP_EXEC_ENV_ALLOW",
        "Server environment variables passed on to commands (default: none but PATH, LANG, HOME).",
        convert=_names,
        metavar="<names>",
        default=(),
    ),
    Opt(
        "--limit-memory",
        "limit_memory",
        "MCP_EXEC_LIMIT_MEMORY",
        "Address-space limit of each command (prlimit --as), e.g. 512M.",
        convert=_size,
        metavar="<bytes>",
    ),
    Opt(
        "--limit-cpu",
        "limit_cpu",
        "MCP_EXEC_LIMIT_CPU",
        "CPU seconds of each command (prlimit --cpu).",
        convert=_number(int),
        metavar="<secs>",
    ),
    Opt(
        "--limit-fsize",
        "limit_fsize",
        "MCP_EXEC_LIMIT_FSIZE",
        "Largest file a command may write, '>' redirections included (prlimit --fsize), e.g. 10M.",
        convert=_size,
        metavar="<bytes>",
        shown_default=f"--max-output-bytes x {FSIZE_PER_OUTPUT} when prlimit is installed",
    ),
    Opt(
        "--limit-nofile",
        "limit_nofile",
        "MCP_EXEC_LIMIT_NOFILE",
        "Open files per command (prlimit --nofile).",
        convert=_number(int),
        metavar="<n>",
    ),
    Opt(
        "--limit-nproc",
        "limit_nproc",
        "MCP_EXEC_LIMIT_NPROC",
        "Processes of the command's user (prlimit --nproc; does not bind root).",
        convert=_number(int),
        metavar="<n>",
    ),
    Opt(
        "--allow-commands",
        "allow_commands",
        "MCP_EXEC_ALLOW_COMMANDS",
        "Enable shell_execute for these programs (also ALLOW_COMMANDS / ALLOWED_COMMANDS, merged).",
        convert=_names,
        metavar="<names>",
        default=(),
    ),
    Opt(
        "--allow-patterns",
        "allow_patterns",
        "MCP_EXEC_ALLOW_PATTERNS",
        "shell_execute: program names fully matching these regexes are allowed too (also ALLOW_PATTERNS).",
        convert=_names,
        metavar="<regexes>",
        default=(),
    ),
    Opt(
        "--sandbox",
        "sandbox",
        "MCP_EXEC_SANDBOX",
        "Kernel sandbox for every command: auto (best available), bwrap, landlock, or off.",
        convert=_choice(sandbox.MODES),
        metavar="<layer>",
        default="auto",
    ),
    Opt(
        "--sandbox-require",
        "sandbox_require",
        "MCP_EXEC_SANDBOX_REQUIRE",
        "Refuse to start unless a sandbox layer is active.",
        convert=_bool,
        default=False,
    ),
    Opt(
        "--sandbox-ro",
        "sandbox_ro",
        "MCP_EXEC_SANDBOX_RO",
        "Also show this host path read-only inside the sandbox (repeatable; env: ':'-separated).",
        convert=_paths,
        metavar="<path>",
        default=(),
        repeat=True,
    ),
    Opt(
        "--sandbox-rw",
        "sandbox_rw",
        "MCP_EXEC_SANDBOX_RW",
        "Also show this host path read-write inside the sandbox (repeatable; env: ':'-separated).",
        convert=_paths,
        metavar="<path>",
        default=(),
        repeat=True,
    ),
    Opt(
        "--sandbox-network",
        "sandbox_network",
        "MCP_EXEC_SANDBOX_NETWORK",
        "shell_execute's commands may use the network (templates: network = true per tool).",
        convert=_bool,
        default=False,
    ),
    Opt(
        "--log-level",
        "log_level",
        "MCP_EXEC_LOG_LEVEL",
        f"Log verbosity: {', '.join(LOG_LEVELS)}.",
        convert=_choice(LOG_LEVELS),
        metavar="<level>",
        default="info",
    ),
    Opt(
        "--log-format",
        "log_format",
        "MCP_EXEC_LOG_FORMAT",
        "Log lines as text or json (loguru's serialisation).",
        convert=_choice(LOG_FORMATS),
        metavar="<fmt>",
        default="text",
    ),
    Opt(
        "--audit-log",
        "audit_log",
        "MCP_EXEC_AUDIT_LOG",
        "Write one JSON line per call and security event to this file ('-' = stderr).",
        metavar="<path>",
    ),
    Opt(
        "--audit-rotate",
        "audit_rotate",
        "MCP_EXEC_AUDIT_ROTATE",
        "Rotate the audit file when it reaches this size, e.g. 10M (rotated files get a date suffix).",
        convert=_size,
        metavar="<bytes>",
    ),
    Opt(
        "--audit-fail",
        "audit_fail",
        "MCP_EXEC_AUDIT_FAIL",
        "When the audit log cannot be written: closed (refuse calls, /health 503) or open (run unaudited).",
        convert=_choice(("closed", "open")),
        metavar="<mode>",
        default="closed",
    ),
    Opt(
        "--dry-run",
        "dry_run",
        "MCP_EXEC_DRY_RUN",
        "Check the configuration, print it and exit (0 = valid).",
        convert=_bool,
        short="-d",
        default=False,
    ),
    Opt(
        "--transport",
        "transport",
        "MCP_EXEC_TRANSPORT",
        "stdio, streamable-http or websocket.",
        convert=_choice(TRANSPORTS),
        short="-t",
        metavar="<name>",
        default="stdio",
    ),
    Opt(
        "--bind",
        "bind",
        "MCP_EXEC_BIND",
        "HOST:PORT for network transports (ignored on stdio).",
        short="-b",
        metavar="<addr>",
        default="127.0.0.1:3344",
    ),
    Opt(
        "--auth-token",
        "auth_token",
        "MCP_EXEC_AUTH_TOKEN",
        "Bearer token for network transports (ignored on stdio).",
        metavar="<token>",
    ),
    Opt(
        "--stateful",
        "stateful",
        "MCP_EXEC_STATEFUL",
        "Stateful HTTP sessions (ignored on stdio).",
        convert=_bool,
        short="-s",
        default=False,
    ),
    Opt(
        "--session-idle-timeout",
        "session_idle_timeout_s",
        "MCP_EXEC_SESSION_IDLE_TIMEOUT_SECS",
        "With --stateful: close a session after this many seconds without a request.",
        convert=_number(float),
        metavar="<secs>",
        default=300.0,
        shown_default="300",
    ),
    Opt(
        "--max-sessions",
        "max_sessions",
        "MCP_EXEC_MAX_SESSIONS",
        "With --stateful: sessions open at once; a new one beyond is refused with 503.",
        convert=_number(int),
        metavar="<n>",
        default=1000,
    ),
    Opt(
        "--auth-token-file",
        "auth_token_file",
        "MCP_EXEC_AUTH_TOKEN_FILE",
        "File of accepted Bearer tokens, one per line ('#' comments).",
        metavar="<file>",
    ),
    Opt(
        "--insecure-no-auth",
        "insecure_no_auth",
        "MCP_EXEC_INSECURE_NO_AUTH",
        "Serve a non-loopback --bind without any token (only behind a proxy that authenticates).",
        convert=_bool,
        default=False,
    ),
    Opt(
        "--allowed-hosts",
        "allowed_hosts",
        "MCP_EXEC_ALLOWED_HOSTS",
        "Host headers accepted (DNS-rebinding protection; 'name:*' = any port). Default: bind address, localhost.",
        convert=_names,
        metavar="<hosts>",
        default=(),
    ),
    Opt(
        "--allowed-origins",
        "allowed_origins",
        "MCP_EXEC_ALLOWED_ORIGINS",
        "Origin headers accepted (absent Origin is fine). Default: bind address and localhost, http and https.",
        convert=_names,
        metavar="<origins>",
        default=(),
    ),
    Opt(
        "--cors-origins",
        "cors_origins",
        "MCP_EXEC_CORS_ORIGINS",
        "Web origins whose pages may call the HTTP endpoint (CORS; 'scheme://name:*' = any port). Default: none.",
        convert=_names,
        metavar="<origins>",
        default=(),
    ),
    Opt(
        "--max-request-bytes",
        "max_request_bytes",
        "MCP_EXEC_MAX_REQUEST_BYTES",
        "Largest HTTP request body (413 beyond) or WebSocket message.",
        convert=_size,
        metavar="<bytes>",
        default=4 * 1024 * 1024,
        shown_default="4194304",
    ),
    Opt(
        "--forwarded-allow-ips",
        "forwarded_allow_ips",
        "MCP_EXEC_FORWARDED_ALLOW_IPS",
        "Proxies (IPs or CIDRs) whose X-Forwarded-For/-Proto are believed.",
        convert=_names,
        metavar="<ips>",
        default=(),
    ),
    Opt(
        "--root-path",
        "root_path",
        "MCP_EXEC_ROOT_PATH",
        "Path prefix the server is mounted under (/exec).",
        metavar="<path>",
    ),
    Opt("--certfile", "certfile", "MCP_EXEC_CERTFILE", "TLS certificate (PEM) for HTTPS/WSS.", metavar="<file>"),
    Opt("--keyfile", "keyfile", "MCP_EXEC_KEYFILE", "TLS private key (PEM).", metavar="<file>"),
    Opt(
        "--shutdown-grace",
        "shutdown_grace_s",
        "MCP_EXEC_SHUTDOWN_GRACE_SECS",
        "On SIGTERM/SIGINT, seconds running calls may finish before they are cancelled.",
        convert=_number(float),
        metavar="<secs>",
        default=10.0,
        shown_default="10",
    ),
    Opt(
        "--backlog",
        "backlog",
        "MCP_EXEC_BACKLOG",
        "Listen backlog: connections the kernel queues before they are accepted (capped by net.core.somaxconn).",
        convert=_number(int, minimum=1, strict=False),
        metavar="<n>",
        default=1024,
    ),
    Opt(
        "--write-timeout",
        "write_timeout_s",
        "MCP_EXEC_WRITE_TIMEOUT_SECS",
        "Drop a connection whose peer has read nothing of what was sent for this long; 0 turns it off.",
        convert=_number(float, strict=False),
        metavar="<secs>",
        default=30.0,
        shown_default="30",
    ),
    Opt(
        "--rate-limit-rps",
        "rate_limit_rps",
        "MCP_EXEC_RATE_LIMIT_RPS",
        "Calls per second per client (the server as a whole takes 4x); 0 turns the limit off. "
        "Off on stdio, where the one client is the local agent.",
        convert=_number(float, strict=False),
        metavar="<n>",
        default=None,
        shown_default=f"{NETWORK_RATE_LIMIT_RPS:g} on HTTP and WebSocket, off on stdio",
    ),
    Opt(
        "--rate-limit-burst",
        "rate_limit_burst",
        "MCP_EXEC_RATE_LIMIT_BURST",
        "Burst size of the rate limit.",
        convert=_number(int),
        metavar="<n>",
        default=20,
    ),
    Opt(
        "--max-concurrent",
        "max_concurrent",
        "MCP_EXEC_MAX_CONCURRENT",
        "Commands running at once; more are refused with 'busy'.",
        convert=_number(int),
        metavar="<n>",
        default=50,
    ),
    Opt(
        "--circuit-threshold",
        "circuit_threshold",
        "MCP_EXEC_CIRCUIT_THRESHOLD",
        "Consecutive execution failures that open a tool's circuit.",
        convert=_number(int),
        metavar="<n>",
        default=10,
    ),
    Opt(
        "--circuit-timeout",
        "circuit_timeout_s",
        "MCP_EXEC_CIRCUIT_TIMEOUT_SECS",
        "Seconds an open circuit waits before one probe call.",
        convert=_number(float),
        metavar="<secs>",
        default=60.0,
        shown_default="60",
    ),
)

_BY_LONG = {o.long: o for o in OPTIONS}
_BY_CONFIG_KEY = {o.long[2:].replace("-", "_"): o for o in OPTIONS if o.long not in ("--cmd", "--config")}


def usage() -> str:
    """The docopt usage text, generated from ``OPTIONS``."""
    repeated = " ".join(f"[{o.long} {o.metavar}]..." for o in OPTIONS if o.repeat)
    lines = []
    for o in OPTIONS:
        flag = f"{o.short}, {o.long}" if o.short else f"    {o.long}"
        if o.metavar:
            flag += f" {o.metavar}"
        extra = f" [env {o.env}]"
        if o.shown_default is not None or (o.default not in (None, False, ())):
            extra += f" (default: {o.shown_default if o.shown_default is not None else o.default})"
        lines.append(f"  {flag:<34}  {o.help}{extra}")
    return (
        "trio-exec: a secure command-execution MCP server on trio.\n\n"
        "Usage:\n"
        f"  trio-exec [options] {repeated}\n"
        f"  trio-exec doctor [options] {repeated}\n"
        "  trio-exec (-h | --help)\n"
        "  trio-exec (-V | --version)\n\n"
        "Options:\n"
        "  -h, --help                          Show this help and exit.\n"
        "  -V, --version                       Show the version and exit.\n" + "\n".join(lines) + "\n\n"
        "Precedence: command line > environment > config file [server] > default.\n"
        "trio-exec doctor: which sandbox layer is active and why the others are not, with a live self-test.\n"
    )


def _from_cli(parsed: Mapping[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for o in OPTIONS:
        value = parsed.get(o.long)
        if o.long == "--cmd":
            if value:
                raw[o.field] = list(value)
        elif o.repeat:
            if value:
                raw[o.field] = o.convert(list(value), o.long)
        elif o.metavar is None:
            if value:
                raw[o.field] = True
        elif value is not None:
            raw[o.field] = o.convert(value, o.long)
    return raw


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for o in OPTIONS:
        if o.env in environ:
            raw[o.field] = [environ[o.env]] if o.long == "--cmd" else o.convert(environ[o.env], o.env)
    return raw


def _from_config(server: Mapping[str, Any], path: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key, value in server.items():
        o = _BY_CONFIG_KEY.get(key)
        if o is None:
            hint = did_you_mean(key, _BY_CONFIG_KEY)
            raise ConfigError(f"{path}: [server] has unknown key {key!r}{hint}; keys are long option names, '-' as '_'")
        raw[o.field] = o.convert(value, f"{path}: [server] {key}")
    return raw


@attrs.frozen
class Loaded:
    """Settings plus what only the CLI knows: where each value came from."""

    settings: Settings
    explicit: frozenset[str]
    token_on_command_line: bool = False
    doctor: bool = False


def _rate_text(s: Settings) -> str:
    if not s.rate_limit_rps:
        return "off"
    return f"{s.rate_limit_rps:g}/s burst {s.rate_limit_burst} per client (x4 server-wide)"


def _command_line_problem(argv: Sequence[str], docopt_says: str) -> str:
    """Which word of a command line docopt refused, and why, in one line (an unknown option with the
    option it most likely meant, a value missing, a stray word)."""
    by_flag = {o.long: o for o in OPTIONS} | {o.short: o for o in OPTIONS if o.short}
    known = {*by_flag, "-h", "--help", "-V", "--version"}
    words = list(argv)
    i = 1 if words[:1] == ["doctor"] else 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            break
        flag = word.split("=", 1)[0] if word.startswith("--") else word[:2]
        if not word.startswith("-") or word == "-":
            return f"unexpected argument {word!r}: options start with '--' (a tool spec goes after --cmd)"
        matches = [k for k in known if k == flag or (flag.startswith("--") and k.startswith(flag))]
        if not matches:
            return f"unknown option {flag}{did_you_mean(flag, known)}"
        option = by_flag.get(matches[0]) if len(matches) == 1 else by_flag.get(flag)
        inline = "=" in word if word.startswith("--") else len(word) > 2
        if option is not None and option.metavar is not None and not inline:
            if i >= len(words):
                return f"option {option.long} needs a value ({option.metavar})"
            i += 1
    return docopt_says.splitlines()[0] if docopt_says.strip() else "invalid command line"


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Loaded:  # noqa: C901 - to become cli/loading steps
    """Parse argv and environ into ``Settings``; raises ``ConfigError``."""
    try:
        parsed = docopt.docopt(usage(), list(argv), version=f"trio-exec {__version__}")
    except docopt.DocoptExit as e:
        raise ConfigError(f"{_command_line_problem(argv, str(e))}; see trio-exec --help") from None
    cli = _from_cli(parsed)
    env = _from_env(environ)
    config_path = cli.get("config_path") or env.get("config_path")
    file_server: dict[str, Any] = {}
    file_tools: tuple[ToolSpec, ...] = ()
    if config_path:
        server_table, file_tools = split_config(load_toml(config_path), config_path)
        file_server = _from_config(server_table, config_path)
    merged: dict[str, Any] = {o.field: o.default for o in OPTIONS}
    merged.update(file_server)
    merged.update(env)
    merged.update(cli)
    explicit = frozenset(file_server) | frozenset(env) | frozenset(cli)

    source = "--cmd" if "tools" in cli else "MCP_EXEC_COMMANDS"
    cmd_tools = tuple(
        ToolSpec(name=name, template=template, source=source)
        for text in merged["tools"] or ()
        for name, template in parse_specs(text, source)
    )
    tools = cmd_tools + file_tools
    seen: set[str] = set()
    for t in tools:
        if t.name in seen:
            raise ConfigError(f"{t.source}: duplicate tool name {t.name!r}")
        seen.add(t.name)
    if "allow_commands" not in cli:  # mcp-shell-server's variables, merged with ours
        legacy = [n for var in ("ALLOW_COMMANDS", "ALLOWED_COMMANDS") for n in _names(environ.get(var, ""), var)]
        merged["allow_commands"] = tuple(dict.fromkeys([*merged["allow_commands"], *legacy]))
    if "allow_patterns" not in cli:
        legacy = list(_names(environ.get("ALLOW_PATTERNS", ""), "ALLOW_PATTERNS"))
        merged["allow_patterns"] = tuple(dict.fromkeys([*merged["allow_patterns"], *legacy]))
    doctor = bool(parsed.get("doctor"))
    if not tools and not merged["allow_commands"] and not merged["allow_patterns"] and not doctor:
        raise ConfigError(
            "no tools configured: give --cmd 'NAME|\"TEMPLATE\"', MCP_EXEC_COMMANDS, --config or --allow-commands"
        )

    base_path = merged["base_path"]
    if base_path:
        if not os.path.isdir(base_path):
            raise ConfigError(f"--base-path {base_path!r} is not a directory")
        base_path = os.path.realpath(base_path)
    if merged["rate_limit_rps"] is None:  # on stdio the one client is the local agent: no limit by default
        merged["rate_limit_rps"] = 0.0 if merged["transport"] == "stdio" else NETWORK_RATE_LIMIT_RPS
    if merged["transport"] != "stdio":
        _check_network(merged)
    cap = merged["max_timeout_s"]
    if merged["cmd_timeout_s"] > cap:
        raise ConfigError(
            f"--cmd-timeout {merged['cmd_timeout_s']:g} is above --max-timeout {cap:g}, which would cut it short; "
            "raise --max-timeout or lower --cmd-timeout"
        )
    for t in tools:
        if t.timeout_s is not None and t.timeout_s > cap:
            raise ConfigError(f"{t.source}: tool {t.name!r}: timeout_s {t.timeout_s:g} is above --max-timeout {cap:g}")
    tokens = _tokens(merged)
    if (
        merged["transport"] != "stdio"
        and not tokens
        and not merged["insecure_no_auth"]
        and not _loopback(merged["bind"])
    ):
        raise ConfigError(
            f"--bind {merged['bind']} is reachable from other machines and no token is set: anyone who reaches it "
            "could run the tools. Set MCP_EXEC_AUTH_TOKEN (or --auth-token-file), bind 127.0.0.1, or pass "
            "--insecure-no-auth if a proxy in front authenticates every request"
        )
    audit_log = merged["audit_log"]
    if audit_log and audit_log != "-":
        folder = os.path.dirname(os.path.abspath(audit_log))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise ConfigError(f"--audit-log {audit_log!r}: folder {folder} does not exist or is not writable")
    if merged["audit_rotate"] and audit_log in (None, "-"):
        raise ConfigError("--audit-rotate needs --audit-log PATH (a file)")
    # A listed name that is unset in the server's environment is simply not passed.
    passthrough = {n: environ[n] for n in merged["env_allow"] if n in environ}
    search_path = environ.get("PATH", os.defpath)
    fsize = merged["limit_fsize"]
    if fsize is None and shutil.which("prlimit", path=search_path) is not None:
        # A '>' redirection (or any file a command writes) is capped like its captured output, by default.
        fsize = merged["max_output_bytes"] * FSIZE_PER_OUTPUT
    limits = Limits(
        memory_bytes=merged["limit_memory"],
        cpu_s=merged["limit_cpu"],
        fsize_bytes=fsize,
        nofile=merged["limit_nofile"],
        nproc=merged["limit_nproc"],
    )
    prlimit_path = None
    if limits.any():
        prlimit_path = shutil.which("prlimit", path=search_path)
        if prlimit_path is None:
            raise ConfigError(
                "--limit-* options need the prlimit program (util-linux) and it is not on PATH; "
                "install util-linux or drop the limits"
            )
    fields = {f.name for f in attrs.fields(Settings)}
    values = {k: v for k, v in merged.items() if k in fields}
    values.update(
        tools=tools,
        base_path=base_path or None,
        validate_paths=not merged["no_validate_paths"],
        passthrough_env=passthrough,
        search_path=search_path,
        limits=limits,
        prlimit_path=prlimit_path,
        auth_tokens=tokens,
        config_path=config_path or None,
    )
    return Loaded(
        settings=Settings(**values), explicit=explicit, token_on_command_line="auth_token" in cli, doctor=doctor
    )


def _check_network(merged: dict[str, Any]) -> None:
    host, sep, port = str(merged["bind"]).rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--bind {merged['bind']!r} must be HOST:PORT (e.g. 127.0.0.1:3344, [::1]:3344)")
    if bool(merged["certfile"]) != bool(merged["keyfile"]):
        raise ConfigError("--certfile and --keyfile go together")
    for option in ("certfile", "keyfile"):
        if merged[option] and not os.path.isfile(merged[option]):
            raise ConfigError(f"--{option} {merged[option]!r} is not a file")
    if merged["certfile"]:
        _check_tls(merged["certfile"], merged["keyfile"])
    for ip in merged["forwarded_allow_ips"]:
        try:
            ipaddress.ip_network(ip, strict=False)
        except ValueError:
            raise ConfigError(f"--forwarded-allow-ips: {ip!r} is not an IP address or network") from None
    for origin in merged["cors_origins"]:
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ConfigError(
                f"--cors-origins: {origin!r} is not an origin: give scheme://host[:port] without a path "
                "(https://app.example.com, http://localhost:*); '*' alone is not accepted: name the origins"
            )
    root = merged["root_path"]
    if root and (not root.startswith("/") or root.endswith("/")):
        raise ConfigError(f"--root-path {root!r} must start with '/' and not end with it (e.g. /exec)")


def _loopback(bind: str) -> bool:
    """Whether ``HOST:PORT`` listens on this machine only (127.0.0.0/8, ::1, localhost)."""
    host = bind.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name may resolve to any address: count it as reachable


def _check_tls(certfile: str, keyfile: str) -> None:
    """Load the TLS pair as the server will, so a bad one is a start-up line, not a traceback."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except OSError as e:  # ssl.SSLError is an OSError too
        if isinstance(e, ssl.SSLError):
            why = "the key does not match the certificate" if e.reason == "KEY_VALUES_MISMATCH" else "not PEM"
        else:
            why = e.strerror or str(e)
        raise ConfigError(
            f"--certfile {certfile!r} / --keyfile {keyfile!r}: cannot load the TLS certificate and key ({why}); "
            "give a PEM certificate (chain) and the PEM private key that matches it, both readable by this user"
        ) from None


_BIND_ADVICE = {
    errno.EADDRINUSE: "another process listens there: stop it, or choose another port (port 0 takes a free one)",
    errno.EACCES: "ports below 1024 need privileges: choose a higher port",
    errno.EADDRNOTAVAIL: "this machine has no such address: use 127.0.0.1, 0.0.0.0 or one of its own addresses",
}


def check_listen(bind: str) -> None:
    """Bind (and release) ``HOST:PORT`` as the server will, so an address in use is a start-up line.

    Run before serving and by ``--dry-run``; the server binds for real a moment later.
    """
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"--bind {bind}: cannot resolve {host!r} ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as hypercorn and trio-websocket do
        try:
            probe.bind(address)
        except OSError as e:
            advice = _BIND_ADVICE.get(e.errno or 0, "choose another address or port")
            raise ConfigError(f"--bind {bind}: cannot listen there ({e.strerror}); {advice}") from None


def _tokens(merged: dict[str, Any]) -> tuple[str, ...]:
    tokens = [merged["auth_token"]] if merged["auth_token"] else []
    path = merged["auth_token_file"]
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except OSError as e:
            raise ConfigError(f"--auth-token-file {path!r}: {e.strerror}") from None
        from_file = [line for line in lines if line and not line.startswith("#")]
        if not from_file:
            raise ConfigError(f"--auth-token-file {path!r} holds no token")
        tokens += from_file
    if merged["transport"] != "stdio":
        for token in tokens:
            if len(token) < 16 or any(c.isspace() for c in token):
                raise ConfigError("an auth token must be at least 16 characters, without spaces")
    return tuple(tokens)


def detect_sandbox(settings: Settings) -> sandbox.Sandbox:
    """The sandbox for these settings (``ConfigError`` when ``--sandbox bwrap``/``--sandbox-require`` cannot be met)."""
    s = settings
    audit = s.audit_log if s.audit_log not in (None, "-") else None
    return sandbox.detect(
        s.sandbox,
        base=s.base_path or os.getcwd(),
        ro=s.sandbox_ro,
        rw=s.sandbox_rw,
        # The server's own files never appear inside, even under the base path.
        secret_files=[p for p in (s.config_path, s.auth_token_file, audit, s.certfile, s.keyfile) if p],
        search_path=s.search_path,
        require=s.sandbox_require,
    )


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
    if s.transport != "stdio" and s.insecure_no_auth and not s.auth_tokens and not _loopback(s.bind):
        notes.append(
            f"--insecure-no-auth: {s.bind} serves without authentication; only a proxy in front that authenticates "
            "every request keeps others from running the tools"
        )
    if s.auth_token and "auth_token" in loaded.explicit and loaded.token_on_command_line:
        notes.append("--auth-token on the command line is visible in ps; prefer MCP_EXEC_AUTH_TOKEN")
    if (s.allow_commands or s.allow_patterns) and s.base_path is None:
        notes.append("shell_execute without --base-path: confined to the server's working directory")
    if s.base_path is None and s.validate_paths and s.tools:
        notes.append("no --base-path: path arguments must be absolute and are not confined to a directory")
    if not s.validate_paths:
        notes.append("--no-validate-paths: path arguments are NOT confined to the base path")
    if s.allow_dangerous:
        notes.append("--allow-dangerous: blacklisted programs are allowed")
    if s.limits.fsize_bytes is None:
        notes.append("prlimit (util-linux) is not installed: files commands write ('>' too) have no size cap")
    return notes


def dry_run_report(loaded: Loaded, tools: Sequence[Tool], box: sandbox.Sandbox | None = None) -> str:
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
    out.append(f"  base path: {s.base_path or '(none)'}; path validation: {'on' if s.validate_paths else 'OFF'}")
    out.append(f"  blacklist: {len(s.blacklist)} programs; allow dangerous: {'YES' if s.allow_dangerous else 'no'}")
    out.append(f"  timeout: {s.cmd_timeout_s:g}s by default, {s.max_timeout_s:g}s at most")
    out.append(f"  output cap: {s.max_output_bytes} bytes per stream")
    lim = s.limits
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
    limits_text = f"{', '.join(applied)} (via {s.prlimit_path})" if applied else "none"
    out.append(f"  resource limits: {limits_text}")
    out.append(f"  child environment: PATH, LANG, HOME{''.join(', ' + n for n in s.env_allow)}")
    out.append(f"  sensitive argument names: {', '.join(s.sensitive_keys)}")
    out.append(f"  transport: {s.transport}")
    out.append(
        f"  guards: rate limit {_rate_text(s)}, "
        f"max concurrent {s.max_concurrent}, circuit {s.circuit_threshold} failures / {s.circuit_timeout_s:g}s"
    )
    out.append(
        f"  logs: {s.log_level} as {s.log_format} on stderr; audit log: {s.audit_log or 'off'}"
        + (f" (rotated at {s.audit_rotate})" if s.audit_rotate else "")
    )
    if box is not None:
        out += sandbox_lines(box)
    out += [f"warning: {w}" for w in warnings_for(loaded)]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``trio-exec`` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    try:
        loaded = load_settings(argv, environ)
        tools = compose.compile_tools(loaded.settings)
        box = detect_sandbox(loaded.settings)
        if loaded.settings.transport != "stdio" and not loaded.doctor:
            check_listen(loaded.settings.bind)
    except ConfigError as e:
        print(f"trio-exec: error: {e.message}", file=sys.stderr)
        return 2
    if loaded.doctor:
        from trio_exec import doctor

        code, report = doctor.run(loaded.settings, box, sandbox_lines(box))
        print(report)  # doctor never serves MCP: stdout is for people here
        return code
    if loaded.settings.dry_run:
        print(dry_run_report(loaded, tools, box))
        return 0
    # Not even a command of our own user (an unsandboxed one, or anything else it runs) may read our
    # memory through /proc/<pid>/mem, nor our fds or environment: the kernel refuses a non-dumpable process.
    procfs.set_dumpable(False)
    memory.return_large_blocks(environ)  # a burst of large results must not leave the server big for good
    from trio_exec import runner  # trio: only when serving

    runner.adopt_orphans()  # what leaves a call's process group is re-parented to us, and killed when the call ends
    # Commands run as our user and could read /proc/<server pid>/{environ,cmdline}: blank every value there
    # but a few that are no secret and that C code may still read (SECURITY.md lists them).
    procfs.scrub_environment(lambda name: not procfs.kept_in_environ(name))
    procfs.scrub_arguments(["--auth-token"])
    from trio_exec import app  # the MCP SDK is slow to import: only when serving

    warnings = warnings_for(loaded)
    if not box.active:
        warnings.append(
            "NO SANDBOX: commands can read and write whatever this server's user can; "
            + "; ".join(p for p in box.report.problems if "WITHOUT" not in p)
        )
    return app.run(loaded.settings, tools, warnings, box)
