"""Frozen configuration: ``Settings``, ``ToolSpec``, ``ArgSpec``, ``Limits``; TOML loading.

Invariants: every object here is immutable; units are in the names (``timeout_s``,
``max_output_bytes``); unknown keys in a config file are errors that name the key and
the file. Nothing here reads the environment (only ``cli.py`` does).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from trio_exec.errors import ConfigError
from trio_exec.regexes import compile_error
from trio_exec.values import Constraint, Kind

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

ANNOTATION_KEYS = {
    "read_only": "readOnlyHint",
    "destructive": "destructiveHint",
    "idempotent": "idempotentHint",
    "open_world": "openWorldHint",
}


@attrs.frozen
class ArgSpec:
    """What the config file says about one placeholder (all optional)."""

    kind: Kind | None = None
    description: str | None = None
    constraint: Constraint = attrs.field(factory=Constraint)
    default: str | None = None


@attrs.frozen
class ToolSpec:
    """One template tool as configured, before its program is resolved."""

    name: str
    template: str
    source: str
    description: str | None = None
    args: Mapping[str, ArgSpec] = attrs.field(factory=dict)
    timeout_s: float | None = None
    cwd: str | None = None
    stdin: bool = False
    env: Mapping[str, str] = attrs.field(factory=dict)
    annotations: Mapping[str, bool] = attrs.field(factory=dict)
    network: bool = False  # sandbox: the command may use the host's network
    writable: bool = True  # sandbox: the base path is writable (read-only when false)
    sandbox_ro: tuple[str, ...] = ()  # sandbox: more host paths, read-only
    sandbox_rw: tuple[str, ...] = ()  # sandbox: more host paths, read-write
    special_files: bool = False  # path placeholders may name FIFOs, sockets and devices inside the base
    background: bool = False  # calls may run as jobs (the reserved arguments 'background' and 'wait_s')


@attrs.frozen
class Limits:
    """Per-command OS resource limits applied through ``prlimit`` (None = not set)."""

    memory_bytes: int | None = None
    cpu_s: int | None = None
    fsize_bytes: int | None = None
    nofile: int | None = None
    nproc: int | None = None

    def any(self) -> bool:
        return any(v is not None for v in attrs.astuple(self))


WORKER_ENV = "TRIO_EXEC_WORKER"  # set by the --workers supervisor in a worker's environment: its socket's fd
KILL_GRACE_S = 1.0  # a stopped command's group gets SIGTERM, then SIGKILL this much later (drains wait for it)


@attrs.frozen
class PolicySettings:
    """What commands may be: the blacklist, the path rules, the allowlist of ``shell_execute``."""

    blacklist: tuple[str, ...] = ()
    allow_dangerous: bool = False
    validate_paths: bool = True
    allow_missing_binaries: bool = False
    base_path: str | None = None
    sensitive_keys: tuple[str, ...] = ()
    allow_commands: tuple[str, ...] = ()
    allow_patterns: tuple[str, ...] = ()


@attrs.frozen
class RunnerSettings:
    """How commands run: timeouts, output and stdin caps, the child's environment, resource limits."""

    cmd_timeout_s: float = 30.0
    max_timeout_s: float = 300.0
    max_output_bytes: int = 1024 * 1024
    max_stdin_bytes: int = 16 * 1024 * 1024  # UTF-8 bytes of one call's 'stdin' argument (= the output cap)
    env_allow: tuple[str, ...] = ()
    passthrough_env: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    search_path: str = "/usr/local/bin:/usr/bin:/bin"
    limits: Limits = attrs.field(factory=Limits)
    prlimit_path: str | None = None


@attrs.frozen
class GuardSettings:
    """The guards in front of every call: rate limit, concurrency cap, circuit breaker."""

    rate_limit_rps: float = 10.0
    rate_limit_burst: int = 20
    max_concurrent: int = 50
    circuit_threshold: int = 10
    circuit_timeout_s: float = 60.0


@attrs.frozen
class NetworkSettings:
    """Streamable HTTP and WebSocket: where to listen, who may connect, sessions, limits, TLS, the drain."""

    bind: str = "127.0.0.1:3344"
    auth_token: str | None = attrs.field(default=None, repr=False)
    auth_tokens: tuple[str, ...] = attrs.field(default=(), repr=False)  # --auth-token plus --auth-token-file
    auth_token_file: str | None = None
    insecure_no_auth: bool = False  # a non-loopback bind without any token (a proxy authenticates)
    stateful: bool = False
    json_response: bool = False  # Streamable HTTP: one JSON body per request, no event stream (nor progress)
    session_idle_timeout_s: float = 300.0  # stateful HTTP: a session without requests this long is closed
    max_sessions: int = 1000  # stateful HTTP: open sessions at once (503 beyond)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()  # web pages that may call the HTTP endpoint (CORS); also allowed origins
    max_request_bytes: int = 4 * 1024 * 1024
    forwarded_allow_ips: tuple[str, ...] = ()
    root_path: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    shutdown_grace_s: float = 10.0
    backlog: int = 1024  # listen backlog of network transports (the kernel caps it at net.core.somaxconn)
    write_timeout_s: float = 30.0  # TCP_USER_TIMEOUT: a peer that reads nothing this long is dropped; 0 = off
    workers: int = 1  # server processes sharing the port (a supervisor keeps them running)


@attrs.frozen
class LogSettings:
    """The log (stderr) and the audit trail."""

    level: str = "info"
    format: str = "text"
    audit_log: str | None = None
    audit_rotate: int | None = None  # bytes
    audit_fail: str = "closed"  # closed: no call runs while the audit log cannot be written; open: calls go on


@attrs.frozen
class SandboxSettings:
    """The kernel boundary around every command."""

    mode: str = "auto"  # auto | bwrap | landlock | off
    require: bool = False
    ro: tuple[str, ...] = ()
    rw: tuple[str, ...] = ()
    network: bool = False  # shell_execute's commands may use the network


@attrs.frozen
class JobSettings:
    """Background jobs: which tools may start them, how much of their output is kept, how many, how long."""

    background: bool = False  # shell_execute's calls may run as jobs (a template says so itself)
    job_output_bytes: int = 8 * 1024 * 1024  # per stream of a job: the first half and the latest half are kept
    max_jobs: int = 16  # jobs kept at once, running or ended and not yet expired, of all clients
    max_jobs_per_client: int = 8
    job_max_runtime_s: float = 3600.0  # a job still running this long is stopped (its 'timeout' may say less)
    job_ttl_s: float = 900.0  # an ended job is forgotten this long after its end


@attrs.frozen
class Settings:
    """Everything the server needs, resolved from CLI > environment > config file > defaults, in groups.

    ``from_flat`` builds it from the options' flat names (``--max-concurrent`` is ``max_concurrent``, found in
    ``guards``; ``--log-level`` is ``log.level``, ``--sandbox-ro`` is ``sandbox.ro``, ``--sandbox`` is
    ``sandbox.mode``).
    """

    tools: tuple[ToolSpec, ...] = ()
    transport: str = "stdio"
    dry_run: bool = False
    config_path: str | None = None
    policy: PolicySettings = attrs.field(factory=PolicySettings)
    runner: RunnerSettings = attrs.field(factory=RunnerSettings)
    guards: GuardSettings = attrs.field(factory=GuardSettings)
    network: NetworkSettings = attrs.field(factory=NetworkSettings)
    log: LogSettings = attrs.field(factory=LogSettings)
    sandbox: SandboxSettings = attrs.field(factory=SandboxSettings)
    jobs: JobSettings = attrs.field(factory=JobSettings)

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from flat names (``FLAT_NAMES``); a name that is not one is a ``KeyError``."""
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        for flat, value in values.items():
            group, name = FLAT_NAMES[flat]
            if group is None:
                top[name] = value
            else:
                groups.setdefault(group, {})[name] = value
        for group, kwargs in groups.items():
            top[group] = _GROUPS[group](**kwargs)
        return cls(**top)


_GROUPS: dict[str, Any] = {
    "policy": PolicySettings, "runner": RunnerSettings, "guards": GuardSettings, "network": NetworkSettings,
    "log": LogSettings, "sandbox": SandboxSettings, "jobs": JobSettings,
}  # fmt: skip
# The options whose name in their group is shorter than their own (``--log-level`` is ``log.level``).
_RENAMED = {
    "log_level": ("log", "level"), "log_format": ("log", "format"), "sandbox": ("sandbox", "mode"),
    "sandbox_require": ("sandbox", "require"), "sandbox_ro": ("sandbox", "ro"), "sandbox_rw": ("sandbox", "rw"),
    "sandbox_network": ("sandbox", "network"),
}  # fmt: skip


def _flat_names() -> dict[str, tuple[str | None, str]]:
    names: dict[str, tuple[str | None, str]] = {
        f.name: (None, f.name) for f in attrs.fields(Settings) if f.name not in _GROUPS
    }
    flat_of = {place: flat for flat, place in _RENAMED.items()}
    for group, cls in _GROUPS.items():
        for f in attrs.fields(cls):
            names[flat_of.get((group, f.name), f.name)] = (group, f.name)
    return names


FLAT_NAMES = _flat_names()  # an option's field name -> (its group, or None at the top; its name there)


_TOOL_KEYS = {
    "template", "description", "timeout_s", "cwd", "stdin", "env", "annotations", "args", "network", "writable",
    "sandbox_ro", "sandbox_rw", "special_files", "background",
}  # fmt: skip
_ARG_KEYS = {"kind", "description", "enum", "pattern", "max_length", "default", "minimum", "maximum"}


def load_toml(path: str) -> dict[str, Any]:
    """Read a TOML file; any failure is a one-line ``ConfigError``."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}{_looks_like(path)}") from None


def _looks_like(path: str) -> str:
    """What a config file that is not TOML seems to be instead, as advice (JSON is the usual mistake)."""
    try:
        with open(path, "rb") as f:
            json.load(f)
    except (OSError, ValueError):
        return ""
    return (
        '; it is JSON: the config file is TOML ([server] for options, [tools.NAME] with template = "..." '
        "for each tool; README: Config file)"
    )


def split_config(data: Mapping[str, Any], path: str) -> tuple[dict[str, Any], tuple[ToolSpec, ...]]:
    """Split a parsed config file into its ``[server]`` table and its tool specs."""
    unknown = set(data) - {"server", "tools"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {sorted(unknown)[0]!r} (expected [server] or [tools.NAME])")
    server = _table(data.get("server", {}), f"{path}: [server]")
    tools_table = _table(data.get("tools", {}), f"{path}: [tools]")
    tools = tuple(_tool_spec(name, _table(t, f"{path}: [tools.{name}]"), path) for name, t in tools_table.items())
    return dict(server), tools


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    return value


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a misspelled ``word``, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {key!r}{did_you_mean(key, allowed)}; allowed: {', '.join(sorted(allowed))}"
            )


def _check_default(
    default: str,
    kind: Kind | None,
    enum: tuple[str, ...] | None,
    bounds: Mapping[str, int],
    where: str,
) -> None:
    """A default must be a value the argument itself would take: else every call without it fails."""
    if enum is not None and default not in enum:
        raise ConfigError(f"{where}: default {default!r} is not one of the enum values {list(enum)}")
    if kind is Kind.INTEGER:
        try:
            number = int(default)
        except ValueError:
            raise ConfigError(f"{where}: default {default!r} is not an integer") from None
        low, high = bounds.get("minimum", -math.inf), bounds.get("maximum", math.inf)
        if not low <= number <= high:
            raise ConfigError(f"{where}: default {number} is outside minimum..maximum ({low}..{high})")


def _typed(value: Any, types: type | tuple[type, ...], where: str, what: str) -> Any:
    # bool is an int subclass; a number field must not accept true/false.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ConfigError(f"{where}: {what} must not be a boolean")
    if not isinstance(value, types):
        raise ConfigError(f"{where}: {what} has the wrong type ({type(value).__name__})")
    return value


def _tool_spec(name: str, t: Mapping[str, Any], path: str) -> ToolSpec:
    where = f"{path}: [tools.{name}]"
    _unknown_key(t, _TOOL_KEYS, where)
    if "template" not in t:
        raise ConfigError(f"{where}: missing key 'template'")
    timeout = t.get("timeout_s")
    if timeout is not None:
        timeout = float(_typed(timeout, (int, float), where, "timeout_s"))
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ConfigError(f"{where}: timeout_s must be a positive number")
    env = _table(t.get("env", {}), f"{where} env")
    for k, v in env.items():
        _typed(v, str, where, f"env.{k}")
    annotations = _table(t.get("annotations", {}), f"{where} annotations")
    _unknown_key(annotations, set(ANNOTATION_KEYS), f"{where} annotations")
    for k, v in annotations.items():
        _typed(v, bool, where, f"annotations.{k}")
    args = _table(t.get("args", {}), f"{where} args")
    return ToolSpec(
        name=name,
        template=_typed(t["template"], str, where, "template"),
        source=path,
        description=_typed(t.get("description", ""), str, where, "description") or None,
        args={a: _arg_spec(_table(spec, f"{where}.args.{a}"), f"{where}.args.{a}") for a, spec in args.items()},
        timeout_s=timeout,
        cwd=_typed(t.get("cwd", ""), str, where, "cwd") or None,
        stdin=_typed(t.get("stdin", False), bool, where, "stdin"),
        env=dict(env),
        annotations=dict(annotations),
        network=_typed(t.get("network", False), bool, where, "network"),
        writable=_typed(t.get("writable", True), bool, where, "writable"),
        sandbox_ro=_paths(t.get("sandbox_ro", []), where, "sandbox_ro"),
        sandbox_rw=_paths(t.get("sandbox_rw", []), where, "sandbox_rw"),
        special_files=_typed(t.get("special_files", False), bool, where, "special_files"),
        background=_typed(t.get("background", False), bool, where, "background"),
    )


def _paths(value: Any, where: str, what: str) -> tuple[str, ...]:
    """A list of existing absolute paths (sandbox binds must exist when the server starts)."""
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{where}: {what} must be a list of absolute paths")
    return check_paths(value, f"{where} {what}")


def check_paths(paths: Any, what: str) -> tuple[str, ...]:
    for path in paths:
        if not path.startswith("/") or not os.path.exists(path):
            raise ConfigError(f"{what}: {path!r} must be an absolute path that exists")
    return tuple(paths)


def _arg_spec(a: Mapping[str, Any], where: str) -> ArgSpec:
    _unknown_key(a, _ARG_KEYS, where)
    kind = None
    if "kind" in a:
        try:
            kind = Kind(_typed(a["kind"], str, where, "kind"))
        except ValueError:
            raise ConfigError(
                f"{where}: unknown kind {a['kind']!r} (one of {', '.join(k.value for k in Kind)})"
            ) from None
    enum = a.get("enum")
    if enum is not None:
        if not isinstance(enum, list) or not enum or not all(isinstance(x, str) for x in enum):
            raise ConfigError(f"{where}: enum must be a non-empty list of strings")
        enum = tuple(enum)
    if kind is Kind.ENUM and enum is None:
        raise ConfigError(f"{where}: kind 'enum' needs an enum list")
    pattern = a.get("pattern")
    if pattern is not None:
        reason = compile_error(_typed(pattern, str, where, "pattern"))
        if reason is not None:
            raise ConfigError(f"{where}: pattern is not a valid regular expression: {reason}")
    max_length = a.get("max_length")
    if max_length is not None and _typed(max_length, int, where, "max_length") < 1:
        raise ConfigError(f"{where}: max_length must be at least 1")
    bounds = {k: _typed(a[k], int, where, k) for k in ("minimum", "maximum") if k in a}
    if bounds.get("minimum", -math.inf) > bounds.get("maximum", math.inf):
        raise ConfigError(f"{where}: minimum {bounds['minimum']} is above maximum {bounds['maximum']}; no value fits")
    default = a.get("default")
    if default is not None:
        default = str(_typed(default, (str, int), where, "default"))
        _check_default(default, kind, enum, bounds, where)
    return ArgSpec(
        kind=kind,
        description=_typed(a.get("description", ""), str, where, "description") or None,
        constraint=Constraint(
            enum=enum,
            pattern=pattern,
            max_length=max_length,
            minimum=bounds.get("minimum"),
            maximum=bounds.get("maximum"),
        ),
        default=default,
    )
